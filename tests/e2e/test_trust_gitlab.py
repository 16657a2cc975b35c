"""GitLab CI/CD trusted publishing with the stock npm CLI, against a fake GitLab issuer: `npm trust
gitlab|list|revoke`, a simulated GitLab job (`GITLAB_CI=true`, `NPM_ID_TOKEN`), and the attack table.
The rules themselves have table tests in tests/unit/test_trust_gitlab.py."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.support.packages import make_package, set_version, unique_name

PROJECT = "acme/tools/widget"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def owned_package(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    directory = make_package(tmp_path, name)
    assert account.npm("publish", cwd=directory).returncode == 0
    account.enable_2fa()
    set_version(directory, "1.1.0")
    return account, name, directory


def trust_gitlab(account, name: str, *flags: str, project: str = PROJECT, file: str = ".gitlab-ci.yml"):
    return account.npm("trust", "gitlab", name, "--project", project, "--file", file, "--yes", *flags,
                       f"--otp={account.otp()}")


def exchange(registry: str, package: str, token: str) -> httpx.Response:
    return httpx.post(f"{registry}-/npm/v1/oidc/token/exchange/package/{package}",
                      headers={"authorization": f"Bearer {token}"}, timeout=30)


def printed_json(output: str) -> list[dict]:
    return [json.loads(chunk) for chunk in re.findall(r"\{.*?\n\}", output, re.S)]


def assert_round_trip_then_revoke(account, name: str, shown: dict, again) -> None:
    """`npm trust <kind> … --dry-run --json` with the flags `npm trust list --json` showed sends the same
    configuration back; then `npm trust revoke` removes the relationship."""
    assert again.returncode == 0, again
    (would_send,) = printed_json(again.stdout)
    assert would_send == {"package": name, **{k: v for k, v in shown.items() if k not in ("id", "type")}}
    revoked = account.npm("trust", "revoke", name, f"--id={shown['id']}", f"--otp={account.otp()}")
    assert revoked.returncode == 0, revoked
    assert account.http("GET", f"-/package/{name}/trust").json() == []


def test_trust_gitlab_creates_list_shows_and_revoke_removes(accounts, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    created = trust_gitlab(account, name, "--env", "production", "--allow-stage-publish")
    assert created.returncode == 0, created
    assert "Trust configuration created successfully" in created.output
    wire = account.http("GET", f"-/package/{name}/trust").json()
    assert [{k: r[k] for k in ("type", "claims", "permissions")} for r in wire] == [{
        "type": "gitlab", "permissions": ["createStagedPackage"],
        "claims": {"ci_config_ref_uri": {"file": ".gitlab-ci.yml"}, "environment": "production",
                   "project_path": PROJECT}}]
    listed = account.npm("trust", "list", name, "--json")
    assert listed.returncode == 0, listed
    (shown,) = printed_json(listed.stdout)
    assert shown == {"id": wire[0]["id"], "type": "gitlab", "file": ".gitlab-ci.yml", "project": PROJECT,
                     "environment": "production", "permissions": ["createStagedPackage"]}
    # Round trip: the listed options, given back to `npm trust gitlab`, make the same configuration (a dry
    # run prints what it would send: no one-time code spent on a 409).
    again = account.npm("trust", "gitlab", name, "--project", shown["project"], "--file", shown["file"],
                        "--env", shown["environment"], "--allow-stage-publish", "--dry-run", "--json")
    assert_round_trip_then_revoke(account, name, shown, again)


def test_a_gitlab_job_stages_and_cannot_publish_without_allow_publish(accounts, gitlab_issuer, tmp_path):
    account, name, directory = owned_package(accounts, tmp_path)
    assert trust_gitlab(account, name, "--allow-stage-publish").returncode == 0
    ci = accounts.anonymous()
    staged = ci("stage", "publish", cwd=directory, env=gitlab_issuer.job(project=PROJECT, pipeline_id="4242"))
    assert staged.returncode == 0, staged
    stage_id = re.search(rf"\(staged with id ({UUID})\)", staged.stdout).group(1)
    view = account.npm("stage", "view", stage_id)
    assert f"repository: {PROJECT}" in view.stdout and "runId: 4242" in view.stdout, view
    assert ".gitlab-ci.yml" in view.stdout
    set_version(directory, "1.2.0")
    published = ci("publish", cwd=directory, env=gitlab_issuer.job(project=PROJECT))
    assert published.returncode != 0
    assert "E403" in published.output and "OIDC permission denied" in published.output
    assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.0.0"


def test_a_gitlab_job_publishes_with_allow_publish(accounts, gitlab_issuer, tmp_path):
    account, name, directory = owned_package(accounts, tmp_path)
    assert trust_gitlab(account, name, "--allow-publish").returncode == 0
    result = accounts.anonymous()("publish", cwd=directory, env=gitlab_issuer.job(project=PROJECT))
    assert result.returncode == 0, result
    assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.1.0"


@pytest.fixture(scope="module")
def target(broker, npm_cache, tmp_path_factory, gitlab_issuer):
    """A package trusted for acme/tools/widget's .gitlab-ci.yml in environment production, bound by a
    first exchange."""
    from tests.support.accounts import Accounts

    accounts = Accounts(broker.url, tmp_path_factory.mktemp("gitlab"), npm_cache)
    account, name, _ = owned_package(accounts, tmp_path_factory.mktemp("gitlab-pkg"))
    assert trust_gitlab(account, name, "--env", "production", "--allow-stage-publish").returncode == 0
    first = exchange(broker.url, name, gitlab_issuer.token(project=PROJECT, environment="production"))
    assert first.status_code == 201, first.text
    return name


def host(issuer) -> str:
    return issuer.url.split("://", 1)[1]


# (claim overrides of the job's token, the refusal's code, the check it names if any)
ATTACKS = {
    "wrong project": (lambda i: {"project": "acme/tools/other"}, "oidc.no-match", "project_path"),
    "another group's project of the same name (wrong org)": (
        lambda i: {"project": "evil/tools/widget"}, "oidc.no-match", "project_path"),
    "wrong pipeline file": (lambda i: {"project": PROJECT, "file": "release.yml"}, "oidc.no-match",
                            "ci_config_ref_uri"),
    "pipeline file from another project": (
        lambda i: {"project": PROJECT,
                   "ci_config_ref_uri": f"{host(i)}/evil/widget//.gitlab-ci.yml@refs/heads/main"},
        "oidc.no-match", "ci_config_ref_uri"),
    "wrong environment": (lambda i: {"project": PROJECT, "environment": "staging"}, "oidc.no-match", "environment"),
    "no environment": (lambda i: {"project": PROJECT, "environment": None}, "oidc.no-match", "environment"),
    "re-created project (new id)": (lambda i: {"project": PROJECT, "project_id": "5005"}, "oidc.no-match",
                                    "project_id"),
    "namespace re-created (new id)": (lambda i: {"project": PROJECT, "namespace_id": "6006"}, "oidc.no-match",
                                      "namespace_id"),
    "self-hosted runner": (lambda i: {"project": PROJECT, "runner_environment": "self-hosted"},
                           "oidc.self-hosted-runner", None),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_gitlab_attack_is_refused(attack, target, gitlab_issuer, broker):
    overrides, code, claim = ATTACKS[attack]
    claims = {"environment": "production", **overrides(gitlab_issuer)}
    response = exchange(broker.url, target, gitlab_issuer.token(**claims))
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == code and (claim is None or f"{claim} check" in body["message"]), body
    assert "eyJ" not in response.text


def test_a_gitlab_token_signed_by_a_forged_issuer_is_refused(target, gitlab_issuer, broker):
    token = gitlab_issuer.sign(gitlab_issuer.claims(project=PROJECT, environment="production"),
                               key=gitlab_issuer.rogue_key)
    response = exchange(broker.url, target, token)
    assert response.status_code == 401 and response.json()["code"] == "oidc.invalid-token"


def test_a_gitlab_token_from_another_issuer_url_is_refused(target, gitlab_issuer, broker):
    token = gitlab_issuer.token(project=PROJECT, environment="production", iss="https://gitlab.evil.example")
    response = exchange(broker.url, target, token)
    assert response.status_code == 401 and response.json()["code"] == "oidc.untrusted-issuer"


def test_a_github_token_never_matches_a_gitlab_relationship(target, issuer, broker):
    response = exchange(broker.url, target, issuer.token(repository=PROJECT))
    assert response.status_code == 403 and response.json()["code"] == "oidc.no-relationships"
    assert "npm trust github" in response.json()["message"]


def test_one_gitlab_job_token_publishes_every_workspace_once_each(accounts, gitlab_issuer, broker, tmp_path):
    """GitLab hands npm one ID token for the whole job: `npm publish --workspaces` exchanges it once per package."""
    account = accounts.create()
    root = tmp_path / "monorepo"
    names = [unique_name(), unique_name()]
    for folder, name in zip("ab", names):
        directory = make_package(root, name)
        assert account.npm("publish", cwd=directory).returncode == 0
        set_version(directory, "1.1.0")
        directory.rename(root / folder)
    (root / "package.json").write_text(json.dumps({"name": "monorepo", "private": True, "workspaces": ["a", "b"]}))
    account.enable_2fa()
    relationship = {"type": "gitlab", "permissions": ["createPackage"],
                    "claims": {"project_path": PROJECT, "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}}}
    for name in names:
        assert account.http("POST", f"-/package/{name}/trust", otp=True, json=[relationship]).status_code == 201
    job = gitlab_issuer.job(project=PROJECT)
    published = accounts.anonymous()("publish", "--workspaces", cwd=root, env=job)
    assert published.returncode == 0, published
    for name in names:
        assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.1.0"
    again = exchange(broker.url, names[0], job["NPM_ID_TOKEN"])
    assert again.status_code == 401 and again.json()["code"] == "oidc.replayed", again.text
