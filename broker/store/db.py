"""Database access: the embedded SQLite default or any SQLAlchemy URL, as write and read transactions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

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

    @property
    def dialect(self) -> str:
        return self._writer.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._write_lock, self._writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._reader.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self._writer.dispose()
        self._reader.dispose()
