"""Read caches for the hot paths: serialized packuments per package revision, tarball bytes, and
whole anonymous GET responses per write generation (served without a database round trip).

A packument is rebuilt only when its package's `rev` changes (every write bumps it in the same
transaction), so each read costs one indexed lookup of the rev, also across instances. Blobs are
content-addressed and immutable, so caching their bytes needs no invalidation; both caches are
bounded.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


class _Lru:
    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[object, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: object) -> object | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: object, value: object, size: int) -> None:
        if size > self._max // 4:
            return  # one huge item would evict everything useful
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self._max:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted

    def discard(self, key: object) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]


class PackumentCache:
    """Serialized documents (full or abbreviated) of each package, with the rev they were built at."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._lru = _Lru(max_bytes)

    def get_or_build(self, name: str, rev: int, kind: str,
                     build: Callable[[], tuple[int, bytes] | None]) -> bytes | None:
        """The document at `rev`; `build` returns (the rev it actually read, its bytes) or None."""
        key = (name, kind)
        cached = self._lru.get(key)
        if cached is not None and cached[0] == rev:
            return cached[1]
        built = build()
        if built is None:
            return None
        self._lru.put(key, built, len(built[1]))
        return built[1]

    def gzipped(self, name: str, kind: str, body: bytes) -> bytes:
        """`body` (a document this cache handed out) gzip-compressed, once per document."""
        key = (name, kind, "gzip")
        cached = self._lru.get(key)
        if cached is not None and cached[0] is body:
            return cached[1]
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        self._lru.put(key, (body, packed), len(packed) + len(body))
        return packed


class BlobCache:
    def __init__(self, max_bytes: int = 128 * 1024 * 1024) -> None:
        self._lru = _Lru(max_bytes)

    def get_or_load(self, key: str, load: Callable[[], bytes | None]) -> bytes | None:
        cached = self._lru.get(key)
        if cached is not None:
            return cached
        data = load()
        if data is not None:
            self._lru.put(key, data, len(data))
        return data

    def forget(self, key: str) -> None:
        self._lru.discard(key)


@dataclass(frozen=True, slots=True)
class Ready:
    """A whole response as sent: status 200, raw headers, body; valid while the generation holds."""

    generation: int
    stored_at: float
    route: str  # the metrics label of the route that built it
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ReadyResponses:
    """Whole answers to anonymous GETs (packuments, tarballs of public packages), keyed by the raw path
    and the variant the request headers chose, each tagged with the write generation read before it
    was built. One is served only while the generation is unchanged: any committed write, by any
    process over the database, retires all of them (store/generation.py); with `revalidate` seconds
    set, also once that old. Only handlers that say an answer is the same for every anonymous caller
    put one here (a restricted package's never is)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, revalidate: float | None = None) -> None:
        self._lru = _Lru(max_bytes)
        self.revalidate = revalidate

    def get(self, key: tuple, generation: int) -> Ready | None:
        found = self._lru.get(key)
        if found is None or found.generation != generation:
            return None
        if self.revalidate is not None and time.monotonic() - found.stored_at > self.revalidate:
            return None
        return found

    def put(self, key: tuple, generation: int, route: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._lru.put(key, Ready(generation, time.monotonic(), route, headers, body), len(body) + 256)
