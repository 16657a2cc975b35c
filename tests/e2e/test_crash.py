"""kill -9 a broker mid-upload and mid-approval: after a restart nothing half-written is visible
and the operation can be retried."""

from __future__ import annotations

import json
import os
import socket
import time

import httpx

from tests.support.accounts import Accounts
from tests.support.packages import publish_document, tarball, unique_name


def restart(backends, storage, broker_env, broker):
    port = broker.port
    broker.process.kill()  # SIGKILL: no cleanup, no graceful shutdown
    broker.process.wait(10)
    return backends.broker(storage, broker_env, port=port)


def test_a_broker_killed_while_receiving_a_large_stage_upload(backends, broker_env, npm_cache, tmp_path):
    storage = backends.storage()
    broker = backends.broker(storage, broker_env)
    account = Accounts(broker.url, tmp_path, npm_cache).create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    big = tarball({"name": name, "version": "2.0.0"}, {"package/blob.bin": os.urandom(24 * 1024 * 1024)})
    body = json.dumps(publish_document(name, "2.0.0", data=big)).encode()
    with socket.create_connection(("127.0.0.1", broker.port)) as sock:
        sock.sendall((f"POST /-/stage/package/{name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Authorization: Bearer {account.token}\r\nContent-Length: {len(body)}\r\n\r\n").encode())
        sock.sendall(body[: len(body) // 2])
        time.sleep(0.3)
        broker = restart(backends, storage, broker_env, broker)
    listed = account.http("GET", "-/stage", params={"package": name}).json()
    assert listed == {"items": [], "total": 0}
    assert list(httpx.get(broker.url + name).json()["versions"]) == ["1.0.0"]
    retried = account.http("POST", f"-/stage/package/{name}", content=body, headers={"content-type": "application/json"})
    assert retried.status_code == 201, retried.text
    download = account.http("GET", f"-/stage/{retried.json()['stageId']}/tarball")
    assert download.content == big
    broker.stop()


def _state(account, broker, name: str, stage_id: str) -> str:
    stage = account.http("GET", f"-/stage/{stage_id}").status_code == 200
    doc = httpx.get(broker.url + name).json()
    published = "1.1.0" in doc["versions"] and doc["dist-tags"].get("latest") == "1.1.0"
    assert stage != published, f"half-approved: staged={stage} published={published}"
    return "staged" if stage else "published"


def test_a_broker_killed_while_approving(backends, broker_env, npm_cache, tmp_path):
    storage = backends.storage()
    broker = backends.broker(storage, broker_env)
    outcomes = []
    for delay in (0.0, 0.002, 0.01):
        account = Accounts(broker.url, tmp_path / f"d{delay}", npm_cache).create()
        name = unique_name()
        assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
        account.enable_2fa()
        stage_id = account.http("POST", f"-/stage/package/{name}", json=publish_document(name, "1.1.0")).json()["stageId"]
        with socket.create_connection(("127.0.0.1", broker.port)) as sock:
            sock.sendall((f"POST /-/stage/{stage_id}/approve HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                          f"Authorization: Bearer {account.token}\r\nnpm-otp: {account.otp()}\r\n\r\n").encode())
            time.sleep(delay)
            broker = restart(backends, storage, broker_env, broker)
        state = _state(account, broker, name, stage_id)
        outcomes.append(state)
        if state == "staged":
            retried = account.http("POST", f"-/stage/{stage_id}/approve", otp=True)
            assert retried.status_code == 200, retried.text
            assert _state(account, broker, name, stage_id) == "published"
        tarball_url = httpx.get(broker.url + name).json()["versions"]["1.1.0"]["dist"]["tarball"]
        assert httpx.get(tarball_url).status_code == 200
    broker.stop()
