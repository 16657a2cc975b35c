"""Accounts with the stock npm CLI: ping, adduser, login, whoami, logout, profile, 2FA."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.support.accounts import PASSWORD
from tests.support.broker import ROOT
from tests.support.otp import Authenticator
from tests.support.tty import finish, spawn


def test_npm_ping_gets_pong(accounts):
    result = accounts.anonymous()("ping", "--loglevel=notice")
    assert result.returncode == 0, result
    assert "PONG" in result.output


def _adduser(npm, name: str, password: str, email: str, otp: Authenticator | None = None) -> tuple[int, str]:
    child = spawn(npm, "adduser", "--auth-type=legacy")
    child.expect("Username:")
    child.sendline(name)
    child.expect("Password:")
    child.sendline(password)
    child.expect("Email")
    child.sendline(email)
    if otp:
        child.expect("Enter OTP:")
        child.sendline(otp.code())
    return finish(child)


def test_adduser_creates_an_account_and_saves_its_token(accounts):
    npm = accounts.anonymous()
    name = f"new-{uuid.uuid4().hex[:8]}"
    status, output = _adduser(npm, name, PASSWORD, f"{name}@example.test")
    assert status == 0, output
    assert "Logged in on" in output
    assert "_authToken=sg_" in npm.userconfig.read_text()
    whoami = npm("whoami")
    assert whoami.stdout.strip() == name, whoami


def test_adduser_of_an_existing_account_with_its_password_logs_in(accounts):
    existing = accounts.create()
    npm = accounts.anonymous()
    status, output = _adduser(npm, existing.name, PASSWORD, existing.email)
    assert status == 0, output
    assert npm("whoami").stdout.strip() == existing.name


def test_adduser_of_an_existing_account_with_a_wrong_password_is_refused(accounts):
    existing = accounts.create()
    status, output = _adduser(accounts.anonymous(), existing.name, "not the password", existing.email)
    assert status != 0
    assert "Incorrect or missing password" in output


def test_login_of_an_account_with_2fa_asks_for_the_otp(accounts):
    existing = accounts.create()
    authenticator = existing.enable_2fa()
    npm = accounts.anonymous()
    child = spawn(npm, "login", "--auth-type=legacy")
    child.expect("Username:")
    child.sendline(existing.name)
    child.expect("Password:")
    child.sendline(PASSWORD)
    child.expect("Enter OTP:")
    child.sendline(authenticator.code())
    status, output = finish(child)
    assert status == 0, output
    assert npm("whoami").stdout.strip() == existing.name


def test_login_of_an_unknown_user_says_there_is_no_such_user(accounts):
    npm = accounts.anonymous()
    child = spawn(npm, "login", "--auth-type=legacy")
    child.expect("Username:")
    child.sendline("nobody-" + uuid.uuid4().hex[:6])
    child.expect("Password:")
    child.sendline(PASSWORD)
    status, output = finish(child)
    assert status != 0
    assert "There is no user with the username" in output


def test_whoami_with_a_bad_token_tells_the_user_to_log_in_again(accounts):
    npm = accounts.anonymous()
    npm.userconfig.write_text(f"//{npm.registry.split('://')[1]}:_authToken=sg_forged\n")
    result = npm("whoami")
    assert result.returncode != 0
    assert "your authentication token seems to be invalid" in result.output


def test_logout_revokes_the_session_token(accounts):
    account = accounts.create()
    token = account.token
    result = account.npm("logout")
    assert result.returncode == 0, result
    assert not account.npm.userconfig.exists() or "_authToken" not in account.npm.userconfig.read_text()
    assert httpx.get(account.registry + "-/whoami", headers={"authorization": f"Bearer {token}"}).status_code == 401


def test_profile_get_shows_the_account(accounts):
    account = accounts.create()
    result = account.npm("profile", "get", "--json")
    assert result.returncode == 0, result
    assert f'"name": "{account.name}"' in result.stdout
    assert '"tfa": false' in result.stdout


@pytest.mark.parametrize("mode", ["auth-and-writes", "auth-only"])
def test_enable_2fa_returns_a_secret_confirms_with_an_otp_and_prints_recovery_codes(accounts, mode):
    account = accounts.create()
    child = spawn(account.npm, "profile", "enable-2fa", mode)
    child.expect("password:")
    child.sendline(PASSWORD)
    child.expect(r"Or enter code: (\S+)")
    authenticator = Authenticator(child.match.group(1))
    child.expect("OTP code from your authenticator")
    child.sendline(authenticator.code())
    status, output = finish(child)
    assert status == 0, output
    assert "2FA successfully enabled" in output
    assert len(re.findall(r"\t([0-9a-f]{16})\r?\n", output)) == 5
    profile = account.npm("profile", "get")
    assert re.search(rf"two-factor auth:\s+{mode}", profile.stdout), profile


def test_disable_2fa_needs_the_password_and_an_otp(accounts):
    account = accounts.create()
    authenticator = account.enable_2fa()
    child = spawn(account.npm, "profile", "disable-2fa", f"--otp={authenticator.code()}")
    child.expect("password:")
    child.sendline(PASSWORD)
    status, output = finish(child)
    assert status == 0, output
    assert "Two factor authentication disabled" in output
    assert account.http("GET", "-/npm/v1/user").json()["tfa"] is False


def test_an_otp_is_accepted_only_once(accounts):
    account = accounts.create()
    account.enable_2fa()
    code = account.otp()
    first = account.http("POST", "-/npm/v1/tokens", json={"password": PASSWORD}, headers={"npm-otp": code})
    again = account.http("POST", "-/npm/v1/tokens", json={"password": PASSWORD}, headers={"npm-otp": code})
    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert "already used" in again.json()["error"]


def test_repeated_wrong_otps_are_rate_limited(accounts):
    account = accounts.create()
    authenticator = account.enable_2fa()
    responses = [account.http("POST", "-/npm/v1/tokens", json={"password": PASSWORD},
                              headers={"npm-otp": authenticator.wrong_code()}) for _ in range(6)]
    assert [r.status_code for r in responses] == [401] * 5 + [429]
    assert responses[5].json()["code"] == "otp.rate-limited"
    assert 25 <= int(responses[5].headers["retry-after"]) <= 30
    right = account.http("POST", "-/npm/v1/tokens", json={"password": PASSWORD}, otp=True)
    assert right.status_code == 429, "a right code must not get past the limit either"


def test_signup_is_closed_by_default_and_an_unknown_name_answers_like_a_wrong_password(backends):
    closed = backends.broker()
    try:
        env = {**os.environ, "STAGEGATE_DATA_DIR": str(closed.data_dir), **closed.env}
        subprocess.run([sys.executable, "-m", "broker.cli", "user", "add", "known", "--email", "k@example.test"],
                       input=PASSWORD + "\n", cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        answers = [httpx.put(closed.url + f"-/user/org.couchdb.user:{name}",
                             json={"name": name, "password": "not " + PASSWORD, "email": f"{name}@example.test"})
                   for name in ("someone", "known")]
        assert [a.status_code for a in answers] == [401, 401]
        assert answers[0].json() == answers[1].json()
        assert "stagegate-broker user add" in answers[0].json()["error"]
    finally:
        closed.stop()
