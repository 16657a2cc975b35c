"""The registry's policy, one row per case: (provider, claims, the issuer's options) → refusal code or none."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from broker.domain.github import GitHubClaims
from broker.domain.gitlab import GitLabClaims
from broker.domain.policy import CODES, PULL_REQUEST_TARGET, SELF_HOSTED_RUNNER, WORKFLOW_RUN, policy_refusal
from tests.unit.test_trust_circleci import claims as circleci_claims


@dataclass
class Options:
    allow_self_hosted_runners: bool = False
    allow_workflow_run: bool = False


def github(**overrides) -> GitHubClaims:
    values = {"iss": "https://token.actions.githubusercontent.com", "jti": "j", "exp": 2, "iat": 1, "sub": "s",
              "repository": "acme/widget", "repository_id": "1", "repository_owner": "acme",
              "repository_owner_id": "2", "workflow_ref": "acme/widget/.github/workflows/release.yml@refs/heads/main",
              "event_name": "push", "runner_environment": "github-hosted", **overrides}
    return GitHubClaims.model_validate({k: v for k, v in values.items() if v is not None})


def gitlab(**overrides) -> GitLabClaims:
    values = {"iss": "https://gitlab.com", "jti": "j", "exp": 2, "iat": 1, "sub": "s", "project_path": "acme/widget",
              "project_id": "1", "namespace_id": "2", "runner_environment": "gitlab-hosted", **overrides}
    return GitLabClaims.model_validate({k: v for k, v in values.items() if v is not None})


@pytest.mark.parametrize("event,options,code", [
    ("push", Options(), None), ("release", Options(), None), ("workflow_dispatch", Options(), None),
    ("pull_request", Options(), None), (None, Options(), None),
    ("pull_request_target", Options(), PULL_REQUEST_TARGET),
    ("pull_request_target", Options(allow_workflow_run=True, allow_self_hosted_runners=True), PULL_REQUEST_TARGET),
    ("workflow_run", Options(), WORKFLOW_RUN), ("workflow_run", Options(allow_workflow_run=True), None)])
def test_github_events(event, options, code):
    refused = policy_refusal("github", github(event_name=event), options)
    assert (refused.code if refused else None) == code


@pytest.mark.parametrize("provider,make", [("github", github), ("gitlab", gitlab)])
@pytest.mark.parametrize("runner,allowed,code", [
    ("self-hosted", False, SELF_HOSTED_RUNNER), ("self-hosted", True, None), ("github-hosted", False, None),
    ("gitlab-hosted", False, None), (None, False, None)])
def test_self_hosted_runners(provider, make, runner, allowed, code):
    refused = policy_refusal(provider, make(runner_environment=runner), Options(allow_self_hosted_runners=allowed))
    assert (refused.code if refused else None) == code


def test_the_event_is_decided_before_the_runner():
    token = github(event_name="pull_request_target", runner_environment="self-hosted")
    assert policy_refusal("github", token, Options()).code == PULL_REQUEST_TARGET


def test_circleci_jobs_meet_no_policy_rule():
    # CircleCI's SSH reruns are refused by its claim table; it writes no event or runner claim.
    assert policy_refusal("circleci", circleci_claims(), Options()) is None


@pytest.mark.parametrize("code", CODES)
def test_every_refusal_has_its_own_code_and_says_what_to_do(code):
    options = Options()
    token = {PULL_REQUEST_TARGET: github(event_name="pull_request_target"),
             WORKFLOW_RUN: github(event_name="workflow_run"),
             SELF_HOSTED_RUNNER: github(runner_environment="self-hosted")}[code]
    refused = policy_refusal("github", token, options)
    assert refused.code == code and code.startswith("oidc.") and "registry" in refused.message
    assert any(word in refused.message for word in ("Publish from", "run the job on"))
