"""200 concurrent stage attempts of one version from 20 clients: one stage, 199 refusals with 409.

Twenty threads, each with its own httpx client (connection opened before the start), wait at a
barrier and then send ten stage requests each as fast as they can. Clients 0-9 send the same
document; clients 10-19 each send tarballs of their own, so both a repeated upload and competing
contents race for the version. Runs on the suite's backend (STAGEGATE_TEST_BACKEND).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter

import httpx

from tests.support.packages import publish_document, tarball, unique_name

CLIENTS, ATTEMPTS = 20, 10


def stage_documents(name: str) -> list[list[bytes]]:
    """For each client, its ten request bodies: the same document for half the clients, own ones for the rest."""
    shared = json.dumps(publish_document(name, "1.1.0")).encode()
    made = []
    for client in range(CLIENTS):
        if client < CLIENTS // 2:
            made.append([shared] * ATTEMPTS)
        else:
            made.append([json.dumps(publish_document(
                name, "1.1.0", data=tarball({"name": name, "version": "1.1.0", "attempt": f"{client}-{i}"}))).encode()
                for i in range(ATTEMPTS)])
    return made


def race(url: str, token: str, name: str, bodies: list[list[bytes]]) -> list[httpx.Response]:
    barrier = threading.Barrier(CLIENTS)
    results: list[list[httpx.Response]] = [[] for _ in range(CLIENTS)]
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def client(index: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=180) as http:
            http.get("-/ping")  # the connection is open before the start
            barrier.wait()
            for body in bodies[index]:
                results[index].append(http.post(f"-/stage/package/{name}", content=body))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [response for responses in results for response in responses]


def test_two_hundred_concurrent_stage_attempts_of_one_version_stage_it_once(accounts, broker, capsys):
    owner = accounts.create()
    name = unique_name()
    assert owner.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    packument_before = httpx.get(owner.registry + name).json()
    bodies = stage_documents(name)
    log_from = len(broker.log())

    started = time.monotonic()
    responses = race(owner.registry, owner.token, name, bodies)
    elapsed = time.monotonic() - started

    statuses = Counter(r.status_code for r in responses)
    codes = Counter(r.json().get("code") for r in responses if r.status_code == 409)
    with capsys.disabled():
        print(f"\nconcurrent stage: {len(responses)} attempts from {CLIENTS} clients in {elapsed:.1f} s: "
              f"statuses {dict(statuses)}, 409 codes {dict(codes)}")
    assert len(responses) == CLIENTS * ATTEMPTS
    assert statuses == {201: 1, 409: CLIENTS * ATTEMPTS - 1}, [r.text for r in responses if r.status_code != 409][:5]

    stages = owner.http("GET", "-/stage", params={"package": name}).json()
    assert stages["total"] == 1, stages
    (item,) = stages["items"]
    winner = next(r for r in responses if r.status_code == 201).json()["stageId"]
    assert item["id"] == winner and item["version"] == "1.1.0"
    staged_bytes = owner.http("GET", f"-/stage/{winner}/tarball").content
    assert item["integrity"] == "sha512-" + base64.b64encode(hashlib.sha512(staged_bytes).digest()).decode()
    assert httpx.get(owner.registry + name).json() == packument_before
    assert "Traceback" not in broker.log()[log_from:]
