"""Two broker instances over one PostgreSQL database and one S3 bucket, and one broker with two worker
processes over the suite's backend: every cross-request guarantee holds with real concurrent
requests split across both."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.accounts import Accounts
from tests.support.packages import publish_document, tarball, unique_name
from tests.support.trust import github_relationship

TRUST = [github_relationship()]


@pytest.fixture(scope="module", params=[pytest.param("instances", marks=pytest.mark.backend("postgres")),
                                        pytest.param("workers", marks=pytest.mark.backend("sqlite"))])
def pair(request, backends, broker_env):
    """Two ways in to one registry: two instances (PostgreSQL, S3), or the one URL of a broker with two
    workers (SQLite), where the kernel spreads the connections over both processes. Each runs in its
    backend's pass: over PostgreSQL, two workers are two processes as two instances are."""
    if request.param == "instances":
        storage = backends.storage("postgres")
        first, second = backends.broker(storage, broker_env), backends.broker(storage, broker_env)
        yield first, second
        first.stop()
        second.stop()
    else:
        both = backends.broker(env=broker_env, workers=2)
        yield both, both
        both.stop()


@pytest.fixture
def owner(pair, npm_cache, tmp_path):
    account = Accounts(pair[0].url, tmp_path, npm_cache).create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    return account, name


def at(broker, method: str, path: str, token: str, **kwargs) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.request(method, broker.url + path, headers=headers, timeout=60, **kwargs)


def test_both_instances_serve_the_same_registry(pair, owner):
    account, name = owner
    assert httpx.get(pair[1].url + name).json()["dist-tags"]["latest"] == "1.0.0"
    assert httpx.get(pair[1].url + "-/healthz").json() == {"ok": True, "database": "ok", "blobs": "ok"}
    tarball_url = httpx.get(pair[1].url + name).json()["versions"]["1.0.0"]["dist"]["tarball"]
    assert httpx.get(tarball_url.replace(pair[0].url, pair[1].url)).status_code == 200


def test_the_same_jwt_exchanged_at_both_instances_gives_exactly_one_token(pair, owner, issuer):
    account, name = owner
    account.enable_2fa()
    assert account.http("POST", f"-/package/{name}/trust", otp=True, json=TRUST).status_code == 201
    jwt = issuer.token()
    path = f"-/npm/v1/oidc/token/exchange/package/{name}"
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda i: at(pair[i % 2], "POST", path, jwt).status_code, range(10)))
    assert sorted(statuses) == [201] + [401] * 9, statuses


def test_fifty_concurrent_stage_requests_for_one_version_stage_it_once(pair, owner):
    account, name = owner
    docs = [publish_document(name, "2.0.0", data=tarball({"name": name, "version": "2.0.0", "n": i}))
            for i in range(50)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: at(pair[i % 2], "POST", f"-/stage/package/{name}", account.token,
                                              json=docs[i]).status_code, range(50)))
    assert statuses.count(201) == 1 and set(statuses) == {201, 409}, statuses
    listed = at(pair[1], "GET", "-/stage", account.token, params={"package": name}).json()
    assert listed["total"] == 1


def test_two_concurrent_approvals_at_both_instances_publish_once(pair, owner):
    account, name = owner
    account.enable_2fa()
    stage_id = at(pair[0], "POST", f"-/stage/package/{name}", account.token,
                  json=publish_document(name, "1.1.0")).json()["stageId"]
    codes = [account.otp(), account.otp()]
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda i: at(pair[i], "POST", f"-/stage/{stage_id}/approve", account.token,
                                               headers={"npm-otp": codes[i]}), range(2)))
    assert sorted(r.status_code for r in responses)[0] == 200
    assert [r.status_code for r in responses].count(200) == 1, [r.text for r in responses]
    doc = httpx.get(pair[1].url + name).json()
    assert list(doc["versions"]) == ["1.0.0", "1.1.0"] and doc["dist-tags"]["latest"] == "1.1.0"


def test_two_maintainers_approving_at_both_instances_at_once_are_both_counted(pair, owner, npm_cache, tmp_path):
    """With two approvals required, the two approvals of a stage, one at each instance at the same moment:
    neither is lost (each counted alone would leave the stage waiting) and the stage is published once."""
    account, name = owner
    account.enable_2fa()
    accounts = Accounts(pair[0].url, tmp_path, npm_cache)
    reviewers = [accounts.create("first"), accounts.create("second")]
    for reviewer in reviewers:
        assert account.npm("owner", "add", reviewer.name, name, f"--otp={account.otp()}").returncode == 0
        reviewer.enable_2fa()
    # Each account's fourth second factor is a recovery code: a fourth TOTP code would wait for the next step.
    assert account.http("POST", f"-/package/{name}/policy", headers={"npm-otp": account.recovery_code()},
                        json={"requiredApprovals": 2}).status_code == 200
    for minor in (1, 2, 3):
        stage_id = at(pair[0], "POST", f"-/stage/package/{name}", account.token,
                      json=publish_document(name, f"1.{minor}.0")).json()["stageId"]
        codes = [reviewer.otp() if minor < 3 else reviewer.recovery_code() for reviewer in reviewers]
        with ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(lambda i: at(pair[i], "POST", f"-/stage/{stage_id}/approve",
                                                   reviewers[i].token, headers={"npm-otp": codes[i]}), range(2)))
        assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
        assert [r.json()["code"] for r in responses if r.status_code == 409] == ["stage.awaiting-approvals"]
        assert httpx.get(pair[1].url + name).json()["dist-tags"]["latest"] == f"1.{minor}.0"


def test_the_same_otp_at_both_instances_is_accepted_once(pair, owner):
    account, _ = owner
    account.enable_2fa()
    code = account.otp()
    body = {"password": "correct horse battery"}
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: at(pair[i % 2], "POST", "-/npm/v1/tokens", account.token, json=body,
                                              headers={"npm-otp": code}).status_code, range(6)))
    assert sorted(statuses) == [200] + [401] * 5, statuses


def test_a_version_unpublished_at_one_is_gone_from_the_others_next_read(pair, owner):
    account, name = owner
    assert at(pair[0], "PUT", name, account.token, json=publish_document(name, "1.2.0")).status_code == 200
    tarball = f"{name}/-/{name}-1.2.0.tgz"
    for _ in range(4):  # kept in memory at both (every reader process has served it at least twice)
        assert httpx.get(pair[1].url + tarball).status_code == 200
        assert "1.2.0" in httpx.get(pair[1].url + name).json()["versions"]
    document = at(pair[0], "GET", name, account.token).json()
    del document["versions"]["1.2.0"]
    assert at(pair[0], "PUT", f"{name}/-rev/{document['_rev']}", account.token, json=document).status_code == 200
    for _ in range(4):
        assert httpx.get(pair[1].url + tarball).status_code == 404
        assert "1.2.0" not in httpx.get(pair[1].url + name).json()["versions"]
