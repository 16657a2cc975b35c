"""Uploads cost the registry only what has arrived, only from callers it knows, and never for long.

Every test attacks a real broker process over raw sockets: declared-but-never-sent bodies, half
request lines, uploads past the shared budget, clients that hang up mid-body.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.accounts import Accounts
from tests.support.packages import make_package, unique_name

MIB = 1024 * 1024
DECLARED = 140 * MIB
IDLE_TIMEOUT = 3  # seconds: STAGEGATE_BODY_IDLE_TIMEOUT and STAGEGATE_HEADER_TIMEOUT of this module's broker
BUDGET = 8 * MIB


@pytest.fixture(scope="module")
def guarded(backends):
    process = backends.broker(env={"STAGEGATE_OPEN_SIGNUP": "true",
                                   "STAGEGATE_BODY_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
                                   "STAGEGATE_HEADER_TIMEOUT": str(IDLE_TIMEOUT),
                                   "STAGEGATE_UPLOADS_IN_FLIGHT_BYTES": str(BUDGET)})
    yield process
    process.stop()


@pytest.fixture
def people(guarded, npm_cache, tmp_path) -> Accounts:
    return Accounts(guarded.url, tmp_path, npm_cache)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def put_headers(length: int, token: str | None = None, path: str = "/x") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"PUT {path} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {length}\r\n\r\n").encode()


def connect(broker) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=30)
    return sock


def answer_and_close(sock: socket.socket, within: float) -> bytes:
    """Everything the broker sends until it closes the connection; fails if it stays open past `within` s."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the broker kept the connection open for more than {within} s; it sent {received[:200]!r}")
    except ConnectionResetError:
        pass
    return received


def test_idle_declared_uploads_cost_no_memory_and_are_dropped(guarded, people, tmp_path):
    """50 connections declare a 140 MiB body (half with a valid token) and send none of it."""
    account = people.create()
    before = rss_bytes(guarded.process.pid)
    socks = []
    for i in range(50):
        sock = connect(guarded)
        sock.sendall(put_headers(DECLARED, account.token if i % 2 else None, path=f"/{unique_name()}"))
        socks.append(sock)
    time.sleep(1)
    grown = rss_bytes(guarded.process.pid) - before
    print(f"broker RSS grew by {grown / MIB:.1f} MiB with 50 idle 140 MiB uploads open")
    assert grown < 64 * MIB, f"RSS grew by {grown / MIB:.0f} MiB"

    name = unique_name()
    published = account.npm("publish", cwd=make_package(tmp_path, name))

    answers = [answer_and_close(sock, within=IDLE_TIMEOUT + 10) for sock in socks]
    for sock in socks:
        sock.close()
    assert published.returncode == 0, published.stderr
    assert httpx.get(guarded.url + name).status_code == 200
    assert all(a.startswith(b"HTTP/1.1 401") for a in answers[0::2]), answers[0][:200]
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers[1::2]), answers[1][:200]


def test_upload_without_credentials_is_refused_before_its_body(guarded):
    with connect(guarded) as sock:
        sock.sendall(put_headers(DECLARED, path=f"/{unique_name()}"))
        answer = answer_and_close(sock, within=5)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_upload_with_an_invalid_token_is_refused_before_its_body(guarded):
    with connect(guarded) as sock:
        sock.sendall(put_headers(DECLARED, token="sg_not-a-token-at-all", path=f"/{unique_name()}"))
        answer = answer_and_close(sock, within=5)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_partial_request_line_is_dropped(guarded):
    with connect(guarded) as sock:
        sock.sendall(b"PUT /x HTT")
        started = time.monotonic()
        assert answer_and_close(sock, within=IDLE_TIMEOUT + 10) == b""
    assert time.monotonic() - started >= IDLE_TIMEOUT - 0.5


def test_half_sent_headers_are_dropped(guarded):
    with connect(guarded) as sock:
        sock.sendall(b"PUT /x HTTP/1.1\r\nHost: registry\r\nContent-Le")
        assert answer_and_close(sock, within=IDLE_TIMEOUT + 10) == b""


