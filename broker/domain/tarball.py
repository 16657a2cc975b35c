"""What the registry reads from a package tarball: digests, its package.json and the paths it installs."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
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


MAX_ENTRIES = 200_000  # names kept in memory to derive what npm derives from files (bins, binding.gyp)
_TAR_READ = 256 * 1024  # tarfile's stream reads (and skips file data) in slices of this; its default, 10 KiB,
# made a 1 MiB tarball a hundred Python-level reads through gzip


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
        # tarfile joins the name prefix field (345:500) to the name whatever the magic; node-tar only
        # for POSIX ustar, so a GNU header with one names different files for the two.
        if buf[345] and buf[257:265] != tarfile.POSIX_MAGIC and member.type not in tarfile.GNU_TYPES:
            raise _disputed("an entry that is not POSIX ustar has a name prefix")
        return member

    # pax sparse formats 0.0, 0.1 and 1.0: applied to the entry after its pax header
    def _proc_gnusparse_00(self, *_):
        raise _sparse()

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


def _read_otherwise_by_node_tar(buf: bytes) -> str | None:
    """Why node-tar would read this header block otherwise than tarfile does, or None. node-tar skips a
    header it finds invalid and reads on at the next block: the entry's data, taken for headers."""
    field = _CHECKSUM_FIELD.fullmatch(buf[148:156])
    if field is None or int(field.group(1), 8) != tarfile.calc_chksums(buf)[0]:
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


def read_package(data: bytes) -> PackageContents:
    """The package.json and file list of a gzipped tarball, read in one bounded pass.

    Every entry is read, not only up to the first package.json: npm extracts every entry with its
    first path component stripped, so `package/package.json`, `x/package.json` and a second
    `package/package.json` all land on the same file and the last one wins. A tarball that holds
    more than one (compared case-insensitively, for case-insensitive disks) is refused, or the
    registry could check one manifest while installs get another.
    """
    manifests, files = [], set()
    try:
        stream = _Bounded(gzip.GzipFile(fileobj=io.BytesIO(data)), MAX_UNPACKED_BYTES)
        with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|", tarinfo=BoundedTarInfo,
                          bufsize=_TAR_READ) as archive:
            for member in archive:
                path = installed_path(member.name)
                if path is None or member.isdir():
                    continue
                if len(files) >= MAX_ENTRIES:
                    raise InvalidTarball(f"the tarball holds more than {MAX_ENTRIES} files")
                files.add(path)
                if path.casefold() == "package.json":
                    if manifests:
                        raise InvalidTarball("the tarball holds more than one package.json at its root (an "
                                             "install would keep the last one); pack it again with npm pack")
                    manifests.append(_manifest_of(archive, member))
            refuse_early_end(archive)
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
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        reason = exc.__class__.__name__
        raise InvalidTarball(f"package/package.json in the tarball is not valid JSON ({reason})") from None
    if not isinstance(manifest, dict):
        raise InvalidTarball("package/package.json in the tarball is not a JSON object")
    return manifest


def read_manifest(data: bytes) -> dict:
    """The package/package.json inside a gzipped tarball, parsed."""
    return read_package(data).manifest
