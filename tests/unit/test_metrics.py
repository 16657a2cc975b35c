"""The metrics' labels and scrape rule, and the audit mirror's after-commit guarantee on a real SQLite."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import select
from starlette.datastructures import Headers

from broker.api.http import Req
from broker.api.metrics import allow_scrape
from broker.api.bodies import EMPTY
from broker.errors import RegistryError
from broker.metrics import error_kind, route_template
from broker.store import audit
from broker.store.db import Database
from broker.store.tables import audit_log, metadata


@pytest.mark.parametrize(("pattern", "template"), [
    (r"^/-/stage/(?P<id>[^/]+)/approve/?$", "/-/stage/{id}/approve"),
    (r"^/(?P<pkg>@[^/]+(?:/|%2[fF])[^/]+|[^@/\-][^/]*)/-/(?P<file>[^/]+\.tgz)/?$", "/{pkg}/-/{file}"),
    (r"^/-/user/org\.couchdb\.user:(?P<name>[^/]+)(?:/-rev/(?P<rev>[^/]+))?/?$",
     "/-/user/org.couchdb.user:{name}[/-rev/{rev}]"),
])
def test_a_route_label_is_its_template(pattern, template):
    assert route_template(pattern) == template


def request_from(client: str | None, authorization: str | None = None) -> Req:
    headers = Headers({"authorization": authorization} if authorization else {})
    return Req("GET", "/-/metrics", {}, {}, headers, EMPTY, client)


@pytest.mark.parametrize(("client", "allowed"), [
    ("127.0.0.1", True), ("::1", True), ("127.8.0.3", True),
    ("10.0.0.7", False), ("192.168.1.2", False), ("2001:db8::1", False), (None, False), ("testclient", False),
])
def test_without_a_token_only_loopback_clients_may_scrape(client, allowed):
    if allowed:
        allow_scrape(None, request_from(client))
    else:
        with pytest.raises(RegistryError) as refused:
            allow_scrape(None, request_from(client))
        assert refused.value.status == 403 and "STAGEGATE_METRICS_TOKEN" in refused.value.error


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_without_a_token_a_request_forwarded_by_a_local_proxy_is_refused(header):
    req = request_from("127.0.0.1")
    req.headers = Headers({header: "203.0.113.9"})
    with pytest.raises(RegistryError) as refused:
        allow_scrape(None, req)
    assert refused.value.status == 403


@pytest.mark.parametrize("client", ["127.0.0.1", "10.0.0.7"])
def test_with_a_token_every_client_must_send_it(client):
    allow_scrape("s3cret", request_from(client, "Bearer s3cret"))
    for sent in (None, "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"):
        with pytest.raises(RegistryError) as refused:
            allow_scrape("s3cret", request_from(client, sent))
        assert refused.value.status == 401


def test_errors_are_labelled_by_where_they_came_from(tmp_path):
    from sqlalchemy.exc import OperationalError

    from broker.store.blobs import FilesystemBlobStore

    assert error_kind(OperationalError("select 1", {}, Exception("gone"))) == "database"
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    (tmp_path / "blobs").rename(tmp_path / "gone")
    with pytest.raises(OSError) as raised:
        blobs.check()
    assert error_kind(raised.value) == "blob-store"
    assert error_kind(ValueError("a bug")) == "other"


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    with database.write() as conn:
        metadata.create_all(conn)
    yield database
    database.dispose()


def mirrored(caplog) -> list[str]:
    return [r.event for r in caplog.records if r.name == "stagegate.audit"]


def test_an_audit_event_is_logged_after_its_commit_and_never_after_a_rollback(db, caplog):
    caplog.set_level(logging.INFO, logger="stagegate.audit")
    with db.write() as conn:
        audit.record(conn, "kept", actor="alice", version="1.0.0")
        assert mirrored(caplog) == [], "logged before the commit"
    assert mirrored(caplog) == ["kept"]
    with pytest.raises(RegistryError):
        with db.write() as conn:
            audit.record(conn, "refused", actor="mallory")
            raise RegistryError(403, "no")
    assert mirrored(caplog) == ["kept"]
    with db.write() as conn:  # the connection goes back to the pool: nothing of the rollback lingers on it
        audit.record(conn, "next", actor="alice")
    assert mirrored(caplog) == ["kept", "next"]


def test_a_group_commit_logs_each_kept_event_once_and_the_failed_calls_never(db, caplog):
    caplog.set_level(logging.INFO, logger="stagegate.audit")
    release = threading.Event()

    def blocker(conn):
        release.wait(10)
        audit.record(conn, "first", actor=None)

    def ok(conn):
        audit.record(conn, "ok", actor=None)

    def fails(conn):
        audit.record(conn, "failed", actor=None)
        raise RuntimeError("this call fails")

    first = db.write_grouped(blocker)
    grouped = [db.write_grouped(ok), db.write_grouped(fails), db.write_grouped(ok)]
    release.set()
    first.result(10)
    grouped[0].result(10), grouped[2].result(10)
    with pytest.raises(RuntimeError):
        grouped[1].result(10)
    assert sorted(mirrored(caplog)) == ["first", "ok", "ok"]
    with db.read() as conn:
        assert sorted(row.event for row in conn.execute(select(audit_log))) == ["first", "ok", "ok"]
