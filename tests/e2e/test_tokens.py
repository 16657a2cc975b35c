"""Granular access tokens with `npm token create|list|revoke`, and what each token may do."""

from __future__ import annotations

import re

from tests.support.accounts import PASSWORD
from tests.support.packages import make_package, unique_name


def create_token(account, *flags: str, otp: bool = False) -> str:
    args = ["token", "create", f"--password={PASSWORD}", *flags]
    if otp:
        args.append(f"--otp={account.otp()}")
    result = account.npm(*args)
    assert result.returncode == 0, result
    match = re.search(r"Created token (\S+)", result.stdout)
    assert match, result
    return match.group(1)


def publish(account, directory, *flags: str):
    return account.npm("publish", *flags, cwd=directory)


def test_token_create_list_and_revoke_by_key(accounts):
    account = accounts.create()
    token = create_token(account, "--name=ci", "--packages-and-scopes-permission=read-write", "--expires=7",
                         "--token-description=for ci")
    listed = account.npm("token", "list")
    assert listed.returncode == 0, listed
    line = next(l for l in listed.stdout.splitlines() if l.startswith(f"Token {token[:9]}"))
    key_prefix = re.search(r"with id (\S+)", line).group(1)
    revoked = account.npm("token", "revoke", key_prefix)
    assert revoked.returncode == 0, revoked
    assert "Removed 1 token" in revoked.stdout
    assert account.http("GET", "-/whoami", token=token).status_code == 401


def test_token_revoke_accepts_the_token_value(accounts):
    account = accounts.create()
    token = create_token(account)
    revoked = account.npm("token", "revoke", token)
    assert revoked.returncode == 0, revoked
    assert account.http("GET", "-/whoami", token=token).status_code == 401


def test_token_create_reports_expiry_and_cidr(accounts):
    account = accounts.create()
    result = account.npm("token", "create", f"--password={PASSWORD}", "--expires=30", "--cidr=10.0.0.0/8")
    assert result.returncode == 0, result
    assert "with IP whitelist: 10.0.0.0/8" in result.stdout
    assert re.search(r"expires: \d{4}-\d\d-\d\d", result.stdout)


def test_token_outside_its_cidr_whitelist_is_refused(accounts):
    account = accounts.create()
    token = create_token(account, "--cidr=10.0.0.0/8")
    account.use_token(token)
    result = account.npm("whoami")
    assert result.returncode != 0
    assert "EAUTHIP" in result.output or "IP address" in result.output


def test_token_create_with_2fa_needs_an_otp(accounts):
    account = accounts.create()
    account.enable_2fa()
    refused = account.npm("token", "create", f"--password={PASSWORD}")
    assert refused.returncode != 0
    assert "EOTP" in refused.output
    create_token(account, otp=True)


def test_granular_token_without_bypass_needs_an_otp_to_publish_on_a_2fa_account(accounts, tmp_path):
    account = accounts.create()
    account.enable_2fa()
    token = create_token(account, "--packages-and-scopes-permission=read-write", otp=True)
    account.use_token(token)
    directory = make_package(tmp_path, unique_name())
    refused = publish(account, directory)
    assert refused.returncode != 0
    assert "EOTP" in refused.output
    done = publish(account, directory, f"--otp={account.otp()}")
    assert done.returncode == 0, done


def test_granular_token_with_bypass_publishes_without_an_otp(accounts, tmp_path):
    account = accounts.create()
    account.enable_2fa()
    token = create_token(account, "--bypass-2fa", "--packages-and-scopes-permission=read-write", otp=True)
    account.use_token(token)
    result = publish(account, make_package(tmp_path, unique_name()))
    assert result.returncode == 0, result


def test_read_only_token_cannot_publish(accounts, tmp_path):
    account = accounts.create()
    token = create_token(account, "--packages-and-scopes-permission=read-only")
    account.use_token(token)
    result = publish(account, make_package(tmp_path, unique_name()))
    assert result.returncode != 0
    assert "E403" in result.output and "read-only" in result.output


def test_token_limited_to_packages_cannot_publish_others(accounts, tmp_path):
    account = accounts.create()
    mine = unique_name()
    token = create_token(account, f"--packages={mine}", "--packages-and-scopes-permission=read-write")
    account.use_token(token)
    assert publish(account, make_package(tmp_path, mine)).returncode == 0
    other = publish(account, make_package(tmp_path, unique_name()))
    assert other.returncode != 0
    assert "E403" in other.output


def test_token_limited_to_a_scope_publishes_only_in_that_scope(accounts, tmp_path):
    account = accounts.create()
    token = create_token(account, "--scopes=@team", "--packages-and-scopes-permission=read-write")
    account.use_token(token)
    ok = publish(account, make_package(tmp_path, unique_name(scope="team")), "--access=public")
    assert ok.returncode == 0, ok
    other = publish(account, make_package(tmp_path, unique_name(scope="elsewhere")), "--access=public")
    assert other.returncode != 0
    assert "E403" in other.output


def test_granular_token_cannot_create_tokens(accounts):
    account = accounts.create()
    token = create_token(account, "--packages-and-scopes-permission=read-write")
    response = account.http("POST", "-/npm/v1/tokens", token=token, json={"password": PASSWORD})
    assert response.status_code == 403
