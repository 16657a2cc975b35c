"""Database access: the embedded SQLite default or any SQLAlchemy URL, as write and read transactions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event



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
        conn.exec_driver_sql(begin)

    return engine


T = TypeVar("T")


@dataclass(eq=False)
class _Pending:
    work: Callable[[Connection], Any]
    wake: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    value: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Group commit: while one thread commits, the calls that arrive queue up and then share the
    next transaction. The thread whose call finds nobody committing leads: it runs the queued
    calls, commits, wakes them and hands the lead to the first call queued meanwhile."""

    def __init__(self, begin: Callable[[], AbstractContextManager[Connection]], max_group: int = 64) -> None:
        self._begin = begin
        self._max = max_group
        self._mutex = threading.Lock()
        self._queue: list[_Pending] = []
        self._busy = False

    def run(self, work: Callable[[Connection], T]) -> T:
        item = _Pending(work)
        with self._mutex:
            self._queue.append(item)
            leads, self._busy = not self._busy, True
        if not leads:
            item.wake.wait()  # finished, or handed the lead
        if not item.finished:
            self._lead()
        if item.error is not None:
            raise item.error
        return item.value

    def _lead(self) -> None:
        with self._mutex:
            group, self._queue = self._queue[:self._max], self._queue[self._max:]
        try:
            self._commit(group)
        finally:
            with self._mutex:
                if self._queue:
                    self._queue[0].wake.set()  # not finished: it leads the next group
                else:
                    self._busy = False

    def _commit(self, group: list[_Pending]) -> None:
        """Run the group in one transaction, in order. When a call raises, everything is rolled back
        and the group runs again without it: its error is what a serial run would have given (it saw
        exactly the calls before it), and the rest pay no savepoint in the common case."""
        pending = list(group)
        try:
            while pending:
                failed = self._attempt(pending)
                if failed is None:
                    return
                pending.remove(failed)
        finally:
            for item in group:
                item.finished = True
                item.wake.set()

    def _attempt(self, items: list[_Pending]) -> _Pending | None:
        """None once the items are committed (or the commit failed for all); else the first that raised."""
        try:
            with self._begin() as conn:
                for item in items:
                    try:
                        item.value = item.work(conn)
                    except Exception as exc:
                        item.error = exc
                        raise _Undo(item) from exc
        except _Undo as undo:
            return undo.item
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of this group is durable
            for item in items:
                item.error = item.error or exc
        return None


class _Undo(Exception):
    def __init__(self, item: _Pending) -> None:
        super().__init__("roll the group back")
        self.item = item


class Database:
    """`write()` for a state change (one transaction), `read()` for a consistent snapshot."""

    def __init__(self, url: str) -> None:
        self.url = url
        # SQLite has one writer at a time: queue this process's writers on a lock instead of letting
        # them spin in SQLite's busy handler (whose sleeps make the tail latency explode).
        self._write_lock = threading.Lock() if url.startswith("sqlite") else nullcontext()
        if url.startswith("sqlite"):
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
    def write(self) -> Iterator[Connection]:
        with self._write_lock, self._writer.begin() as conn:
            yield conn

    def write_grouped(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction that it may share with other threads' concurrent calls:
        one commit (one fsync) for the group. It returns (or raises) only once the group's commit is
        durable; if `work` raises, only its own changes are undone. `work` may run more than once (when
        another call of its group raises), so it must act only through `conn`, and it must not open
        another write transaction."""
        return self._group.run(work)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self._writer.dispose()
        self._reader.dispose()
