"""`npm trust` and trusted publishing with the stock npm CLI, against the fake GitHub issuer."""

from __future__ import annotations

import json
import re

import httpx

from tests.support.packages import make_package, set_version, unique_name
from tests.support.trust import github_relationship


def owned_package(accounts, tmp_path, with_2fa: bool = True):
    account = accounts.create()
    name = unique_name()
    directory = make_package(tmp_path, name)
    assert account.npm("publish", cwd=directory).returncode == 0
    if with_2fa:
        account.enable_2fa()
    return account, name, directory


def trust_github(account, name: str, *flags: str, otp: bool = True):
    args = ["trust", "github", name, "--repo", "acme/widget", "--file", "release.yml", "--yes", *flags]
    if otp:
        args.append(f"--otp={account.otp()}")
    return account.npm(*args)


def test_trust_github_then_publish_from_a_github_job_with_no_other_credential(accounts, issuer, tmp_path):
    account, name, directory = owned_package(accounts, tmp_path)
    created = trust_github(account, name, "--allow-publish")
    assert created.returncode == 0, created
    assert "Trust configuration created successfully" in created.output
    set_version(directory, "1.1.0")
    ci = accounts.anonymous()
    result = ci("publish", cwd=directory, env=issuer.job())
    assert result.returncode == 0, result
    assert f"+ {name}@1.1.0" in result.stdout
    assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.1.0"


def test_trust_list_shows_the_relationships_and_revoke_removes_one(accounts, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    configs = [github_relationship(),
               github_relationship(permissions=["createPackage"], environment="production")]
    assert account.http("POST", f"-/package/{name}/trust", otp=True, json=configs).status_code == 201
    listed = account.npm("trust", "list", name, "--json")
    assert listed.returncode == 0, listed
    printed = [json.loads(chunk) for chunk in re.findall(r"\{.*?\n\}", listed.stdout, re.S)]
    assert len(printed) == 2, listed.stdout
    wire = account.http("GET", f"-/package/{name}/trust").json()
    assert [r["claims"] for r in wire] == [c["claims"] for c in configs]  # the configuration, as it was sent
    assert list(wire[1]["claims"]) == ["environment", "repository", "workflow_ref"]  # keys sorted, as before
    assert [{k: r[k] for k in ("type", "claims", "permissions")} for r in wire] == configs
    relationship = account.http("GET", f"-/package/{name}/trust").json()[0]
    revoked = account.npm("trust", "revoke", name, f"--id={relationship['id']}", f"--otp={account.otp()}")
    assert revoked.returncode == 0, revoked
    assert "Revoked trusted configuration" in revoked.output
    assert len(account.http("GET", f"-/package/{name}/trust").json()) == 1


def test_trust_create_without_2fa_on_the_account_is_refused(accounts, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path, with_2fa=False)
    result = trust_github(account, name, "--allow-publish", otp=False)
    assert result.returncode != 0
    assert "E403" in result.output and "two-factor authentication" in result.output


def test_trust_create_without_an_otp_is_challenged(accounts, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    result = trust_github(account, name, "--allow-publish", otp=False)
    assert result.returncode != 0
    assert "EOTP" in result.output


def test_trust_create_by_a_non_owner_is_forbidden(accounts, tmp_path):
    _, name, _ = owned_package(accounts, tmp_path)
    stranger = accounts.create()
    stranger.enable_2fa()
    result = trust_github(stranger, name, "--allow-publish")
    assert result.returncode != 0 and "E403" in result.output


def test_trust_create_for_an_unknown_package_is_a_404(accounts):
    account = accounts.create()
    account.enable_2fa()
    result = trust_github(account, unique_name(), "--allow-publish")
    assert result.returncode != 0 and "E404" in result.output


def test_the_same_relationship_twice_is_a_409(accounts, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    assert trust_github(account, name, "--allow-publish").returncode == 0
    again = trust_github(account, name, "--allow-publish")
    assert again.returncode != 0 and "E409" in again.output


def test_trust_of_an_unsupported_provider_is_a_400(accounts, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    response = account.http("POST", f"-/package/{name}/trust", otp=True, json=[{
        "type": "jenkins", "claims": {"job": "release"},
        "permissions": ["createPackage"]}])
    assert response.status_code == 400 and "not supported" in response.json()["error"]


def test_publish_from_a_job_that_matches_no_relationship_fails_with_eneedauth(accounts, issuer, tmp_path):
    account, name, directory = owned_package(accounts, tmp_path)
    assert trust_github(account, name, "--allow-publish").returncode == 0
    set_version(directory, "1.2.0")
    result = accounts.anonymous()("publish", cwd=directory, env=issuer.job(workflow="other.yml"))
    assert result.returncode != 0
    assert "ENEEDAUTH" in result.output
