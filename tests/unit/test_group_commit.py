"""Group commit: concurrent write transactions share one commit, and each one's failure stays its own."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

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
    started, release = threading.Event(), threading.Event()

    def first(conn) -> str:
        conn.exec_driver_sql("INSERT INTO items (name) VALUES ('first')")
        started.set()
        release.wait(10)
        return "first"

    def failing(conn) -> str:
        conn.exec_driver_sql("INSERT INTO items (name) VALUES ('half-done')")
        raise ValueError("refused")

    head = db.write_grouped(first)
    assert started.wait(10)
    queued = [db.write_grouped(insert(f"n{i}")) for i in range(10)]
    refused = db.write_grouped(failing)
    duplicate = db.write_grouped(insert("n3"))
    wait_until(lambda: db._group._queue.qsize() == 12)
    release.set()

    assert head.result(10) == "first"
    assert [f.result(10) for f in queued] == [f"n{i}" for i in range(10)]
    assert isinstance(refused.exception(10), ValueError)
    assert isinstance(duplicate.exception(10), IntegrityError)  # n3 came first, as in a serial run
    assert len(commits) == 2  # the first call's, then one for all that queued behind it
    assert names(db) == {"first", *(f"n{i}" for i in range(10))}


def test_a_lone_failure_is_rolled_back_and_the_writer_goes_on(db):
    assert db.write_grouped(insert("alone")).result(10) == "alone"

    def failing(conn):
        conn.exec_driver_sql("INSERT INTO items (name) VALUES ('undone')")
        raise ValueError("no")

    with pytest.raises(ValueError):
        db.write_grouped(failing).result(10)
    assert db.write_grouped(insert("after")).result(10) == "after"
    assert names(db) == {"alone", "after"}


def test_many_threads_all_finish_with_their_rows_durable(db):
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            db.write_grouped(insert(f"row{i}")).result(30)
        except BaseException as exc:  # noqa: BLE001 - any failure fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and names(db) == {f"row{i}" for i in range(64)}


def test_a_closed_database_takes_no_more_grouped_writes(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'closed.db'}")
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE items (name TEXT PRIMARY KEY)")
    assert database.write_grouped(insert("x")).result(10) == "x"
    database.dispose()
    with pytest.raises(RuntimeError, match="closed"):
        database.write_grouped(insert("y"))
