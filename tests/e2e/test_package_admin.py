"""dist-tags, owners, deprecate, unpublish and publishing access with the stock npm CLI."""

from __future__ import annotations


import httpx

from tests.support.accounts import PASSWORD
from tests.support.packages import make_package, set_version, unique_name


def published(account, tmp_path, *versions: str, name: str | None = None) -> str:
    name = name or unique_name()
    directory = make_package(tmp_path, name, versions[0])
    for version in versions:
        set_version(directory, version)
        result = account.npm("publish", cwd=directory)
        assert result.returncode == 0, result
    return name


def bypass_token(account) -> str:
    """A read-write --bypass-2fa token, made before 2FA is on so it costs no OTP."""
    created = account.http("POST", "-/npm/v1/tokens", json={
        "password": PASSWORD, "bypass_2fa": True, "packages_and_scopes_permission": "read-write"})
    assert created.status_code == 200, created.text
    return created.json()["token"]


def test_dist_tag_add_ls_rm(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0", "1.1.0")
    added = account.npm("dist-tag", "add", f"{name}@1.0.0", "stable")
    assert added.returncode == 0, added
    assert f"+stable: {name}@1.0.0" in added.stdout
    listed = account.npm("dist-tag", "ls", name)
    assert "latest: 1.1.0" in listed.stdout and "stable: 1.0.0" in listed.stdout
    removed = account.npm("dist-tag", "rm", name, "stable")
    assert removed.returncode == 0, removed
    assert "stable" not in account.npm("dist-tag", "ls", name).stdout


def test_dist_tag_add_needs_an_otp_with_2fa(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0")
    account.enable_2fa()
    refused = account.npm("dist-tag", "add", f"{name}@1.0.0", "beta")
    assert refused.returncode != 0 and "EOTP" in refused.output
    done = account.npm("dist-tag", "add", f"{name}@1.0.0", "beta", f"--otp={account.otp()}")
    assert done.returncode == 0, done


def test_dist_tag_of_another_owners_package_is_forbidden(accounts, tmp_path):
    owner, other = accounts.create(), accounts.create()
    name = published(owner, tmp_path, "1.0.0")
    result = other.npm("dist-tag", "add", f"{name}@1.0.0", "evil")
    assert result.returncode != 0 and "E403" in result.output


def test_owner_add_and_rm(accounts, tmp_path):
    owner, friend = accounts.create(), accounts.create()
    name = published(owner, tmp_path, "1.0.0")
    owner.enable_2fa()
    added = owner.npm("owner", "add", friend.name, name, f"--otp={owner.otp()}")
    assert added.returncode == 0, added
    assert f"+ {friend.name} ({name})" in added.stdout
    assert friend.name in owner.npm("owner", "ls", name).stdout
    directory = make_package(tmp_path, name, "2.0.0")
    assert friend.npm("publish", cwd=directory).returncode == 0
    removed = owner.npm("owner", "rm", friend.name, name, f"--otp={owner.otp()}")
    assert removed.returncode == 0, removed
    assert friend.name not in owner.npm("owner", "ls", name).stdout


def test_owner_add_needs_2fa_on_the_account(accounts, tmp_path):
    owner, friend = accounts.create(), accounts.create()
    name = published(owner, tmp_path, "1.0.0")
    refused = owner.npm("owner", "add", friend.name, name)
    assert refused.returncode != 0 and "403 Forbidden" in refused.output, refused
    assert friend.name not in owner.npm("owner", "ls", name).stdout


def test_deprecate_and_undeprecate(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0", "1.1.0")
    result = account.npm("deprecate", f"{name}@<1.1.0", "use 1.1.0")
    assert result.returncode == 0, result
    doc = httpx.get(account.registry + name).json()
    assert doc["versions"]["1.0.0"]["deprecated"] == "use 1.1.0"
    assert "deprecated" not in doc["versions"]["1.1.0"]
    account.npm("deprecate", f"{name}@1.0.0", "")
    assert "deprecated" not in httpx.get(account.registry + name).json()["versions"]["1.0.0"]


def test_unpublish_one_version_moves_latest_and_removes_the_tarball(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0", "1.1.0")
    tarball = f"{account.registry}{name}/-/{name}-1.1.0.tgz"
    assert httpx.get(tarball).status_code == 200
    result = account.npm("unpublish", f"{name}@1.1.0")
    assert result.returncode == 0, result
    doc = httpx.get(account.registry + name).json()
    assert list(doc["versions"]) == ["1.0.0"] and doc["dist-tags"]["latest"] == "1.0.0"
    assert httpx.get(tarball).status_code == 404


def test_unpublish_whole_package(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0")
    result = account.npm("unpublish", name, "--force")
    assert result.returncode == 0, result
    assert httpx.get(account.registry + name).status_code == 404


def test_access_mfa_publish_disallows_tokens_but_allows_a_2fa_session(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0")
    bypass = bypass_token(account)
    account.enable_2fa()
    session = account.token
    result = account.npm("access", "set", "mfa=publish", name, f"--otp={account.otp()}")
    assert result.returncode == 0, result
    account.use_token(bypass)
    directory = make_package(tmp_path, name, "1.1.0")
    refused = account.npm("publish", cwd=directory)
    assert refused.returncode != 0
    assert "E403" in refused.output and "disallows tokens" in refused.output
    account.use_token(session)
    done = account.npm("publish", f"--otp={account.otp()}", cwd=directory)
    assert done.returncode == 0, done


def test_access_mfa_automation_lets_bypass_tokens_publish(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0")
    bypass = bypass_token(account)
    account.enable_2fa()
    assert account.npm("access", "set", "mfa=automation", name, f"--otp={account.otp()}").returncode == 0
    account.use_token(bypass)
    result = account.npm("publish", cwd=make_package(tmp_path, name, "1.1.0"))
    assert result.returncode == 0, result


def test_access_mfa_publish_refuses_a_session_without_2fa(accounts, tmp_path):
    account, friend = accounts.create(), accounts.create()
    name = published(account, tmp_path, "1.0.0")
    account.enable_2fa()
    assert account.npm("access", "set", "mfa=publish", name, f"--otp={account.otp()}").returncode == 0
    assert account.npm("owner", "add", friend.name, name, f"--otp={account.otp()}").returncode == 0
    result = friend.npm("publish", cwd=make_package(tmp_path, name, "1.1.0"))
    assert result.returncode != 0
    assert "requires two-factor authentication" in result.output


def test_access_get_status_of_a_public_package(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0")
    result = account.npm("access", "get", "status", name)
    assert result.stdout.strip() == f"{name}: public", result


def test_access_mfa_none_lifts_the_policy(accounts, tmp_path):
    account = accounts.create()
    name = published(account, tmp_path, "1.0.0")
    bypass = bypass_token(account)
    account.enable_2fa()
    assert account.npm("access", "set", "mfa=publish", name, f"--otp={account.otp()}").returncode == 0
    assert account.http("GET", f"-/package/{name}/access").json()["mfa"] == "publish"
    assert account.npm("access", "set", "mfa=none", name, f"--otp={account.otp()}").returncode == 0
    account.use_token(bypass)
    result = account.npm("publish", cwd=make_package(tmp_path, name, "1.1.0"))
    assert result.returncode == 0, result
