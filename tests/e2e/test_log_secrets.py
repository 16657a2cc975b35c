"""No token, JWT or password ever reaches the broker's log, whatever path or header carries it."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.accounts import PASSWORD, Accounts
from tests.support.logscan import JWT_SHAPE, TOKEN_SHAPE


@pytest.fixture(scope="module")
def logged(backends):
    process = backends.broker(env={"STAGEGATE_OPEN_SIGNUP": "true"})  # at --log-level info: access lines too
    yield process
    process.stop()


@pytest.fixture
def people(logged, npm_cache, tmp_path) -> Accounts:
    return Accounts(logged.url, tmp_path, npm_cache)


def log_lines(broker) -> list[dict]:
    return [json.loads(line) for line in broker.log().splitlines() if line.startswith("{")]


def test_logout_path_does_not_log_the_token(logged, people):
    account = people.create()
    assert account.npm("logout").returncode == 0
    log = logged.log()
    assert account.token not in log
    assert "/-/user/token/<redacted>" in log  # the line is there, without the token


def test_token_revoke_path_does_not_log_the_token(logged, people):
    account = people.create()
    other = people.create()
    response = httpx.delete(f"{logged.url}-/npm/v1/tokens/token/{other.token}", headers=account.auth)
    assert response.status_code in (403, 404), response.text
    assert other.token not in logged.log()


def test_tokens_in_unexpected_places_are_redacted(logged, people):
    account = people.create()
    httpx.get(f"{logged.url}-/whoami/{account.token}", headers={"x-request-id": account.token})
    httpx.get(f"{logged.url}{account.token}", headers=account.auth)
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm8vciJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    httpx.get(f"{logged.url}-/package/{jwt}/access", headers=account.auth)
    log = logged.log()
    assert account.token not in log and jwt not in log and PASSWORD not in log
    assert not TOKEN_SHAPE.search(log) and not JWT_SHAPE.search(log)


def test_every_line_is_json_with_a_request_id(logged, people):
    account = people.create()
    response = httpx.get(f"{logged.url}-/whoami", headers={**account.auth, "x-request-id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    fresh = httpx.get(f"{logged.url}-/ping").headers["x-request-id"]
    assert len(fresh) == 32
    lines = log_lines(logged)
    assert len(lines) == len(logged.log().splitlines()), "a log line that is not JSON"
    access = [line for line in lines if line["logger"] == "stagegate.access"]
    assert {"path": "/-/whoami", "status": 200, "request_id": "trace-42"}.items() <= next(
        line for line in access if line.get("request_id") == "trace-42").items()
