"""A token made for automation (a trust token, a granular token, --bypass-2fa or not) publishes
versions and nothing else: a package's access, owners and publishing access change only by an
owner's logged-in session with 2FA and a one-time password (issue 14, item 4)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.accounts import PASSWORD
from tests.support.packages import make_package, publish_document, unique_name
from tests.support.trust import github_relationship, trust_token


def restricted_package(accounts, *permissions: str):
    """A restricted scoped package of a fresh account with 2FA, trusting the fake issuer's job."""
    account = accounts.create()
    name = unique_name(scope="ci")
    assert account.http("PUT", name, json=publish_document(name, "1.0.0", access="restricted")).status_code == 200
    account.enable_2fa()
    if permissions:
        created = account.http("POST", f"-/package/{name}/trust", otp=True,
                               json=[github_relationship(permissions=permissions)])
        assert created.status_code == 201, created.text
    return account, name


def access_of(account, name: str) -> str:
    return account.http("GET", f"-/package/{name}/access").json()["access"]


def bypass_token(account, otp: bool = True) -> str:
    created = account.http("POST", "-/npm/v1/tokens", otp=otp, json={
        "password": PASSWORD, "bypass_2fa": True, "packages_and_scopes_permission": "read-write"})
    assert created.status_code == 200, created.text
    return created.json()["token"]


def _trust_token_publish(broker, issuer, name: str, access: str) -> httpx.Response:
    """Version 1.1.0 published with a token the fake issuer's job got from the exchange."""
    token = trust_token(broker.url, name, issuer)
    return httpx.put(broker.url + name.replace("/", "%2f"), timeout=60, headers={"authorization": f"Bearer {token}"},
                     json=publish_document(name, "1.1.0", access=access))


def test_a_trust_token_publish_cannot_make_a_restricted_package_public(accounts, broker, issuer):
    account, name = restricted_package(accounts, "createPackage")
    response = _trust_token_publish(broker, issuer, name, access="public")
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "trust.permission-denied"
    assert "npm access set status=public" in response.json()["error"]
    assert access_of(account, name) == "restricted"
    assert httpx.get(broker.url + name.replace("/", "%2f")).status_code == 404, "still hidden from strangers"


def test_a_trust_token_publish_that_keeps_the_access_is_accepted(accounts, broker, issuer):
    account, name = restricted_package(accounts, "createPackage")
    response = _trust_token_publish(broker, issuer, name, access="restricted")
    assert response.status_code == 200, response.text
    assert access_of(account, name) == "restricted"


def test_a_bypass_token_publish_cannot_make_a_restricted_package_public(accounts):
    account, name = restricted_package(accounts)
    response = account.http("PUT", name, token=bypass_token(account),
                            json=publish_document(name, "1.1.0", access="public"))
    assert response.status_code == 403, response.text
    assert access_of(account, name) == "restricted"


def test_a_bypass_token_cannot_change_the_owners(accounts):
    account, name = restricted_package(accounts)
    friend = accounts.create()
    token = bypass_token(account)
    document = account.http("GET", name.replace("/", "%2f")).json()
    document["maintainers"].append({"name": friend.name, "email": friend.email})
    response = account.http("PUT", f"{name.replace('/', '%2f')}/-rev/{document['_rev']}", token=token, json=document)
    assert response.status_code == 403, response.text
    assert "access token" in response.json()["error"]
    owners = account.http("GET", name.replace("/", "%2f")).json()["maintainers"]
    assert [m["name"] for m in owners] == [account.name]


@pytest.mark.parametrize("change", [{"access": "public"}, {"publish_requires_tfa": False}])
def test_a_bypass_token_cannot_change_access_or_publishing_access(accounts, change):
    account, name = restricted_package(accounts)  # one account per change: three OTPs each, no wait
    response = account.http("POST", f"-/package/{name}/access", token=bypass_token(account), otp=True, json=change)
    assert response.status_code == 403, response.text
    assert account.http("GET", f"-/package/{name}/access").json() == {"access": "restricted", "mfa": "none"}


def test_npm_access_set_needs_2fa_on_the_account(accounts, tmp_path):
    account = accounts.create()
    name = unique_name(scope="ci")
    assert account.npm("publish", "--access=restricted", cwd=make_package(tmp_path, name)).returncode == 0
    refused = account.npm("access", "set", "status=public", name)
    assert refused.returncode != 0 and "E403" in refused.output and "two-factor" in refused.output
    assert access_of(account, name) == "restricted"
    account.enable_2fa()
    done = account.npm("access", "set", "status=public", name, f"--otp={account.otp()}")
    assert done.returncode == 0, done
    assert access_of(account, name) == "public"


def test_a_2fa_session_publishing_with_access_public_still_opens_the_package(accounts, tmp_path):
    account, name = restricted_package(accounts)
    directory = make_package(tmp_path, name, "1.1.0")
    done = account.npm("publish", "--access=public", f"--otp={account.otp()}", cwd=directory)
    assert done.returncode == 0, done
    assert access_of(account, name) == "public"
