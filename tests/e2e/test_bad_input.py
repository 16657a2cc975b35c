"""Bad input of every kind gets a clear 4xx and stores nothing."""

from __future__ import annotations

import base64
import os
import socket

import httpx
import pytest

from tests.support.packages import publish_document, tarball, unique_name


@pytest.fixture(scope="module")
def small_broker(backends):
    process = backends.broker(env={"STAGEGATE_OPEN_SIGNUP": "true", "STAGEGATE_MAX_TARBALL_BYTES": "65536"})
    yield process
    process.stop()


def assert_refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["error"], body


def assert_absent(account, name: str) -> None:
    assert httpx.get(account.registry + name.replace("/", "%2f")).status_code == 404


def test_malformed_json_is_a_400(accounts):
    account = accounts.create()
    name = unique_name()
    response = account.http("PUT", name, content=b'{"name": ', headers={"content-type": "application/json"})
    assert_refused(response, 400, "not valid JSON")
    assert_absent(account, name)


def test_wrong_types_are_a_400(accounts):
    account = accounts.create()
    name = unique_name()
    doc = publish_document(name, "1.0.0")
    doc["versions"] = ["1.0.0"]
    assert_refused(account.http("PUT", name, json=doc), 400, "versions")
    assert_absent(account, name)


@pytest.mark.parametrize("path", ["..%2f..%2fetc", "Upper-Case", "%2e%2e", "@scope%2f..", "name%00x", "_private"])
def test_path_tricks_in_names_are_refused(accounts, path):
    account = accounts.create()
    response = account.http("PUT", path, json=publish_document("x", "1.0.0"))
    assert response.status_code == 400, response.text
    # A NUL is refused for any path before routing goes further (PostgreSQL text cannot hold one).
    assert ("NUL character" if "%00" in path else "invalid package name") in response.json()["error"]


def test_document_for_another_name_than_the_url_is_refused(accounts):
    account = accounts.create()
    name, other = unique_name(), unique_name()
    assert_refused(account.http("PUT", name, json=publish_document(other, "1.0.0")), 400, "was sent to")
    assert_absent(account, name)
    assert_absent(account, other)


def test_integrity_that_does_not_match_the_bytes_is_refused(accounts):
    account = accounts.create()
    name = unique_name()
    doc = publish_document(name, "1.0.0")
    doc["versions"]["1.0.0"]["dist"]["integrity"] = "sha512-" + base64.b64encode(b"\0" * 64).decode()
    assert_refused(account.http("PUT", name, json=doc), 400, "dist.integrity does not match")
    assert_absent(account, name)


def test_tarball_whose_package_json_names_another_version_is_refused(accounts):
    account = accounts.create()
    name = unique_name()
    doc = publish_document(name, "1.0.0", data=tarball({"name": name, "version": "9.9.9"}))
    assert_refused(account.http("PUT", name, json=doc), 400, "the tarball's package.json")
    assert_absent(account, name)


def test_attachment_that_is_not_a_tarball_is_refused(accounts):
    account = accounts.create()
    name = unique_name()
    assert_refused(account.http("PUT", name, json=publish_document(name, "1.0.0", data=b"plain text")),
                   400, "not a readable gzipped tarball")


def test_invalid_base64_is_refused(accounts):
    account = accounts.create()
    name = unique_name()
    doc = publish_document(name, "1.0.0")
    doc["_attachments"][f"{name}-1.0.0.tgz"]["data"] = "***not base64***"
    assert_refused(account.http("PUT", name, json=doc), 400, "not valid base64")


def test_two_versions_in_one_document_are_refused(accounts):
    account = accounts.create()
    name = unique_name()
    doc = publish_document(name, "1.0.0")
    doc["versions"]["1.0.1"] = dict(doc["versions"]["1.0.0"], version="1.0.1")
    assert_refused(account.http("PUT", name, json=doc), 400, "exactly one version")


def test_invalid_semver_is_refused(accounts):
    account = accounts.create()
    name = unique_name()
    assert_refused(account.http("PUT", name, json=publish_document(name, "1.0")), 400, "not a valid semver")


def test_unauthenticated_publish_is_a_401(accounts):
    name = unique_name()
    response = httpx.put(accounts.registry + name, json=publish_document(name, "1.0.0"))
    assert response.status_code == 401


def test_declared_oversized_body_is_refused_before_it_is_read(small_broker):
    with socket.create_connection(("127.0.0.1", small_broker.port), timeout=10) as sock:
        sock.sendall(b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n{")
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer


def signed_up(broker) -> str:
    name = f"big-{unique_name()}"
    return httpx.put(f"{broker.url}-/user/org.couchdb.user:{name}", json={
        "name": name, "password": "long enough pw", "email": "b@example.test"}).json()["token"]


@pytest.mark.parametrize("method,path,megabytes", [("PUT", "big", 10), ("POST", "-/npm/v1/tokens", 1)])
def test_streamed_oversized_body_is_refused(small_broker, method, path, megabytes):
    def chunks():
        for _ in range(megabytes * 64):
            yield b"x" * 16384

    headers = {"authorization": f"Bearer {signed_up(small_broker)}"}
    try:
        response = httpx.request(method, small_broker.url + path, content=chunks(), headers=headers, timeout=30)
    except httpx.RemoteProtocolError:
        return  # the broker closed the connection after its 413: also a refusal
    assert response.status_code == 413


def test_tarball_over_the_limit_is_refused_and_nothing_is_stored(small_broker):
    name = unique_name()
    token = httpx.put(f"{small_broker.url}-/user/org.couchdb.user:big-{name}", json={
        "name": f"big-{name}", "password": "long enough pw", "email": "b@example.test"}).json()["token"]
    doc = publish_document(name, "1.0.0", data=tarball({"name": name, "version": "1.0.0"},
                                                       {"package/blob.bin": os.urandom(70_000)}))
    response = httpx.put(small_broker.url + name, json=doc, headers={"authorization": f"Bearer {token}"})
    assert response.status_code in (400, 413), response.text
    assert httpx.get(small_broker.url + name).status_code == 404


def test_dist_tag_body_must_be_a_version_string(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    response = account.http("PUT", f"-/package/{name}/dist-tags/beta", json={"version": "1.0.0"})
    assert_refused(response, 400, "JSON string")


def test_token_request_with_wrong_types_is_a_400(accounts):
    account = accounts.create()
    response = account.http("POST", "-/npm/v1/tokens", json={"password": "x", "expires": "soon"})
    assert_refused(response, 400, "expires")


def test_unknown_route_is_a_json_404(accounts):
    response = httpx.get(accounts.registry + "-/no/such/route")
    assert_refused(response, 404, "not found")
