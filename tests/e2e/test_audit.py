"""The audit log, readable: a package's security history for its owners (`GET /-/package/<name>/audit`)
and the whole log for operators (`stagegate-broker audit`), filled by real events from the stock npm CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.accounts import PASSWORD, Account, Accounts
from tests.support.broker import ROOT
from tests.support.packages import make_package, publish_document, set_version, unique_name

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
HISTORY = ["package.published", "package.updated", "package.updated", "package.updated", "trust.created", "oidc.exchange", "stage.created",
           "oidc.exchange", "stage.approved", "oidc.exchange"]


@dataclass
class History:
    """A package with a history made through the stock npm CLI, and every secret used to make it."""

    owner: Account
    co_owner: Account
    reader: Account  # a third and a fourth owner: an authenticator gives three codes at once, then one
    auditor: Account  # every 30 s, so the OTPs the history and the reads take are spread over four accounts
    name: str
    stage_id: str
    read_write: str  # the co-owner's granular tokens
    read_only: str
    minted: str  # a trust token minted for the package by an exchange
    jwt: str
    secrets: list[str] = field(default_factory=list)


def token_create(account: Account, permission: str) -> str:
    result = account.npm("token", "create", f"--password={PASSWORD}", f"--packages-and-scopes-permission={permission}")
    assert result.returncode == 0, result
    return re.search(r"Created token (\S+)", result.stdout).group(1)


def stage_publish(npm, directory, env) -> str:
    result = npm("stage", "publish", cwd=directory, env=env)
    assert result.returncode == 0, result
    return re.search(rf"\(staged with id ({UUID})\)", result.stdout).group(1)


@pytest.fixture(scope="module")
def history(broker, issuer, npm_cache, tmp_path_factory) -> History:
    """publish → owner add ×3 → trust github → OIDC stage (granted) → OIDC stage (refused) → approve → exchange.

    No account uses more than three OTPs here, nor more than four in all with the tests' reads."""
    root = tmp_path_factory.mktemp("audit")
    accounts = Accounts(broker.url, root, npm_cache)
    owner, co_owner = accounts.create("owner"), accounts.create("co")
    reader, auditor = accounts.create("reader"), accounts.create("auditor")
    name = unique_name()
    directory = make_package(root, name)
    assert (published := owner.npm("publish", cwd=directory)).returncode == 0, published
    owner.enable_2fa()  # changing owners takes a person with 2FA
    read_write, read_only = token_create(co_owner, "read-write"), token_create(co_owner, "read-only")
    for adder, added in ((owner, co_owner), (co_owner, reader), (reader, auditor)):
        done = adder.npm("owner", "add", added.name, name, f"--otp={adder.otp()}")
        assert done.returncode == 0, done
        added.enable_2fa()
    trusted = owner.npm("trust", "github", name, "--repo", "acme/widget", "--file", "release.yml",
                        "--allow-stage-publish", "--yes", f"--otp={owner.otp()}")
    assert trusted.returncode == 0, trusted
    set_version(directory, "1.1.0")
    stage_id = stage_publish(accounts.anonymous(), directory, issuer.job(run_id="5150"))
    set_version(directory, "1.2.0")
    refused = accounts.anonymous()("stage", "publish", cwd=directory, env=issuer.job(workflow="evil.yml"))
    assert refused.returncode != 0, refused
    approved = co_owner.npm("stage", "approve", stage_id, f"--otp={co_owner.otp()}")
    assert approved.returncode == 0, approved
    jwt = issuer.token(run_id="6160")
    exchanged = httpx.post(f"{broker.url}-/npm/v1/oidc/token/exchange/package/{name}",
                           headers={"authorization": f"Bearer {jwt}"}, timeout=30)
    assert exchanged.status_code == 201, exchanged.text
    minted = exchanged.json()["token"]
    return History(owner, co_owner, reader, auditor, name, stage_id, read_write, read_only, minted, jwt,
                   secrets=[owner.token, co_owner.token, reader.token, auditor.token, read_write, read_only, minted,
                            jwt, PASSWORD])


def read(account: Account, name: str, query: str = "", *, otp: bool = True, token: str | None = None):
    return account.http("GET", f"-/package/{name}/audit{query}", otp=otp, token=token)


