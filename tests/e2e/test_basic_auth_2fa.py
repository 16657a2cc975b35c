"""Username and password (Basic auth) never skip 2FA: an account with 2FA needs an npm-otp on every
route, reads of restricted packages included, and the stock npm CLI gets its OTP challenge."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import httpx

from tests.support.accounts import PASSWORD
from tests.support.packages import make_package, unique_name


def basic(account) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{account.name}:{PASSWORD}".encode()).decode()}


def use_basic_auth(account) -> None:
    """Legacy credentials in .npmrc, as `_auth` (npm sends them as Basic)."""
    netloc = urlsplit(account.registry).netloc
    encoded = base64.b64encode(f"{account.name}:{PASSWORD}".encode()).decode()
    account.npm.userconfig.write_text(f"//{netloc}/:_auth={encoded}\n")


def get(account, path: str, **headers) -> httpx.Response:
    return httpx.get(account.registry + path, headers={**basic(account), **headers}, timeout=60)


def assert_otp_challenge(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "OTP"
    assert response.json()["code"] == "otp.required"


def test_basic_auth_without_otp_is_challenged_on_whoami(accounts):
    account = accounts.create()
    account.enable_2fa()
    assert_otp_challenge(get(account, "-/whoami"))  # (`npm whoami` with _auth answers from .npmrc alone)


def test_basic_auth_with_a_valid_otp_is_the_account(accounts):
    account = accounts.create()
    account.enable_2fa()
    response = get(account, "-/whoami", **{"npm-otp": account.otp()})
    assert response.status_code == 200, response.text
    assert response.json() == {"username": account.name}


def test_basic_auth_with_a_wrong_otp_is_refused(accounts):
    account = accounts.create()
    authenticator = account.enable_2fa()
    response = get(account, "-/whoami", **{"npm-otp": authenticator.wrong_code()})
    assert response.status_code == 401
    assert response.json()["code"] == "otp.invalid"


def test_basic_auth_without_otp_cannot_publish(accounts, tmp_path):
    account = accounts.create()
    account.enable_2fa("auth-only")  # auth-only: the publish itself would not ask for an OTP
    use_basic_auth(account)
    name = unique_name()
    result = account.npm("publish", cwd=make_package(tmp_path, name))
    assert result.returncode != 0
    assert "EOTP" in result.output, result
    assert httpx.get(account.registry + name, timeout=30).status_code == 404


def test_basic_auth_without_otp_cannot_read_a_restricted_package(accounts, tmp_path):
    owner = accounts.create()
    owner.enable_2fa()
    name = unique_name(scope="private")
    published = owner.npm("publish", "--access=restricted", f"--otp={owner.otp()}", cwd=make_package(tmp_path, name))
    assert published.returncode == 0, published
    path = name.replace("/", "%2f")
    assert_otp_challenge(get(owner, path))
    assert_otp_challenge(get(owner, f"{path}/-/{name.split('/')[1]}-1.0.0.tgz"))
    assert get(owner, path, **{"npm-otp": owner.otp()}).status_code == 200


def test_npm_publish_with_basic_auth_and_one_otp_works(accounts, tmp_path):
    """npm sends --otp on the packument GET and on the PUT: the read checks the code without using
    it up, the publish uses it up."""
    account = accounts.create()
    account.enable_2fa()
    use_basic_auth(account)
    name = unique_name()
    code = account.otp()
    result = account.npm("publish", f"--otp={code}", cwd=make_package(tmp_path, name))
    assert result.returncode == 0, result
    again = account.npm("dist-tag", "add", f"{name}@1.0.0", "beta", f"--otp={code}")
    assert again.returncode != 0 and "EOTP" in again.output, "a code authorises one change"


def test_basic_auth_on_an_account_without_2fa_still_works(accounts):
    account = accounts.create()
    response = get(account, "-/whoami")
    assert response.status_code == 200, response.text
