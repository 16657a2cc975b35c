"""The registry's policy over the exchange (direct HTTP with signed JWTs): pull_request_target and
workflow_run jobs of GitHub, and self-hosted runners unless the issuer allows them (the session broker
allows them for `self_managed_gitlab` only). Each rule has its own code; the table is in
tests/unit/test_policy.py."""

from __future__ import annotations

import pytest

from tests.e2e.test_trust_gitlab import PROJECT, exchange, owned_package
from tests.support.trust import github_relationship

GITLAB = {"type": "gitlab", "claims": {"project_path": PROJECT, "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}},
          "permissions": ["createStagedPackage"]}


@pytest.fixture(scope="module")
def trusting(broker, npm_cache, tmp_path_factory, gitlab_issuer, self_managed_gitlab):
    """A package trusting acme/widget's release.yml on GitHub and acme/tools/widget on both GitLabs."""
    from tests.support.accounts import Accounts

    accounts = Accounts(broker.url, tmp_path_factory.mktemp("policy"), npm_cache)
    account, name, _ = owned_package(accounts, tmp_path_factory.mktemp("policy-pkg"))
    configs = [github_relationship(), GITLAB, {**GITLAB, "issuer": self_managed_gitlab.url}]
    assert account.http("POST", f"-/package/{name}/trust", otp=True, json=configs).status_code == 201
    return name


@pytest.mark.parametrize("claims,code", [
    ({"event_name": "pull_request_target"}, "oidc.pull-request-target"),
    ({"event_name": "workflow_run"}, "oidc.workflow-run"),
    ({"runner_environment": "self-hosted"}, "oidc.self-hosted-runner")])
def test_a_github_job_the_policy_refuses(claims, code, trusting, issuer, broker):
    response = exchange(broker.url, trusting, issuer.token(**claims))
    assert response.status_code == 403 and response.json()["code"] == code, response.text
    assert exchange(broker.url, trusting, issuer.token()).status_code == 201  # the same job otherwise


def test_a_self_hosted_gitlab_runner_is_refused_unless_its_issuer_allows_it(trusting, gitlab_issuer,
                                                                           self_managed_gitlab, broker):
    hosted = exchange(broker.url, trusting, gitlab_issuer.token(project=PROJECT, runner_environment="self-hosted"))
    assert hosted.status_code == 403 and hosted.json()["code"] == "oidc.self-hosted-runner", hosted.text
    assert "self-hosted" in hosted.json()["error"]
    own = exchange(broker.url, trusting, self_managed_gitlab.token(project=PROJECT, runner_environment="self-hosted"))
    assert own.status_code == 201, own.text
