"""Database access: the embedded SQLite default or any SQLAlchemy URL, as write and read transactions."""

from __future__ import annotations

import fcntl
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event

from .generation import Generation



def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           pool_size=8, max_overflow=8)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (SQLAlchemy's pysqlite recipe)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        # On the sqlite3 connection itself: through exec_driver_sql, SQLAlchemy's statement machinery
        # cost more than the BEGIN. COMMIT and ROLLBACK stay SQLAlchemy's (the DBAPI commit/rollback).
        conn.connection.driver_connection.execute(begin)

    return engine


T = TypeVar("T")

_AFTER_COMMIT = "stagegate.after_commit"


def after_commit(conn: Connection, action: Callable[[], None]) -> None:
    """Run `action` once the write transaction of `conn` has committed; a rolled-back transaction
    (including a group commit's attempt that one call made fail) drops it. Outside `Database.write`
    (a plain connection) it runs at once."""
    queued = conn.info.get(_AFTER_COMMIT)
    if queued is None:
        action()
    else:
        queued.append(action)


class GroupCommit:
    """Group commit on a writer thread of its own: calls queue up while a group commits, then all of
    them (up to `max_group`) run in the next transaction and share its commit (one fsync).

    A group runs in order in one transaction. When a call raises, everything is rolled back and the
    group runs again without it: its error is what a serial run would have given (it saw exactly
    the calls before it), and the others pay no savepoint in the common case."""

    def __init__(self, begin: Callable[[], AbstractContextManager[Connection]], max_group: int = 64) -> None:
        self._begin = begin
        self._max = max_group
        self._queue: queue.SimpleQueue[tuple[Callable[[Connection], Any], Future] | None] = queue.SimpleQueue()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("the database is closed")
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name="stagegate-group-commit", daemon=True)
                    self._thread.start()
        future: Future[T] = Future()
        self._queue.put((work, future))
        return future

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(item)
            try:
                self._commit(group)
            except BaseException as exc:  # never leave a caller waiting on a future nobody will set
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    def _commit(self, group: list[tuple[Callable[[Connection], Any], Future]]) -> None:
        pending = [item for item in group if item[1].set_running_or_notify_cancel()]
        while pending:
            values: list[Any] = []
            failure: tuple[int, Exception] | None = None
            try:
                with self._begin() as conn:
                    for index, (work, _) in enumerate(pending):
                        try:
                            values.append(work(conn))
                        except Exception as exc:
                            failure = (index, exc)
                            raise
            except Exception as exc:
                if failure is not None:  # that call alone fails; the others run again without it
                    index, error = failure
                    pending.pop(index)[1].set_exception(error)
                    continue
                for _, future in pending:  # BEGIN or COMMIT failed: nothing of this group is durable
                    future.set_exception(exc)
                return
            for (_, future), value in zip(pending, values, strict=True):
                future.set_result(value)
            return


class _WriteLock:
    """One writer at a time among this process's threads and every process that opens the same file."""

    def __init__(self, path: Path) -> None:
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        os.close(self._fd)


class Database:
    """`write()` for a state change (one transaction), `read()` for a consistent snapshot."""

    def __init__(self, url: str, generation_file: Path | None = None) -> None:
        self.url = url
        # Bumped after every committed write, read before cached reads (store/generation.py); None:
        # a process that caches nothing (a one-off CLI command still bumps when given the file).
        self.generation = Generation(generation_file) if generation_file is not None else None
        # SQLite has one writer at a time: queue this process's writers on a lock instead of letting
        # them spin in SQLite's busy handler (whose sleeps make the tail latency explode).
        self._write_lock: AbstractContextManager = nullcontext()
        if url.startswith("sqlite"):
            # ... and other processes' writers (workers) on a file lock, which wakes the next one as
            # soon as it is free: SQLite's busy handler would poll with sleeps instead.
            self._write_lock = (_WriteLock(generation_file.with_name(generation_file.name + ".lock"))
                                if generation_file is not None else threading.Lock())
            # Writers take the lock up front (no lock-upgrade deadlocks); readers never block in WAL.
            self._writer = _sqlite_engine(url, "BEGIN IMMEDIATE")
            self._reader = _sqlite_engine(url, "BEGIN")
        else:
            self._writer = self._reader = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                                                        pool_recycle=1800)
        self._group = GroupCommit(self.write)

    @property
    def dialect(self) -> str:
        return self._writer.dialect.name

    @contextmanager
    def write(self, retire_reads: bool = True) -> Iterator[Connection]:
        """One transaction; what `after_commit` queued on it runs once it has committed (never after a
        rollback: an exception out of the block skips it). `retire_reads=False` for a write no packument
        or tarball depends on (the guessing counters): anyone can cause those, and they must not empty
        every worker's reads from memory."""
        queued: list[Callable[[], None]] = []
        try:
            with self._write_lock, self._writer.begin() as conn:
                conn.info[_AFTER_COMMIT] = queued
                try:
                    yield conn
                finally:
                    conn.info.pop(_AFTER_COMMIT, None)
        finally:
            # Also after a failure: a commit that raised may still have landed, and a spare bump
            # costs one cache refill, a missing one a stale read.
            if self.generation is not None and retire_reads:
                self.generation.bump()
        for action in queued:
            action()

    def write_grouped(self, work: Callable[[Connection], T]) -> Future[T]:
        """Run `work` in a write transaction that it may share with other concurrent calls: one commit
        (one fsync) for the group. The future resolves only once the group's commit is durable; if
        `work` raises, only its own changes are undone and the future holds its exception. `work` runs
        on the writer thread, may run more than once (when another call of its group raises), so it
        must act only through `conn`, and it must not open another write transaction."""
        return self._group.submit(work)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self._group.close()
        self._writer.dispose()
        self._reader.dispose()
        if self.generation is not None:
            self.generation.close()
            self.generation = None
        if isinstance(self._write_lock, _WriteLock):
            self._write_lock.close()
            self._write_lock = threading.Lock()