def test_a_body_that_stops_arriving_is_a_408(guarded, people):
    account = people.create()
    with connect(guarded) as sock:
        sock.sendall(put_headers(MIB, account.token, path=f"/{unique_name()}") + b"{" * 1000)
        answer = answer_and_close(sock, within=IDLE_TIMEOUT + 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"body.timeout"' in answer


def test_uploads_beyond_the_in_flight_budget_get_503_with_retry_after(guarded, people):
    account = people.create()
    with connect(guarded) as first:
        first.sendall(put_headers(7 * MIB, account.token, path=f"/{unique_name()}"))
        first.sendall(b" " * (6 * MIB))  # held by the broker: 6 of the budget's 8 MiB
        time.sleep(0.5)
        response = httpx.put(guarded.url + unique_name(), content=b" " * (4 * MIB), timeout=30,
                             headers={"authorization": f"Bearer {account.token}",
                                      "content-type": "application/json"})
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
        assert response.json()["code"] == "server.busy"
        answer_and_close(first, within=IDLE_TIMEOUT + 10)
    # the first upload timed out and gave its share back
    retried = httpx.put(guarded.url + unique_name(), content=b" " * (4 * MIB), timeout=30,
                        headers={"authorization": f"Bearer {account.token}", "content-type": "application/json"})
    assert retried.status_code == 400, retried.text  # read in full, then refused as JSON without content


def test_a_client_that_hangs_up_mid_upload_is_an_info_line(guarded, people):
    account = people.create()
    with connect(guarded) as sock:
        sock.sendall(put_headers(2 * MIB, account.token, path=f"/{unique_name()}") + b" " * MIB)
        time.sleep(0.5)
    time.sleep(1)
    log = guarded.log()
    assert "closed the connection before its request body arrived" in log
    assert "Traceback" not in log and "unhandled error" not in log


def test_a_trust_token_is_refused_before_the_body_of_a_publish_it_may_not_make(accounts, issuer, broker):
    from tests.e2e.test_oidc_security import exchange, relationship, trusted

    _, name = trusted(accounts, relationship(permissions=["createStagedPackage"]))
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    for path in (f"/{name}", f"/{unique_name()}"):  # its own package without --allow-publish; another package
        with connect(broker) as sock:
            sock.sendall(put_headers(DECLARED, minted, path=path))
            answer = answer_and_close(sock, within=5)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]


@pytest.mark.parametrize("shape", ["many header lines", "one endless header"])
def test_endless_request_headers_are_refused_without_growing_the_broker(guarded, shape):
    """httptools keeps every header byte until the headers end: 4 connections × 8 MiB must not stay."""
    before = rss_bytes(guarded.process.pid)
    socks = []
    for _ in range(4):
        sock = connect(guarded)
        sock.sendall(b"GET /-/ping HTTP/1.1\r\nHost: registry\r\n")
        line = b"X-Filler: " + b"a" * 1000 + (b"\r\n" if shape == "many header lines" else b"")
        try:
            for _ in range(8 * 1024):
                sock.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed while we were still sending: what we want
        socks.append(sock)
    for sock in socks:
        assert answer_and_close(sock, within=IDLE_TIMEOUT + 5).startswith(b"HTTP/1.1 400")
        sock.close()
    assert rss_bytes(guarded.process.pid) - before < 16 * MIB
    assert httpx.get(guarded.url + "-/ping", timeout=10).status_code == 200


def test_the_exchange_and_login_refuse_a_body_they_do_not_need_unread(guarded):
    for path, length in (("/-/npm/v1/oidc/token/exchange/package/x", 1), ("/-/user/org.couchdb.user:x", 9 * 1024)):
        sock = connect(guarded)
        sock.sendall(put_headers(length, path=path).replace(b"PUT ", b"POST " if "oidc" in path else b"PUT "))
        assert answer_and_close(sock, within=IDLE_TIMEOUT + 5).startswith(b"HTTP/1.1 413")
        sock.close()
