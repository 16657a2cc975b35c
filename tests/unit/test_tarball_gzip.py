"""The gzip layer of read_package: read as gzip.GzipFile reads it (members as one stream, zeros between
them skipped, CRC, length and anything after a member checked), over the whole stream however early
the tar inside it ends."""

from __future__ import annotations

import gzip
import json

import pytest

import broker.domain.tarball as tarball_module
from broker.domain.tarball import InvalidTarball, read_package
from tests.support.packages import tarball

BASE = {"name": "widget", "version": "1.0.0"}
TAR = gzip.decompress(tarball(BASE, {"package/index.js": b"x" * 3000, "package/lib/a.js": b"y" * 1024}))
FILES = {"package.json", "index.js", "lib/a.js"}
PADDED = TAR + b"\0" * 600_000  # the tar ends long before its gzip stream does


@pytest.mark.parametrize("cut", [1, 512, 700, len(TAR) // 2, len(TAR) - 1])
def test_a_tar_split_across_gzip_members_reads_as_one_stream(cut):
    assert read_package(gzip.compress(TAR[:cut]) + gzip.compress(TAR[cut:])).files == FILES


def test_zero_bytes_after_the_gzip_member_are_skipped():
    assert read_package(gzip.compress(TAR) + b"\0" * 100).files == FILES


@pytest.mark.parametrize("tar", [TAR, PADDED], ids=["tar", "tar far before the gzip end"])
@pytest.mark.parametrize("after", [b"x", b"\0\0x", b"\x1f\x8b", b"\x1f\x8b\x07" + b"\0" * 20])
def test_bytes_after_the_gzip_member_are_refused(tar, after):
    with pytest.raises(InvalidTarball, match="not a readable gzipped tarball"):
        read_package(gzip.compress(tar) + after)


@pytest.mark.parametrize("tar", [TAR, PADDED], ids=["tar", "tar far before the gzip end"])
@pytest.mark.parametrize("where", [-8, -4], ids=["crc", "length"])
def test_a_wrong_gzip_trailer_is_refused(tar, where):
    data = bytearray(gzip.compress(tar))
    data[where] ^= 1
    with pytest.raises(InvalidTarball, match="not a readable gzipped tarball"):
        read_package(bytes(data))


@pytest.mark.parametrize("tar", [TAR, PADDED], ids=["tar", "tar far before the gzip end"])
def test_a_truncated_gzip_stream_is_refused(tar):
    with pytest.raises(InvalidTarball, match="not a readable gzipped tarball"):
        read_package(gzip.compress(tar)[:-9])


def test_an_entry_whose_data_fills_whole_blocks_is_skipped_exactly():
    manifest = json.dumps({**BASE, "description": ""})
    manifest = json.dumps({**BASE, "description": "d" * (1024 - len(manifest))}).encode()
    assert len(manifest) == 1024
    data = tarball(json.loads(manifest), {"package/a.bin": b"q" * 512, "package/b.js": b""})
    assert read_package(data).files == {"package.json", "a.bin", "b.js"}


@pytest.mark.parametrize("tar", [TAR, PADDED], ids=["tar", "tar far before the gzip end"])
def test_the_unpack_bound_counts_every_decompressed_byte(monkeypatch, tar):
    monkeypatch.setattr(tarball_module, "MAX_UNPACKED_BYTES", len(TAR) - 1 if tar is TAR else len(TAR) + 10_000)
    with pytest.raises(InvalidTarball, match="unpacks to more than the registry accepts"):
        read_package(gzip.compress(tar))


def test_the_unpack_bound_met_inside_package_json_is_reported_as_such(monkeypatch):
    monkeypatch.setattr(tarball_module, "MAX_UNPACKED_BYTES", 700)
    with pytest.raises(InvalidTarball, match="unpacks to more than the registry accepts"):
        read_package(gzip.compress(TAR[:600]) + gzip.compress(TAR[600:]))


def test_many_small_files_are_all_listed():
    files = {f"package/lib/f{i}.js": b"module.exports = 1\n" for i in range(2000)}
    assert len(read_package(tarball(BASE, files)).files) == 2001


def test_at_most_64_gzip_members_are_read():
    """Each member costs Python work: an upload of millions of empty members would take a core for a minute."""
    pieces = [TAR[i:i + 512] for i in range(0, len(TAR), 512)]
    assert len(pieces) < 64
    many = b"".join(gzip.compress(p) for p in pieces) + gzip.compress(b"") * (64 - len(pieces))
    assert read_package(many).files == FILES
    with pytest.raises(InvalidTarball, match="more than 64 gzip members"):
        read_package(many + gzip.compress(b""))


@pytest.mark.parametrize("zeros", [1, 100])
def test_zero_bytes_between_gzip_members_are_refused(zeros):
    """npm's zlib stops at them: it would install the tar cut where the first member ends."""
    with pytest.raises(InvalidTarball, match="zero bytes between two gzip members"):
        read_package(gzip.compress(TAR[:700]) + b"\0" * zeros + gzip.compress(TAR[700:]))
