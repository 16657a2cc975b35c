"""The write generation: a counter in a small shared file that every committed write transaction bumps.

Every broker process over one database maps the same file (next to the SQLite database, or in the
data dir), so a read served from memory can tell in one memory load whether anything at all was
written since it was cached, by this process, another worker or another instance. The counter is
bumped *after* a commit and read *before* a read's queries: a cached answer tagged with the value
read first is stale as soon as the counter moves, never later.

The file must be shared by every process that writes the database, on one host (mmap coherence is a
property of one kernel): instances on other hosts set STAGEGATE_READ_REVALIDATE_SECONDS instead.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

_COUNTER = struct.Struct("<Q")


class Generation:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < _COUNTER.size:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size < _COUNTER.size:
                    os.ftruncate(self._fd, _COUNTER.size)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, _COUNTER.size)
        self._lock = threading.Lock()  # flock is per open file: it does not order this process's threads

    def value(self) -> int:
        return _COUNTER.unpack_from(self._map, 0)[0]

    def bump(self) -> None:
        """One more (the lock makes the read-add-write atomic across processes: no bump is lost)."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                _COUNTER.pack_into(self._map, 0, _COUNTER.unpack_from(self._map, 0)[0] + 1)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
