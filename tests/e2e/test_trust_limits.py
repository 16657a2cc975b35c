"""Several trust relationships per package, of every kind, up to the limit (10, as npmjs.com)."""

from __future__ import annotations

from tests.support.packages import publish_document, unique_name


def github(file: str) -> dict:
    return {"type": "github", "claims": {"repository": "acme/widget", "workflow_ref": {"file": file}},
            "permissions": ["createStagedPackage"]}


def gitlab(file: str) -> dict:
    return {"type": "gitlab", "claims": {"project_path": "acme/widget", "ci_config_ref_uri": {"file": file}},
            "permissions": ["createPackage"]}


# TOTP codes are single-use and only three are valid at once: each account here uses at most three.

def _package_with_2fa(accounts):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    account.enable_2fa()
    return account, name


def test_a_package_holds_nine_relationships_of_both_kinds_and_refuses_two_more_all_or_nothing(accounts):
    account, name = _package_with_2fa(accounts)
    first = [github(f"g{i}.yml") for i in range(5)] + [gitlab(f"l{i}.yml") for i in range(4)]
    assert account.http("POST", f"-/package/{name}/trust", otp=True, json=first).status_code == 201
    two_more = [gitlab("l8.yml"), gitlab("l9.yml")]
    refused = account.http("POST", f"-/package/{name}/trust", otp=True, json=two_more)
    assert refused.status_code == 409 and refused.json()["code"] == "trust.limit", refused.text
    assert "at most 10" in refused.json()["error"]
    assert len(account.http("GET", f"-/package/{name}/trust").json()) == 9  # all or nothing


def test_the_cli_is_refused_an_eleventh_relationship_and_lists_all_ten(accounts):
    account, name = _package_with_2fa(accounts)
    ten = [github(f"g{i}.yml") for i in range(5)] + [gitlab(f"l{i}.yml") for i in range(5)]
    assert account.http("POST", f"-/package/{name}/trust", otp=True, json=ten).status_code == 201
    eleventh = account.npm("trust", "gitlab", name, "--project", "acme/widget", "--file", "x.yml",
                           "--allow-publish", "--yes", f"--otp={account.otp()}")
    assert eleventh.returncode != 0 and "E409" in eleventh.output
    listed = account.npm("trust", "list", name, "--json")
    assert listed.returncode == 0 and listed.stdout.count('"type": "gitlab"') == 5, listed
    assert listed.stdout.count('"type": "github"') == 5
