"""Changes that land while a request runs, between its checks and its commit (issue 14, items 12
and 13). The test holds SQLite's write lock, so the broker's request stops right before its write
transaction; the concurrent change is made in the test's own transaction, exactly as the racing
request would make it, and committed before the broker's request may go on."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.packages import publish_document, tarball, unique_name
from tests.support.trust import github_relationship, trust_token


@pytest.fixture
def sqlite_db(broker) -> Path:
    if not broker.database_url.startswith("sqlite"):
        pytest.skip("freezes a request by holding SQLite's write lock")
    return Path(broker.database_url.removeprefix("sqlite:///"))


@contextmanager
def write_lock(path: Path):
    """The database's write lock, as a connection of the test: the broker's writers wait for it."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


class InBackground(threading.Thread):
    def __init__(self, call) -> None:
        super().__init__(daemon=True)
        self.call, self.response = call, None

    def run(self) -> None:
        self.response = self.call()


def wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("route", ["publish", "stage"])
def test_a_trust_relationship_revoked_while_a_publish_runs_wins(accounts, broker, issuer, sqlite_db, route):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    account.enable_2fa()
    assert account.http("POST", f"-/package/{name}/trust", otp=True, json=[github_relationship(
        permissions=("createPackage", "createStagedPackage"))]).status_code == 201
    token = trust_token(broker.url, name, issuer)
    data = tarball({"name": name, "version": "1.1.0"}, {"package/index.js": uuid.uuid4().hex.encode()})
    blob = broker.data_dir / "blobs" / hashlib.sha512(data).hexdigest()[:2] / hashlib.sha512(data).hexdigest()
    method, path = ("PUT", name) if route == "publish" else ("POST", f"-/stage/package/{name}")
    with write_lock(sqlite_db) as conn:
        request = InBackground(lambda: httpx.request(method, broker.url + path, timeout=60,
                                                     headers={"authorization": f"Bearer {token}"},
                                                     json=publish_document(name, "1.1.0", data=data)))
        request.start()
        wait_for(blob.exists, "the request to pass its checks and store the tarball")
        # What `npm trust revoke` commits: the relationship and the tokens it minted go.
        conn.execute("DELETE FROM tokens WHERE trust_package = ?", (name,))
        conn.execute("DELETE FROM trust_relationships WHERE package = ?", (name,))
    request.join(60)
    assert request.response is not None and request.response.status_code == 401, request.response.text
    assert request.response.json()["code"] == "auth.invalid-token"
    versions = httpx.get(broker.url + name).json()["versions"]
    assert list(versions) == ["1.0.0"]
    assert "No staged" in account.npm("stage", "list", name).stdout


def test_a_reject_racing_a_restage_of_the_same_version_never_deletes_the_newer_stage(accounts, broker, sqlite_db):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    account.enable_2fa()
    staged = account.http("POST", f"-/stage/package/{name}", json=publish_document(name, "1.1.0"))
    assert staged.status_code == 201, staged.text
    first = staged.json()["stageId"]
    newer = str(uuid.uuid4())
    with write_lock(sqlite_db) as conn:
        reject = InBackground(lambda: account.http("DELETE", f"-/stage/{first}", otp=True))
        reject.start()
        time.sleep(2)  # the reject has read its stage and waits to write (its OTP, then the stage)
        # Meanwhile another reject of the first stage commits, then CI stages 1.1.0 again.
        version = conn.execute("SELECT * FROM versions WHERE package = ? AND version = '1.1.0'", (name,)).fetchone()
        stage = conn.execute("SELECT * FROM stages WHERE id = ?", (first,)).fetchone()
        conn.execute("DELETE FROM stages WHERE id = ?", (first,))
        conn.execute("DELETE FROM versions WHERE package = ? AND version = '1.1.0'", (name,))
        conn.execute(f"INSERT INTO versions VALUES ({', '.join('?' * len(version))})", version)
        conn.execute(f"INSERT INTO stages VALUES ({', '.join('?' * len(stage))})", (newer, *stage[1:]))
    reject.join(60)
    assert reject.response is not None and reject.response.status_code == 409, reject.response.text
    view = account.http("GET", f"-/stage/{newer}")
    assert view.status_code == 200, "the newer stage survives the late reject of the older one"
    assert view.json()["version"] == "1.1.0"
    tarball_of_newer = account.http("GET", f"-/stage/{newer}/tarball")
    assert tarball_of_newer.status_code == 200 and tarball_of_newer.content
