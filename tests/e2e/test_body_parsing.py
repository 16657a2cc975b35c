"""Malformed and hostile JSON bodies get a 400 `body.invalid-json`, never a 500 or a traceback."""

from __future__ import annotations

import pytest

from tests.support.packages import unique_name

DEPTH = 100_000
HOSTILE = {
    "nested-arrays": b"[" * DEPTH,
    "nested-objects": b'{"a":' * DEPTH,
    "closed-nesting": b"[" * 200 + b"]" * 200,  # valid JSON, but deeper than any package document
    "a-million-values": b"[" + b"0," * 1_000_001 + b"0]",
}


def assert_invalid_json(response) -> None:
    assert response.status_code == 400, response.text[:300]
    assert response.json()["code"] == "body.invalid-json"


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_publish_body_is_a_400(accounts, broker, body):
    account = accounts.create()
    assert_invalid_json(account.http("PUT", unique_name(), content=body,
                                     headers={"content-type": "application/json"}))
    assert "Traceback" not in broker.log()


@pytest.mark.parametrize("body", [HOSTILE["nested-arrays"], HOSTILE["nested-objects"]], ids=["arrays", "objects"])
def test_hostile_stage_body_is_a_400(accounts, tmp_path, body):
    from tests.support.packages import make_package

    account = accounts.create()
    name = unique_name()
    assert account.npm("publish", cwd=make_package(tmp_path, name)).returncode == 0
    response = account.http("POST", f"-/stage/package/{name}", content=body,
                            headers={"content-type": "application/json"})
    assert_invalid_json(response)


@pytest.mark.parametrize("path", ["-/npm/v1/tokens", "-/npm/v1/user"])
def test_hostile_small_body_is_a_400(accounts, path):
    account = accounts.create()
    response = account.http("POST", path, content=b"[" * 200_000, headers={"content-type": "application/json"})
    assert_invalid_json(response)


def test_deep_dist_tag_body_is_a_400(accounts, tmp_path):
    from tests.support.packages import make_package

    account = accounts.create()
    name = unique_name()
    assert account.npm("publish", cwd=make_package(tmp_path, name)).returncode == 0
    response = account.http("PUT", f"-/package/{name}/dist-tags/next", content=b"[" * 200_000,
                            headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text[:300]


@pytest.mark.parametrize("escaped", [False, True], ids=["plain", "slashes-escaped"])
def test_a_large_publish_parsed_from_its_file_serves_the_same_bytes(accounts, broker, escaped):
    """Bodies over 4 MiB are parsed with the attachment's base64 in a file (api/spill.py); JSON may
    write "/" as "\\/" and the bytes must still come out the same."""
    import hashlib
    import json
    import os

    import httpx

    from tests.support.packages import publish_document, tarball

    account, name = accounts.create(), unique_name()
    data = tarball({"name": name, "version": "1.0.0"}, {"package/blob.bin": os.urandom(5 * 1024 * 1024)})
    text = json.dumps(publish_document(name, "1.0.0", data=data, manifest_extra={"readme": "r/" * 3_000_000}))
    if escaped:
        text = text.replace("/", "\\/")
    response = account.http("PUT", name, content=text.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    served = httpx.get(f"{broker.url}{name}/-/{name}-1.0.0.tgz").content
    assert hashlib.sha256(served).digest() == hashlib.sha256(data).digest()
    assert httpx.get(broker.url + name).json()["readme"] == "r/" * 3_000_000
