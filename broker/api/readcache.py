"""Read caches for the hot paths: serialized packuments per package revision, and tarball bytes.

A packument is rebuilt only when its package's `rev` changes (every write bumps it in the same
transaction), so each read costs one indexed lookup of the rev, also across instances. Blobs are
content-addressed and immutable, so caching their bytes needs no invalidation; both caches are
bounded.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Callable


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
