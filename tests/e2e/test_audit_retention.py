"""STAGEGATE_AUDIT_RETENTION_DAYS: the broker prunes the audit log by itself, and several instances
pruning one database at once do no harm. Entries from weeks ago are written straight into the
database, as a broker running then would have left them (no test can wait 30 days)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy

DAY = 86400


def _add_entries(database_url: str, count: int, at: float, event: str = "stage.created") -> None:
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("insert into audit_log (at, event, actor, package, detail) "
                                     "values (:at, :event, 'someone', 'old-pkg', '{}')"),
                     [{"at": at, "event": event}] * count)
    engine.dispose()


def _events(database_url: str) -> list[tuple[str, float]]:
    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("select event, at from audit_log order by id")).all()
    engine.dispose()
    return [(event, at) for event, at in rows]


def _wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def _sign_up(broker) -> None:
    response = httpx.put(broker.url + "-/user/org.couchdb.user:keeper", timeout=30, json={
        "name": "keeper", "password": "long enough", "email": "k@example.test"})
    assert response.status_code == 201, response.text


def test_without_a_retention_setting_entries_are_kept_forever(backends, broker_env):
    storage = backends.storage()
    broker = backends.broker(storage, broker_env)
    try:
        _add_entries(broker.database_url, 3, time.time() - 4000 * DAY)
        _sign_up(broker)  # a write, and time for a pruning that must not happen
    finally:
        broker.stop()
    broker = backends.broker(storage, broker_env)
    try:
        assert httpx.get(broker.url + "-/ping").status_code == 200
        time.sleep(1)
        assert [event for event, _ in _events(broker.database_url)].count("stage.created") == 3
    finally:
        broker.stop()


def test_entries_older_than_the_retention_are_pruned_by_the_broker_at_start(backends, broker_env):
    storage = backends.storage()
    first = backends.broker(storage, broker_env)
    _sign_up(first)
    first.stop()
    now = time.time()
    _add_entries(first.database_url, 12_000, now - 40 * DAY)  # more than one pruning batch
    _add_entries(first.database_url, 1, now - 29 * DAY, event="stage.approved")
    broker = backends.broker(storage, {**broker_env, "STAGEGATE_AUDIT_RETENTION_DAYS": "30"})
    try:
        assert _wait_for(lambda: len(_events(broker.database_url)) == 2), len(_events(broker.database_url))
        assert [event for event, _ in _events(broker.database_url)] == ["user.created", "stage.approved"]
    finally:
        broker.stop()


@pytest.mark.backend("postgres")
def test_two_instances_each_prune_at_start_and_the_second_finds_nothing_left(backends, broker_env):
    storage = backends.storage("postgres")
    first = backends.broker(storage, broker_env)
    _sign_up(first)
    first.stop()
    _add_entries(first.database_url, 20_000, time.time() - 40 * DAY)
    env = {**broker_env, "STAGEGATE_AUDIT_RETENTION_DAYS": "30"}
    pair = [backends.broker(storage, env)]
    try:
        assert _wait_for(lambda: len(_events(first.database_url)) == 1, 60)
        pair.append(backends.broker(storage, env))
        assert [event for event, _ in _events(first.database_url)] == ["user.created"]
        for broker in pair:
            assert httpx.get(broker.url + "-/healthz").status_code == 200
            assert "Traceback" not in broker.log() and "pruning failed" not in broker.log()
    finally:
        for broker in pair:
            broker.stop()


@pytest.mark.backend("postgres")
def test_concurrent_prunings_of_one_postgresql_database_delete_each_entry_once(backends):
    """What two instances' prunings do when they overlap, without waiting an hour for it to happen."""
    from broker.store import audit, schema
    from broker.store.db import Database

    storage = backends.storage("postgres")
    url = storage["STAGEGATE_DATABASE_URL"]
    setup = Database(url)
    schema.upgrade(setup)
    setup.dispose()
    _add_entries(url, 3 * audit.PRUNE_BATCH + 1, time.time() - 40 * DAY)
    _add_entries(url, 1, time.time(), event="stage.approved")
    barrier = threading.Barrier(2)

    def prune_all(_) -> int:
        db, pruned = Database(url), 0
        barrier.wait()
        try:
            while True:
                with db.write() as conn:
                    deleted = audit.prune(conn, time.time() - 30 * DAY)
                pruned += deleted
                if deleted < audit.PRUNE_BATCH:
                    return pruned
        finally:
            db.dispose()

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(prune_all, range(2)))
    assert sum(counts) == 3 * audit.PRUNE_BATCH + 1
    assert [event for event, _ in _events(url)] == ["stage.approved"]