def items(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["items"]


def command(broker, *args: str) -> subprocess.CompletedProcess:
    """`stagegate-broker audit …` as an operator runs it, with the broker's own configuration."""
    env = {**os.environ, "STAGEGATE_DATA_DIR": str(broker.data_dir), **broker.env}
    result = subprocess.run([sys.executable, "-m", "broker.cli", "audit", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


# --- the route --------------------------------------------------------------------------------------

def test_the_owner_reads_the_history_newest_first_with_how_each_actor_authenticated(history):
    entries = items(read(history.auditor, history.name))
    assert [e["event"] for e in entries] == HISTORY[::-1]
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) for e in entries)
    by_event = {}
    for entry in reversed(entries):
        by_event.setdefault(entry["event"], []).append(entry)
    published, = by_event["package.published"]
    assert published["actor"] == history.owner.name and published["auth"]["kind"] == "session"
    assert published["detail"]["version"] == "1.0.0"
    trust, = by_event["trust.created"]
    assert trust["auth"]["kind"] == "session" and trust["detail"]["claims"]["repository"] == "acme/widget"
    granted, refused, direct = by_event["oidc.exchange"]
    assert granted["auth"] == {"kind": "oidc", "origin": {
        "repository": "acme/widget", "workflow_ref": "acme/widget/.github/workflows/release.yml@refs/heads/main",
        "ref": "refs/heads/main", "sha": "0123456789abcdef0123456789abcdef01234567", "run_id": "5150",
        "run_attempt": "1", "actor": "octocat"}}
    assert granted["detail"]["outcome"] == "granted"
    assert refused["detail"]["outcome"].startswith("refused 403")
    assert refused["auth"]["origin"]["workflow_ref"].endswith("/evil.yml@refs/heads/main")
    assert direct["auth"]["origin"]["run_id"] == "6160"
    staged, = by_event["stage.created"]
    assert staged["actor"] == "acme/widget" and staged["auth"]["kind"] == "trust" and staged["auth"]["tokenId"]
    assert staged["auth"]["origin"]["run_id"] == "5150" and staged["detail"]["stage_id"] == history.stage_id
    approved, = by_event["stage.approved"]
    assert approved["actor"] == history.co_owner.name
    assert approved["auth"] == {"kind": "session", "tokenId": approved["auth"]["tokenId"], "secondFactor": "otp"}
    assert approved["detail"]["staged_by"] == "acme/widget" and approved["detail"]["version"] == "1.1.0"


def test_pages_hold_perpage_entries_and_report_the_total(history):
    first = read(history.auditor, history.name, "?perPage=3").json()
    second = read(history.reader, history.name, "?perPage=3&page=1").json()
    assert first["total"] == second["total"] == len(HISTORY)
    assert [e["event"] for e in first["items"] + second["items"]] == HISTORY[::-1][:6]
    assert first["items"][-1]["id"] > second["items"][0]["id"]


def test_a_granular_token_with_write_access_reads_with_an_otp_and_time_filters_apply(history, broker):
    everything = [json.loads(line) for line in command(broker, "--package", history.name, "--json").stdout.splitlines()]
    times = {}
    for entry in everything:
        times.setdefault(entry["event"], entry["time"])  # the first of each event
    window = f"?since={times['trust.created']}&until={times['stage.approved']}"
    # the co-owner's fourth second factor: a recovery code (a fourth TOTP code would wait for the next step)
    entries = items(history.co_owner.http("GET", f"-/package/{history.name}/audit{window}", token=history.read_write,
                                          headers={"npm-otp": history.co_owner.recovery_code()}))
    assert [e["event"] for e in entries] == ["oidc.exchange", "stage.created", "oidc.exchange", "trust.created"]


def test_reading_without_an_otp_is_challenged(history):
    response = read(history.owner, history.name, otp=False)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "OTP"
    assert response.json()["code"] == "otp.required"


def test_a_bad_filter_is_a_400_that_costs_no_otp(history):
    for query in ("?since=yesterday", "?until=2026-13-01", "?event=%25"):
        response = read(history.owner, history.name, query, otp=False)
        assert response.status_code == 400, response.text


def test_a_read_only_token_is_forbidden(history):
    response = read(history.co_owner, history.name, token=history.read_only, otp=False)
    assert response.status_code == 403 and "write access" in response.json()["error"]


def test_a_trust_token_is_forbidden(history):
    response = read(history.owner, history.name, token=history.minted, otp=False)
    assert response.status_code == 403, response.text


def test_a_non_owner_is_forbidden_even_with_an_otp(history, accounts):
    stranger = accounts.create()
    assert read(stranger, history.name, otp=False).status_code == 403
    stranger.enable_2fa()
    response = read(stranger, history.name)
    assert response.status_code == 403 and "owners" in response.json()["error"]


def test_a_restricted_package_is_not_found_for_others(accounts):
    owner, stranger = accounts.create(), accounts.create()
    name = unique_name(scope=owner.name)
    assert owner.http("PUT", name.replace("/", "%2f"), json=publish_document(name, "1.0.0")).status_code == 200
    assert read(stranger, name.replace("/", "%2f"), otp=False).status_code == 404
    assert read(owner, name.replace("/", "%2f"), otp=False).status_code == 403  # no 2FA on the account
    assert read(owner, "pkg-never-published", otp=False).status_code == 404


def test_an_owner_without_2fa_is_forbidden(history, accounts):
    owner = accounts.create()
    name = unique_name()
    assert owner.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    response = read(owner, name, otp=False)
    assert response.status_code == 403 and "two-factor" in response.json()["error"]


# --- no secret, anywhere -----------------------------------------------------------------------------

def _leaves(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield str(value)


def _otps(account: Account, since: float) -> set[str]:
    """Every code the account's authenticator could have given since `since`."""
    totp = account.authenticator._totp
    return {totp.generate(step * 30).decode() for step in range(int(since // 30) - 2, int(time.time() // 30) + 3)}


def test_no_entry_holds_a_token_jwt_otp_or_password(history, broker):
    whole = command(broker, "--json").stdout
    entries = [json.loads(line) for line in whole.splitlines()]
    assert any(e["package"] == history.name for e in entries)
    for secret in history.secrets:
        assert secret not in whole
    assert not re.search(r"\bsg_[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]+\.", whole), "a token or JWT in the log"
    otps = set().union(*(_otps(a, time.time() - 3600) for a in (history.owner, history.co_owner, history.reader,
                                                                      history.auditor)))
    for entry in entries:
        assert not otps & set(_leaves(entry)), entry
    import sqlalchemy

    engine = sqlalchemy.create_engine(broker.database_url)
    with engine.connect() as conn:  # and the rows themselves, as they sit in the database
        raw = "\n".join(f"{actor} {detail}" for actor, detail in conn.execute(
            sqlalchemy.text("select actor, detail from audit_log")))
    engine.dispose()
    assert not any(secret in raw for secret in history.secrets)
    assert not re.search(r"\bsg_[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]+\.", raw)


# --- the command ---------------------------------------------------------------------------------------

def test_the_command_prints_one_line_per_event_oldest_first(history, broker):
    lines = command(broker, "--package", history.name).stdout.splitlines()
    assert [line.split()[1] for line in lines] == HISTORY
    for line in lines:
        when, event, package, actor = line.split()[:4]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", when) and package == history.name
    approved = lines[HISTORY.index("stage.approved")]
    assert f"{history.co_owner.name} (session, secondFactor=otp)" in approved and "version=1.1.0" in approved
    staged = lines[HISTORY.index("stage.created")]
    assert "acme/widget (trust, repository=acme/widget" in staged and "run_id=5150" in staged


def test_the_command_filters_by_event_and_time_and_writes_json_lines(history, broker):
    oidc = [json.loads(line) for line in command(broker, "--package", history.name, "--event", "oidc",
                                                 "--json").stdout.splitlines()]
    assert [e["event"] for e in oidc] == ["oidc.exchange"] * 3
    assert [e["auth"]["origin"].get("run_id") for e in oidc] == ["5150", "777", "6160"]
    assert command(broker, "--package", history.name, "--since", "2999-01-01").stdout == ""
    assert command(broker, "--package", history.name, "--until", "2000-01-01").stdout == ""


def test_the_command_refuses_a_date_it_cannot_read(broker):
    env = {**os.environ, **broker.env}
    result = subprocess.run([sys.executable, "-m", "broker.cli", "audit", "--since", "last week"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "ISO 8601" in result.stderr


def test_event_filters_take_a_kind_or_an_exact_event(history):
    oidc = items(read(history.owner, history.name, "?event=oidc."))
    assert [e["event"] for e in oidc] == ["oidc.exchange"] * 3
    approved = items(read(history.reader, history.name, "?event=stage.approved"))
    assert [e["event"] for e in approved] == ["stage.approved"]
