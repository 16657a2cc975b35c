"""Tarballs byte-for-byte as `npm pack` writes them (node-tar in portable mode, gzip level 9).

Entries are files only, under "package/", in npm-packlist's order, with mtime 1985-10-26T08:15Z,
no owner, modes normalised like node-tar's portable mode, and package bins made executable.
"""

from __future__ import annotations

import io
import os
import posixpath
import struct
import tarfile
import zlib
from pathlib import Path

from .packlist import normalized_bin

MTIME = 499162500  # 1985-10-26T08:15:00.000Z
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # what node's zlib writes at level 9


class NeedsPax(Exception):
    pass


def _octal(value: int, size: int) -> bytes:
    digits = format(value, "o")
    if len(digits) == size - 1:
        return (digits + "\0").encode()
    if len(digits) > size - 1:
        raise NeedsPax
    return ("0" * (size - len(digits) - 2) + digits + " \0").encode()


def _string(value: str, size: int) -> bytes:
    raw = value.encode()
    if len(raw) > size or len(raw) != len(value):
        raise NeedsPax
    return raw + b"\0" * (size - len(raw))


def _split_prefix(path: str) -> tuple[str, str]:
    if len(path.encode()) < 100:
        return path, ""
    prefix, name = posixpath.dirname(path), posixpath.basename(path)
    while prefix not in ("", "."):
        if len(name.encode()) <= 100 and len(prefix.encode()) <= 155:
            return name, prefix
        if len(name.encode()) > 100:
            raise NeedsPax
        name = posixpath.join(posixpath.basename(prefix), name)
        prefix = posixpath.dirname(prefix)
    raise NeedsPax


def portable_mode(mode: int) -> int:
    return ((mode & 0o7777) | 0o600) & ~0o22


def header(path: str, size: int, mode: int) -> bytes:
    name, prefix = _split_prefix(path)
    block = bytearray(512)
    block[0:100] = _string(name, 100)
    block[100:108] = _octal(mode, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(MTIME, 12)
    block[156] = ord("0")
    block[257:265] = b"ustar\x0000"
    block[329:337] = _octal(0, 8)
    block[337:345] = _octal(0, 8)
    block[345:500] = _string(prefix, 155)
    checksum = 8 * 0x20 + sum(block[:148]) + sum(block[156:])
    block[148:156] = _octal(checksum, 8)
    return bytes(block)


def is_package_bin(manifest: dict, rel: str) -> bool:
    """pacote's check, quirk included: it strips the first path segment before comparing, so only
    bins at the package root (or one directory down, named without it) become executable."""
    stripped = rel.split("/", 1)[1] if "/" in rel else rel
    return stripped in normalized_bin(manifest).values()


def entries(directory: Path, files: list[str], manifest: dict) -> list[tuple[str, bytes, int]]:
    out = []
    for rel in files:
        full = directory / rel
        data = full.read_bytes()
        mode = os.lstat(full).st_mode
        if is_package_bin(manifest, rel):
            mode |= 0o111
        out.append((rel, data, portable_mode(mode)))
    return out


def _tar(items: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    try:
        for rel, data, mode in items:
            buffer.write(header("package/" + rel, len(data), mode))
            buffer.write(data)
            buffer.write(b"\0" * (-len(data) % 512))
    except NeedsPax:
        return _tar_with_pax(items)
    buffer.write(b"\0" * 1024)
    return buffer.getvalue()


def _tar_with_pax(items: list[tuple[str, bytes, int]]) -> bytes:
    """Long or non-ASCII names: standard PAX headers (the bytes may differ from npm's)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for rel, data, mode in items:
            info = tarfile.TarInfo("package/" + rel)
            info.size, info.mode, info.mtime = len(data), mode, MTIME
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gzip_like_node(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 8)
    body = compressor.compress(data) + compressor.flush()
    return _GZIP_HEADER + body + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


def build(directory: Path, files: list[str], manifest: dict, order: list[str] | None = None) -> bytes:
    return gzip_like_node(_tar(entries(directory, order or files, manifest)))
