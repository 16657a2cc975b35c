"""Tar headers that would make the registry hold memory or spin a core it did not budget for: a huge GNU
long name or pax header (tarfile reads one whole into memory) and sparse entries (tarfile expands their
holes on reading: a 400-byte tarball "unpacks" to terabytes of zeros). Both the publish/stage check
(`read_package`) and the review page (`snapshot`) read tarballs the same way."""

from __future__ import annotations

import gzip
import tarfile

import pytest

from broker.domain.review_diff import Limits, snapshot
from broker.domain.tarball import MAX_HEADER_BYTES, InvalidTarball, read_package

MANIFEST = b'{"name": "demo", "version": "1.0.0"}'


def _member(name: str, data: bytes, **pax: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.pax_headers = len(data), pax
    return info.tobuf(tarfile.PAX_FORMAT) + _padded(data)


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def _header(name: bytes, size: int, kind: bytes, fields: dict[int, bytes] | None = None) -> bytes:
    """A raw 512-byte header, for the types tarfile cannot write (GNU sparse, GNU long name)."""
    block = bytearray(512)
    block[0:len(name)] = name
    block[100:108], block[108:116], block[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    block[124:136], block[136:148] = b"%011o\0" % size, b"00000000000\0"
    block[156:157], block[257:265] = kind, b"ustar  \0"
    for offset, value in (fields or {}).items():
        block[offset:offset + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _tgz(*members: bytes) -> bytes:
    return gzip.compress(_member("package/package.json", MANIFEST) + b"".join(members) + b"\0" * 1024)


def gnu_long_name(size: int) -> bytes:
    return _tgz(_header(b"././@LongLink", size, b"L") + _padded(b"a" * size), _member("package/x.js", b"1"))


def pax_header(size: int) -> bytes:
    value = "a" * size
    return _tgz(_member("package/x.js", b"1", comment=value))


def gnu_sparse(real_size: int) -> bytes:
    """A GNU ('S') sparse entry: 512 stored bytes at offset 0 of a file of `real_size` bytes."""
    fields = {386: b"%011o\0" % 0, 398: b"%011o\0" % 512, 483: b"\x80" + real_size.to_bytes(11, "big")}
    return _tgz(_header(b"package/big.js", 512, b"S", fields) + b"a" * 512)


def pax_sparse(real_size: int) -> bytes:
    """A PAX 1.0 sparse entry (GNU tar --sparse --format=pax): the map leads the stored data."""
    data = _padded(b"1\n0\n512\n") + b"a" * 512
    return _tgz(_member("package/GNUSparseFile.0/big.js", data, **{
        "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "package/big.js",
        "GNU.sparse.realsize": str(real_size)}))


def readers():
    return [pytest.param(read_package, id="read_package"), pytest.param(lambda d: snapshot(d, Limits()), id="snapshot")]


@pytest.mark.parametrize("read", readers())
@pytest.mark.parametrize("make", [gnu_long_name, pax_header], ids=["gnu-long-name", "pax-header"])
def test_a_header_extension_larger_than_the_bound_is_refused_before_it_is_read(read, make):
    with pytest.raises(InvalidTarball, match="header"):
        read(make(MAX_HEADER_BYTES + 1))


@pytest.mark.parametrize("read", readers())
def test_a_long_name_within_the_bound_is_read(read):
    read(_tgz(_member("package/" + "d/" * 200 + "x.js", b"1")))  # npm pack writes a pax header for this


@pytest.mark.parametrize("read", readers())
@pytest.mark.parametrize("make", [gnu_sparse, pax_sparse], ids=["gnu", "pax-1.0"])
def test_a_sparse_entry_is_refused_npm_does_not_install_it(read, make):
    with pytest.raises(InvalidTarball, match="sparse"):
        read(make(1 << 30))  # unfixed, snapshot hashes a GiB of zeros here (and 8 TiB as easily)


@pytest.mark.parametrize("read", readers())
@pytest.mark.parametrize("field", ["path", "linkpath"])
def test_a_path_longer_than_any_disk_takes_is_refused(read, field):
    # Under the header bound, 500 such entries still held 500 MiB of names (and the review page showed each).
    with pytest.raises(InvalidTarball, match="path"):
        read(_tgz(_member("package/x.js", b"1", **{field: "package/" + "a/" * 2100 + "x.js"})))


# Where Python's tarfile and npm's node-tar read a different entry from the same bytes, the registry (which
# checks package.json and shows the review diff) and npm (which installs) would see different files. Each
# case below was run through npm 11.19.1's own node-tar: it lists other files, or other names, than tarfile.

def _pax(records: dict[str, str], kind: bytes = b"x") -> bytes:
    body = b""
    for key, value in records.items():
        record = f" {key}={value}\n".encode()
        length = len(record) + 1
        while len(str(length)) + len(record) != length:
            length += 1
        body += str(length).encode() + record
    return _header(b"pax", len(body), kind) + _padded(body)


def _long_name(name: bytes) -> bytes:
    return _header(b"././@LongLink", len(name), b"L") + _padded(name)


def _file(name: bytes, data: bytes) -> bytes:
    return _header(name, len(data), b"0") + _padded(data)


def _checksummed(block: bytes, signed: bool = False, digits: int = 6) -> bytes:
    """`block` with its checksum written as tarfile accepts and node-tar does not."""
    value = tarfile.calc_chksums(block)[1 if signed else 0]
    field = (b"%0*o" % (digits, value)).ljust(8, b"\0")[:6] + b"\0 " if digits < 8 else b"%08o" % value
    return block[:148] + field + block[156:]


NEGATIVE_1024 = b"\xff" * 10 + b"\xfc\x00"  # -1024 in a size field's base-256 form


DISAGREEING = {
    "pax-path-then-long-name": _pax({"path": "package/shown.js"}) + _long_name(b"package/hidden.js") +
    _file(b"package/x", b"evil()\n"),
    "long-name-then-pax-path": _long_name(b"package/hidden.js") + _pax({"path": "package/shown.js"}) +
    _file(b"package/x", b"evil()\n"),
    "global-path": _pax({"path": "package/shown.js"}, b"g") + _file(b"package/a.js", b"evil()\n") +
    _file(b"package/b.js", b"ok()\n"),
    "global-size": _pax({"size": "0"}, b"g") + _header(b"package/a.js", 1024, b"0") +
    _file(b"package/smuggled.js", b"evil()\n") + b"\0" * 512,
    # node-tar reads the name prefix field of POSIX ustar headers only; tarfile of GNU ones too
    "gnu-header-with-a-prefix": _header(b"package/index.js", 7, b"0", {345: b"decoy"}) + _padded(b"evil()\n"),
    # tarfile stops at one zero block or at a header with a bad checksum; node-tar reads on past both
    # (it stops at two zero blocks)
    "one-zero-block": b"\0" * 512 + _file(b"package/smuggled.js", b"evil()\n"),
    # a regular file named like a directory: node-tar makes it a directory of no size and reads its data as
    # the next headers
    "file-named-like-a-directory": _header(b"package/x/", 1024, b"0") + _file(b"package/smuggled.js", b"evil()\n"),
    "pax-path-like-a-directory": _pax({"path": "package/x/"}) + _header(b"package/x", 1024, b"0") +
    _file(b"package/smuggled.js", b"evil()\n"),
    # node-tar skips a header it finds invalid and reads the entry's data as the next headers
    "file-with-a-link-target": _header(b"package/a.js", 512, b"0", {157: b"x"}) +
    _file(b"package/smuggled.js", b"evil()\n"),
    "link-without-a-target": _header(b"package/a.js", 0, b"2") + _file(b"package/b.js", b"ok()\n"),
    "link-with-data": _header(b"package/l.js", 512, b"2", {157: b"a.js"}) + _file(b"package/shown.js", b"ok()\n"),
    "pax-header-without-a-name": _header(b"", 0, b"x") + _file(b"package/a.js", b"ok()\n"),
    "signed-checksum": _checksummed(_header(b"package/\xe9.js", 7, b"0"), signed=True) + _padded(b"evil()\n"),
    "checksum-not-terminated": _checksummed(_header(b"package/a.js", 7, b"0"), digits=8) + _padded(b"evil()\n"),
    # 'N' (old GNU long path) names the next entry for node-tar and is nothing to tarfile
    "old-gnu-long-path": _header(b"././@LongLink", 16, b"N") + _padded(b"package/other.js") +
    _file(b"package/a.js", b"evil()\n"),
    "bad-checksum": _header(b"package/junk", 0, b"0")[:148] + b"0000000\0" + _header(b"package/junk", 0, b"0")[156:] +
    _file(b"package/smuggled.js", b"evil()\n"),
    # a size field in base-256 may be negative: tarfile then reads back over what it read (the entry's data
    # taken for headers, or the same header forever); node-tar skips such a header
    "negative-size-global": _header(b"pax", 0, b"g", {124: NEGATIVE_1024}) + _file(b"package/a.js", b"ok()\n"),
    "negative-size-pax": _header(b"pax", 0, b"x", {124: NEGATIVE_1024}) + _file(b"package/a.js", b"ok()\n"),
    "negative-size-long-name": _header(b"././@LongLink", 0, b"L", {124: NEGATIVE_1024}) +
    _file(b"package/a.js", b"ok()\n"),
    "negative-size-file": _header(b"package/a.js", 0, b"0", {124: NEGATIVE_1024}) + _file(b"package/b.js", b"ok()\n"),
    # node-tar takes a pax size only when it is all digits; Python's int() takes these too, and reads the
    # entry's data as a different length (here: none, so its data, a header, names a file npm never sees)
    **{f"pax-size-{label}": _pax({"size": size}) + _header(b"package/a.js", 512, b"0") +
       _header(b"package/shown.js", 1024, b"0") + _file(b"package/evil.js", b"evil()\n")
       for label, size in (("negative", "-5"), ("signed", "+0"), ("spaced", " 0"), ("underscored", "0_0"),
                           ("arabic-indic", "\u0660"))},
}


@pytest.mark.parametrize("read", readers())
@pytest.mark.parametrize("case", DISAGREEING)
def test_headers_tar_readers_disagree_on_are_refused(read, case):
    with pytest.raises(InvalidTarball, match="disagree"):
        read(_tgz(DISAGREEING[case]))


@pytest.mark.parametrize("read", readers())
def test_a_global_header_of_git_archive_and_a_pax_path_are_read(read):
    read(_tgz(_pax({"comment": "0123abcd"}, b"g"), _pax({"path": "package/" + "d/" * 60 + "x.js"}),
              _file(b"package/x", b"1\n")))


def test_every_entry_counts_toward_the_entry_bound(monkeypatch):
    """Directories and repeated paths cost a header's parse each, like files: all of them count."""
    import broker.domain.tarball as tarball_module

    monkeypatch.setattr(tarball_module, "MAX_ENTRIES", 5)
    directory = _header(b"package/d/", 0, b"5")
    read_package(_tgz(directory * 3))  # 4 entries with the package.json
    with pytest.raises(InvalidTarball, match="more than 5 entries"):
        read_package(_tgz(directory * 5))
    with pytest.raises(InvalidTarball, match="more than 5 entries"):
        read_package(_tgz(_file(b"package/a.js", b"1") * 5))  # one path, five headers
