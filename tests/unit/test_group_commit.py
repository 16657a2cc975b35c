"""Group commit: concurrent write transactions share one commit, and each one's failure stays its own."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event

from broker.store.db import Database


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE items (name TEXT PRIMARY KEY)")
    yield database
    database.dispose()


def names(db: Database) -> set[str]:
    with db.read() as conn:
        return {row[0] for row in conn.exec_driver_sql("SELECT name FROM items")}


def insert(name: str):
    def work(conn) -> str:
        conn.exec_driver_sql("INSERT INTO items (name) VALUES (?)", (name,))
        return name
    return work


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_calls_queued_behind_a_commit_share_the_next_one_and_a_failure_undoes_only_its_own_work(db):
    commits = []
    event.listen(db._writer, "commit", lambda conn: commits.append(1))
    release = threading.Event()

    def first(conn) -> str:
        conn.exec_driver_sql("INSERT INTO items (name) VALUES ('first')")
        release.wait(10)
        return "first"

    def failing(conn) -> str:
        conn.exec_driver_sql("INSERT INTO items (name) VALUES ('half-done')")
        raise ValueError("refused")

    results: dict[str, object] = {}

    def call(key: str, work) -> None:
        try:
            results[key] = db.write_grouped(work)
        except Exception as exc:  # noqa: BLE001 - each call's own failure, checked below
            results[key] = exc

    threads = [threading.Thread(target=call, args=("first", first))]
    threads[0].start()
    wait_until(lambda: db._group._busy)
    works = [(f"n{i}", insert(f"n{i}")) for i in range(10)] + [("failing", failing), ("dup", insert("n3"))]
    for queued, (key, work) in enumerate(works, start=1):  # one at a time: the queue keeps this order
        threads.append(threading.Thread(target=call, args=(key, work)))
        threads[-1].start()
        wait_until(lambda n=queued: len(db._group._queue) == n)
    release.set()
    for thread in threads:
        thread.join(10)

    assert len(commits) == 2  # the first call's, then one for all eleven that queued behind it
    assert names(db) == {"first", *(f"n{i}" for i in range(10))}
    assert isinstance(results["failing"], ValueError)
    assert results["dup"].__class__.__name__ == "IntegrityError"
    assert all(results[f"n{i}"] == f"n{i}" for i in range(10))


def test_a_lone_call_runs_in_its_own_transaction_and_a_failure_rolls_it_back(db):
    assert db.write_grouped(insert("alone")) == "alone"

    def failing(conn):
        conn.exec_driver_sql("INSERT INTO items (name) VALUES ('undone')")
        raise ValueError("no")

    with pytest.raises(ValueError):
        db.write_grouped(failing)
    assert names(db) == {"alone"}
    assert db.write_grouped(insert("after")) == "after"  # the lead was handed back


def test_many_threads_all_finish_with_their_rows_durable(db):
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            db.write_grouped(insert(f"row{i}"))
        except BaseException as exc:  # noqa: BLE001 - any failure fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and names(db) == {f"row{i}" for i in range(64)}
