"""What the registry reads from a package tarball: digests and its package/package.json."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_UNPACKED_BYTES = 2 * 1024**3  # a gzip bomb stops here


class InvalidTarball(ValueError):
    pass


@dataclass(frozen=True)
class Digests:
    integrity: str  # sha512-<base64>
    shasum: str  # sha1 hex
    sha512_hex: str
    size: int


def digests(data: bytes) -> Digests:
    sha512 = hashlib.sha512(data)
    return Digests(
        integrity="sha512-" + base64.b64encode(sha512.digest()).decode(),
        shasum=hashlib.sha1(data).hexdigest(),
        sha512_hex=sha512.hexdigest(),
        size=len(data),
    )


def integrity_matches(claimed: str, actual: Digests) -> bool:
    """An SRI string matches when any sha512 entry in it equals the bytes' digest."""
    entries = [e.split("?")[0] for e in claimed.split()]
    sha512 = [e for e in entries if e.startswith("sha512-")]
    return bool(sha512) and actual.integrity in sha512


class _Bounded(io.RawIOBase):
    """A reader that refuses to unpack more than `limit` bytes."""

    def __init__(self, inner, limit: int) -> None:
        self._inner, self._left = inner, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(min(len(buffer), 1024 * 1024))
        self._left -= len(data)
        if self._left < 0:
            raise InvalidTarball("the tarball unpacks to more than the registry accepts")
        buffer[: len(data)] = data
        return len(data)


def read_manifest(data: bytes) -> dict:
    """The package/package.json inside a gzipped tarball, parsed."""
    try:
        stream = _Bounded(gzip.GzipFile(fileobj=io.BytesIO(data)), MAX_UNPACKED_BYTES)
        with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|") as archive:
            for member in archive:
                if member.name.lstrip("./") == "package/package.json" and member.isfile():
                    if member.size > MAX_MANIFEST_BYTES:
                        raise InvalidTarball("package/package.json in the tarball is too large")
                    handle = archive.extractfile(member)
                    manifest = json.loads(handle.read()) if handle else None
                    if not isinstance(manifest, dict):
                        raise InvalidTarball("package/package.json in the tarball is not a JSON object")
                    return manifest
    except (OSError, EOFError, tarfile.TarError, gzip.BadGzipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidTarball(f"the attachment is not a readable gzipped tarball ({exc.__class__.__name__})") from None
    raise InvalidTarball("the tarball has no package/package.json")
