"""What the registry reads from a package tarball: digests, its package.json and the paths it installs."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import struct
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_UNPACKED_BYTES = 2 * 1024**3  # a gzip bomb stops here
# A GNU long name or link, or a pax header: tarfile reads each whole into memory before the entry it
# describes. npm pack writes pax headers of a few hundred bytes (long paths); a MiB is far more.
MAX_HEADER_BYTES = 1024 * 1024
MAX_PATH = 4096  # Linux's PATH_MAX: npm cannot write a longer path (node-tar warns and skips the entry)
_ENTRY_EXTENSIONS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_HEADER_EXTENSIONS = (*_ENTRY_EXTENSIONS, tarfile.XGLTYPE)
# Keys of a global pax header that tarfile and npm's node-tar apply differently: node-tar ignores a global
# path, and takes a global size to find the next header where tarfile takes the entry's own.
_DISPUTED_GLOBAL_KEYS = frozenset({"path", "linkpath", "size"})
_PAX_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only (str patterns' \d would take any script's)
_EXTENDED = "_stagegate_extended"  # set on the TarFile while an entry's header extension is being read
_LINKS = (tarfile.LNKTYPE, tarfile.SYMTYPE)
# The entry types tarfile and node-tar read alike (sparse ones are refused with their own reason). npm pack
# writes 0, 5 and x; GNU tar and git archive also 1, 2, L, K and g. node-tar takes others ('N', 'V', 'M'…)
# as meta data or skips them where tarfile takes them for files, or the other way round.
_READ_ALIKE_TYPES = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, *_LINKS, tarfile.DIRTYPE,
                               *_HEADER_EXTENSIONS, tarfile.GNUTYPE_SPARSE}) - {tarfile.SOLARIS_XHDTYPE}
_CHECKSUM_FIELD = re.compile(rb" *([0-7]{1,7})[\0 ]+")  # node-tar reads 12 bytes: the field must end itself


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


class _Gunzipped:
    """The tar stream inside a gzipped tarball held in memory, decompressed as tarfile reads it. tarfile
    opens it as a file (mode "r:"), but it reads as tarfile's stream mode ("r|") would: forward only, a
    seek forward skips the bytes, a read past the end comes back short. It decompresses what
    `gzip.GzipFile` does, with the same errors: the members one after the other as one stream, each
    member's CRC and length checked, anything else after a member refused. Zero bytes are skipped only at
    the end (GzipFile also skips them between members, where npm's zlib stops). More than `limit`
    decompressed bytes are refused, and more than MAX_GZIP_MEMBERS members.

    Not GzipFile under tarfile's stream mode, as before: the layers between them copied every byte a
    few times in Python-level reads (a 1 MiB tarball took 2.5 times as long as decompressing it), and
    tarfile's stream copied what was left of its 256 KiB buffer for each 512-byte header. Here a header
    is a slice of the last piece decompressed, and a file's data is skipped by moving an index, or
    decompressed and dropped a piece at a time.
    """

    def __init__(self, data: bytes, limit: int) -> None:
        self._data, self._left = memoryview(data), limit
        self._piece, self._at, self._pos = b"", 0, 0  # decompressed bytes; where reading is in them and in all
        self._members = 0
        self._start_member(0)

    def tell(self) -> int:
        return self._pos

    def read(self, size: int) -> bytes:
        if size < 0:  # tarfile reads a header's size from the header: a negative one would move back
            raise tarfile.ReadError("a read of a negative size")
        if self._at + size <= len(self._piece):
            self._at += size
            self._pos += size
            return self._piece[self._at - size:self._at]
        parts = []
        while size > 0 and self._available():
            part = self._piece[self._at:self._at + size]
            self._at += len(part)
            size -= len(part)
            parts.append(part)
        data = b"".join(parts)
        self._pos += len(data)
        return data

    def seek(self, pos: int) -> int:
        if pos < self._pos:
            raise tarfile.StreamError("seeking backwards is not allowed")
        skip = pos - self._pos
        while skip > 0 and self._available():
            step = min(skip, len(self._piece) - self._at)
            self._at += step
            skip -= step
        self._pos = pos - skip
        return self._pos

    def check_rest(self) -> None:
        """Decompress what tarfile did not read (the tar's end padding), so that its errors, a bad CRC or
        data after the last member, are found however far the tar ends before the gzip stream does."""
        while self._available():
            self._at = len(self._piece)

    def _available(self) -> bool:
        """Whether there are decompressed bytes left to read, decompressing the next piece if needed."""
        if self._at == len(self._piece):
            self._piece, self._at = self._inflated(), 0
        return self._at < len(self._piece)

    def _inflated(self) -> bytes:
        """The next decompressed bytes, or b"" at the end of the last member."""
        while self._inflate is not None:
            feed = self._unconsumed or self._data[self._in:self._in + _INFLATE_IN]
            if not self._unconsumed:
                self._in += len(feed)
            inflate = self._inflate
            data = inflate.decompress(feed, min(_INFLATE_OUT, self._left + 1))
            self._unconsumed = inflate.unconsumed_tail
            self._crc, self._size = zlib.crc32(data, self._crc), self._size + len(data)
            self._left -= len(data)
            if self._left < 0:
                raise InvalidTarball("the tarball unpacks to more than the registry accepts")
            if inflate.eof:
                self._end_member(self._in - len(inflate.unused_data))
            elif not data and not feed:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            if data:
                return data
        return b""

    def _end_member(self, at: int) -> None:
        _need(self._data, at + 8)
        crc, size = struct.unpack_from("<II", self._data, at)
        if crc != self._crc:
            raise gzip.BadGzipFile(f"CRC check failed {hex(crc)} != {hex(self._crc)}")
        if size != self._size & 0xFFFFFFFF:
            raise gzip.BadGzipFile("Incorrect length of data produced")
        after = _ZEROS.match(self._data, at + 8).end()
        if after != at + 8 and self._data[after:after + 2] == b"\x1f\x8b":  # npm's zlib stops at the zeros
            raise InvalidTarball("the tarball has zero bytes between two gzip members (npm's gunzip stops there "
                                 "and installs a cut-off tar); pack it with npm pack")
        self._start_member(after)

    def _start_member(self, at: int) -> None:
        """Read the gzip header at `at` as gzip's _read_gzip_header does, or end the stream there."""
        self._inflate, self._in, self._unconsumed, self._crc, self._size = None, at, b"", 0, 0
        data = self._data
        if at == len(data):
            return
        if data[at:at + 2] != b"\x1f\x8b":
            raise gzip.BadGzipFile(f"Not a gzipped file ({bytes(data[at:at + 2])!r})")
        self._members += 1
        if self._members > MAX_GZIP_MEMBERS:  # each costs ~10 µs of Python: millions fit in an upload
            raise InvalidTarball(f"the tarball is made of more than {MAX_GZIP_MEMBERS} gzip members (npm pack "
                                 "writes one); pack it with npm pack")
        _need(data, at + 10)
        if data[at + 2] != 8:
            raise gzip.BadGzipFile("Unknown compression method")
        flags, at = data[at + 3], at + 10
        if flags & gzip.FEXTRA:
            _need(data, at + 2)
            at += 2 + int.from_bytes(data[at:at + 2], "little")
            _need(data, at)
        if flags & gzip.FNAME:
            at = _NUL_ENDED.match(data, at).end()
        if flags & gzip.FCOMMENT:
            at = _NUL_ENDED.match(data, at).end()
        if flags & gzip.FHCRC:
            at += 2
            _need(data, at)
        self._inflate, self._in = zlib.decompressobj(-zlib.MAX_WBITS), at


def _need(data: memoryview, end: int) -> None:
    if len(data) < end:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")


MAX_GZIP_MEMBERS = 64
_INFLATE_IN = 64 * 1024  # compressed bytes handed to zlib at a time (it copies what it leaves unconsumed)
_INFLATE_OUT = 256 * 1024  # decompressed bytes asked of zlib at a time: what is held besides the input
_ZEROS = re.compile(rb"\0*")
_NUL_ENDED = re.compile(rb"[^\0]*\0?")  # a gzip header's name or comment (the data's end ends it too)

MAX_ENTRIES = 200_000  # headers read (each ~50 µs of tarfile's parsing); their paths are kept in memory to
# derive what npm derives from files (bins, binding.gyp), at most MAX_PATH_BYTES of them
MAX_PATH_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class PackageContents:
    """What a tarball installs: its package.json and the paths of its files, as npm extracts them."""

    manifest: dict
    files: frozenset[str]  # regular files, relative to the package root ("bin/cli.js")


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile's headers, less what it would do without bounds on a crafted tarball. Pass it as
    `tarfile.open(..., tarinfo=BoundedTarInfo)`.

    Headers that tarfile and npm's node-tar read differently are refused (a global pax path or size;
    an entry with two header extensions, such as a pax path and a GNU long name; a name prefix outside
    POSIX ustar; a regular file named like a directory; a header with a bad checksum, where tarfile
    stops and node-tar reads on; see also `refuse_early_end`): with them, one tarball shows the
    registry one set of files and installs another.

    A header extension larger than MAX_HEADER_BYTES is refused before it is read (tarfile holds it
    whole: a 400 KiB tarball with a 400 MiB long name held over 1 GiB), and so is a path longer than
    MAX_PATH (every name is kept while reading: 500 of a MiB each held 500 MiB). A sparse entry, GNU or
    pax, is refused: tarfile reads its map whole and then expands its holes, so a 400-byte tarball
    reads as terabytes of zeros; npm's tar does not install sparse entries, and npm pack never writes one.
    """

    def _proc_member(self, tarfile_):
        if self.type in _HEADER_EXTENSIONS and self.size > MAX_HEADER_BYTES:
            raise InvalidTarball(f"the tarball has a header extension (long name or pax header) of {self.size} "
                                 f"bytes; at most {MAX_HEADER_BYTES} are read")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _sparse()
        disputed = sorted(_DISPUTED_GLOBAL_KEYS & tarfile_.pax_headers.keys())
        if disputed:
            raise _disputed(f"a global pax header sets {', '.join(disputed)}")
        extended = getattr(tarfile_, _EXTENDED, False)  # this header's name is not final: its extension's is
        if extended and self.type in _HEADER_EXTENSIONS:
            raise _disputed("an entry has more than one header extension (pax header, GNU long name or link)")
        if self.type in _HEADER_EXTENSIONS and not self.name:
            raise _disputed("a header extension has no name (node-tar skips it and reads its data as headers)")
        setattr(tarfile_, _EXTENDED, self.type in _ENTRY_EXTENSIONS)
        member = super()._proc_member(tarfile_)
        if not extended:
            _refuse_entries_read_otherwise(member)
        return member

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        if len(buf) == tarfile.BLOCKSIZE and buf.count(0) != tarfile.BLOCKSIZE:  # else tarfile's end or error
            why = _read_otherwise_by_node_tar(buf)
            if why:
                raise _disputed(why)
        try:
            member = super().frombuf(buf, encoding, errors)
        except tarfile.InvalidHeaderError:  # tarfile would end the archive here; node-tar skips the block
            raise _disputed("the tarball has a header with a bad checksum or a malformed field (npm's tar "
                            "skips it and reads on, Python's stops there)") from None
        if member.size < 0:  # base-256 allows one; tarfile would read back over what it read, node-tar skips it
            raise _disputed("the tarball has a header with a negative size")
        # tarfile joins the name prefix field (345:500) to the name whatever the magic; node-tar only
        # for POSIX ustar, so a GNU header with one names different files for the two.
        if buf[345] and buf[257:265] != tarfile.POSIX_MAGIC and member.type not in tarfile.GNU_TYPES:
            raise _disputed("an entry that is not POSIX ustar has a name prefix")
        return member

    def _apply_pax_info(self, pax_headers, encoding, errors):
        # node-tar takes a pax size only when it is all ASCII digits; Python's int() also takes a sign,
        # spaces, underscores and other scripts' digits, and so would read the entry's data otherwise.
        size = pax_headers.get("size")
        if size is not None and not _PAX_NUMBER.fullmatch(size):
            raise _disputed(f"a pax header gives a size that is not plain digits ({size[:20]!r})")
        super()._apply_pax_info(pax_headers, encoding, errors)

    # pax sparse formats 0.0, 0.1 and 1.0: applied to the entry after its pax header
    def _proc_gnusparse_00(self, *_):
        raise _sparse()

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


def _read_otherwise_by_node_tar(buf: bytes) -> str | None:
    """Why node-tar would read this header block otherwise than tarfile does, or None. node-tar skips a
    header it finds invalid and reads on at the next block: the entry's data, taken for headers."""
    field = _CHECKSUM_FIELD.fullmatch(buf[148:156])
    # the unsigned sum of the block's bytes, the checksum field taken as 8 spaces: tarfile.calc_chksums'
    # first value, without the signed one it also sums (a quarter of the time spent on a small entry)
    if field is None or int(field.group(1), 8) != 256 + sum(buf[:148]) + sum(buf[156:]):
        return "a header checksum npm's tar does not take (signed, or not ended by a NUL or a space)"
    kind, has_target = buf[156:157], buf[157] != 0
    if kind not in _READ_ALIKE_TYPES:
        return f"an entry of type {kind.decode('latin-1')!r}, which npm's tar reads otherwise"
    if kind in _LINKS and not has_target:
        return "a link without a target in its header"
    if kind not in (*_LINKS, tarfile.XHDTYPE, tarfile.XGLTYPE) and has_target:
        return "an entry that is not a link has a link target"
    return None


def _refuse_entries_read_otherwise(member: tarfile.TarInfo) -> None:
    """The checks on an entry as its header extensions left it."""
    if not member.name:
        raise _disputed("an entry has no path")
    if member.isreg() and (member.name.endswith("/") or member.pax_headers.get("path", "").endswith("/")):
        raise _disputed("a regular file is named like a directory (node-tar makes it an empty directory "
                        "and reads its data as headers)")
    if member.type in _LINKS and member.size:
        raise _disputed("a link has data (node-tar skips it, tarfile reads it as the next headers)")
    if max(len(member.name), len(member.linkname)) > MAX_PATH:
        raise InvalidTarball(f"the tarball has an entry whose path or link target is longer than {MAX_PATH} "
                             "characters, more than a disk takes")


def refuse_early_end(archive: tarfile.TarFile) -> None:
    """Call when iterating `archive` ended: tarfile ends at one zero block, node-tar only at two (and
    reads on past one), so a zero block must be followed by another or by nothing."""
    if archive.fileobj.read(tarfile.BLOCKSIZE).strip(b"\0"):
        raise _disputed("the tarball has entries after a single zero block")


def _disputed(what: str) -> InvalidTarball:
    """Headers on which tarfile and npm's node-tar disagree: the registry would check and show other
    files than npm installs. npm pack writes at most one pax header per entry and no global one."""
    return InvalidTarball(f"{what}: tar readers disagree on which files such a tarball holds (npm's would "
                          "install other files than the registry checks); pack it with npm pack")


def _sparse() -> InvalidTarball:
    return InvalidTarball("the tarball holds a sparse entry (tar --sparse), which npm does not install as such; "
                          "pack it with npm pack")


def installed_path(member_name: str) -> str | None:
    """Where npm's extraction (node-tar with strip: 1) writes an entry, or None when it skips it."""
    parts = member_name.replace("\\", "/").split("/")[1:]
    path = "/".join(parts).lstrip("/").rstrip("/")
    if not path or ".." in path.split("/"):
        return None
    return path


@contextmanager
def gzipped_tar(data: bytes, limit: int) -> Iterator[tarfile.TarFile]:
    """The tar inside a gzipped tarball, read forward once, at most `limit` bytes unpacked, with
    BoundedTarInfo's refusals. Iterate it with `entries_of`; a member's data is read (extractfile) while
    the iteration is at it. When the block ends without an error, what follows the last entry is checked:
    the end blocks (`refuse_early_end`) and the rest of the gzip stream. Raises OSError, EOFError,
    tarfile.TarError, zlib.error or InvalidTarball."""
    stream = _Gunzipped(data, limit)
    with tarfile.open(fileobj=stream, mode="r:", tarinfo=BoundedTarInfo) as archive:
        yield archive
        refuse_early_end(archive)
    stream.check_rest()


def entries_of(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's entries in order, without tarfile keeping every header it read (it would: ~1.4 KB each)."""
    for member in archive:
        archive.members.clear()
        yield member


def read_package(data: bytes) -> PackageContents:
    """The package.json and file list of a gzipped tarball, read in one bounded pass.

    Every entry is read, not only up to the first package.json: npm extracts every entry with its
    first path component stripped, so `package/package.json`, `x/package.json` and a second
    `package/package.json` all land on the same file and the last one wins. A tarball that holds
    more than one (compared case-insensitively, for case-insensitive disks) is refused, or the
    registry could check one manifest while installs get another.
    """
    manifests, files, entries, kept = [], set(), 0, 0
    try:
        with gzipped_tar(data, MAX_UNPACKED_BYTES) as archive:
            for member in entries_of(archive):
                entries += 1  # every entry, directories and repeated paths too: each costs a header's parse
                if entries > MAX_ENTRIES:
                    raise InvalidTarball(f"the tarball holds more than {MAX_ENTRIES} entries")
                path = installed_path(member.name)
                if path is None or member.isdir():
                    continue
                if path not in files:
                    kept += len(path)
                    if kept > MAX_PATH_BYTES:
                        raise InvalidTarball(f"the tarball's file paths add up to more than {MAX_PATH_BYTES} "
                                             "characters")
                files.add(path)
                if path.casefold() == "package.json":
                    if manifests:
                        raise InvalidTarball("the tarball holds more than one package.json at its root (an "
                                             "install would keep the last one); pack it again with npm pack")
                    manifests.append(_manifest_of(archive, member))
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise InvalidTarball(f"the attachment is not a readable gzipped tarball ({exc.__class__.__name__})") from None
    if not manifests:
        raise InvalidTarball("the tarball has no package/package.json")
    return PackageContents(manifests[0], frozenset(files))


def _manifest_of(archive: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    if not member.isfile():
        raise InvalidTarball("package/package.json in the tarball is not a regular file")
    if member.size > MAX_MANIFEST_BYTES:
        raise InvalidTarball("package/package.json in the tarball is too large")
    handle = archive.extractfile(member)
    try:
        manifest = json.loads(handle.read()) if handle else None
    except RecursionError:
        raise InvalidTarball("package/package.json in the tarball is nested too deeply") from None
    except InvalidTarball:  # the unpack bound, met while reading it: not a JSON error
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        reason = exc.__class__.__name__
        raise InvalidTarball(f"package/package.json in the tarball is not valid JSON ({reason})") from None
    if not isinstance(manifest, dict):
        raise InvalidTarball("package/package.json in the tarball is not a JSON object")
    return manifest


def read_manifest(data: bytes) -> dict:
    """The package/package.json inside a gzipped tarball, parsed."""
    return read_package(data).manifest
