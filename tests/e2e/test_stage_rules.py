"""Staging rules that need exact requests: idempotency, races, validation, the audit log."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.packages import publish_document, tarball, unique_name


def package_of(accounts, with_2fa: bool = False):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    if with_2fa:
        account.enable_2fa()
    return account, name


def stage(account, name: str, doc: dict, key: str | None = None) -> httpx.Response:
    headers = {"idempotency-key": key} if key else {}
    return account.http("POST", f"-/stage/package/{name}", json=doc, headers=headers)


def test_the_same_idempotency_key_and_content_returns_the_same_stage(accounts):
    account, name = package_of(accounts)
    doc = publish_document(name, "1.1.0")
    first, retry = stage(account, name, doc, "run-1-1"), stage(account, name, doc, "run-1-1")
    assert first.status_code == retry.status_code == 201
    assert first.json()["stageId"] == retry.json()["stageId"]
    assert account.http("GET", "-/stage", params={"package": name}).json()["total"] == 1


def test_the_same_idempotency_key_with_other_content_is_a_409(accounts):
    account, name = package_of(accounts)
    assert stage(account, name, publish_document(name, "1.1.0"), "k").status_code == 201
    other = publish_document(name, "1.1.0", data=tarball({"name": name, "version": "1.1.0", "x": 1}))
    response = stage(account, name, other, "k")
    assert response.status_code == 409 and "other content" in response.json()["error"]


def test_concurrent_stage_requests_for_one_version_stage_it_once(accounts):
    account, name = package_of(accounts)
    docs = [publish_document(name, "1.1.0", data=tarball({"name": name, "version": "1.1.0", "n": i}))
            for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(r.status_code for r in pool.map(lambda d: stage(account, name, d), docs))
    assert statuses.count(201) == 1 and set(statuses) == {201, 409}, statuses


def test_concurrent_approvals_publish_once(accounts):
    account, name = package_of(accounts, with_2fa=True)
    stage_id = stage(account, name, publish_document(name, "1.1.0")).json()["stageId"]
    codes = [account.otp(), account.otp()]
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda c: account.http("POST", f"-/stage/{stage_id}/approve",
                                                         headers={"npm-otp": c}), codes))
    assert sorted(r.status_code for r in responses)[0] == 200
    assert [r.status_code for r in responses].count(200) == 1, [r.text for r in responses]
    assert list(httpx.get(account.registry + name).json()["versions"]) == ["1.0.0", "1.1.0"]


def test_a_private_package_cannot_be_staged(accounts):
    account, name = package_of(accounts)
    response = stage(account, name, publish_document(name, "1.1.0", manifest_extra={"private": True}))
    assert response.status_code == 400 and '"private": true' in response.json()["error"]


def test_a_staged_document_gets_the_same_validation_as_publish(accounts):
    account, name = package_of(accounts)
    doc = publish_document(name, "1.1.0")
    doc["versions"]["1.1.0"]["dist"]["shasum"] = "0" * 40
    assert stage(account, name, doc).status_code == 400
    assert stage(account, name, {"name": name}).status_code == 400


def test_a_read_only_token_cannot_stage(accounts):
    account, name = package_of(accounts)
    token = account.http("POST", "-/npm/v1/tokens", json={"password": "correct horse battery"}).json()["token"]
    response = account.http("POST", f"-/stage/package/{name}", token=token, json=publish_document(name, "1.1.0"))
    assert response.status_code == 403 and "read-only" in response.json()["error"]


def test_a_bad_stage_id_is_a_400_and_an_unknown_one_a_404(accounts):
    account, _ = package_of(accounts)
    assert account.http("GET", "-/stage/not-a-uuid").status_code == 400
    assert account.http("GET", "-/stage/6f1c2a4e-9b7d-4c1e-8a2b-3d4e5f607182").status_code == 404


def test_stage_approve_and_reject_are_audited_with_how_they_authenticated(accounts, broker):
    account, name = package_of(accounts, with_2fa=True)
    approved = stage(account, name, publish_document(name, "1.1.0")).json()["stageId"]
    rejected = stage(account, name, publish_document(name, "1.2.0")).json()["stageId"]
    assert account.http("POST", f"-/stage/{approved}/approve", otp=True).status_code == 200
    assert account.http("DELETE", f"-/stage/{rejected}", otp=True).status_code == 200
    events = broker.audit("stage.%", name)
    assert [e[0] for e in events] == ["stage.created", "stage.created", "stage.approved", "stage.rejected"]
    assert all(actor == account.name for _, actor, _ in events)
    assert events[2][2]["second_factor"] == "otp" and events[2][2]["auth"] == "session"
