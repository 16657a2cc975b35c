"""Self-hosted issuers (STAGEGATE_OIDC_ISSUERS): a relationship records the issuer it trusts, and a
token of one issuer never matches a relationship of another, even for the same repository. The
session broker trusts two GitHub issuers (`issuer`, the default, and `ghes_issuer`)."""

from __future__ import annotations

from tests.e2e.test_trust_gitlab import exchange, owned_package, printed_json
from tests.support.trust import github_relationship


def add(account, name: str, *configs: dict):
    return account.http("POST", f"-/package/{name}/trust", otp=True, json=list(configs))


def test_a_relationship_trusts_the_issuer_it_names_and_no_other(accounts, issuer, ghes_issuer, broker, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    created = add(account, name, {**github_relationship(), "issuer": ghes_issuer.url})
    assert created.status_code == 201, created.text
    assert created.json()[0]["issuer"] == ghes_issuer.url
    # Identical claims from the default GitHub issuer: the package has no relationship of that issuer.
    elsewhere = exchange(broker.url, name, issuer.token())
    assert elsewhere.status_code == 403 and elsewhere.json()["code"] == "oidc.no-relationships", elsewhere.text
    assert f"no trust relationships for github jobs of {issuer.url}" in elsewhere.json()["error"]
    assert exchange(broker.url, name, ghes_issuer.token()).status_code == 201


def test_npm_trust_github_gets_the_default_issuer_next_to_a_self_hosted_one(accounts, issuer, ghes_issuer, broker,
                                                                            tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    assert add(account, name, {**github_relationship(), "issuer": ghes_issuer.url}).status_code == 201
    # The same repository and workflow from the CLI, which cannot name an issuer: not a duplicate.
    cli = account.npm("trust", "github", name, "--repo", "acme/widget", "--file", "release.yml",
                      "--allow-stage-publish", "--yes", f"--otp={account.otp()}")
    assert cli.returncode == 0, cli
    wire = account.http("GET", f"-/package/{name}/trust").json()
    assert sorted(r["issuer"] for r in wire) == sorted([issuer.url, ghes_issuer.url])
    listed = account.npm("trust", "list", name, "--json")
    assert listed.returncode == 0, listed
    assert [r["repository"] for r in printed_json(listed.stdout)] == ["acme/widget", "acme/widget"]
    assert exchange(broker.url, name, issuer.token()).status_code == 201


def test_an_issuer_not_configured_for_the_kind_is_refused(accounts, gitlab_issuer, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    for named in ("https://ghe.evil.example/_services/token", gitlab_issuer.url, 7):
        # The body is refused before the one-time code would be checked: no code spent on it.
        refused = account.http("POST", f"-/package/{name}/trust", json=[{**github_relationship(), "issuer": named}])
        assert refused.status_code == 400, refused.text
        assert "issuer" in refused.json()["error"]
    assert account.http("GET", f"-/package/{name}/trust").json() == []
