"""What a reviewer needs to see about a staged version: its changes against the version it replaces.

Pure code: `snapshot(tarball_bytes)` reads one gzipped tarball in one streaming pass into a bounded
summary (every file's size and digest, and the text of small text files), and `compare(old, new)`
turns two summaries into the manifest diff, the file list diff with unified text diffs, and the
warnings a careful reviewer wants (install scripts, new dependencies, size jumps, binaries, secrets).

Nothing here is ever written to disk, so an entry's path cannot escape anywhere; paths that would
(absolute, `..`) or that npm's extraction skips are still reported, as a warning, and not compared.
Memory is bounded by `Limits`: the unpacked bytes read, the number of entries, the bytes of text
kept per file and per tarball, and the lines of each diff.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import posixpath
import re
import tarfile
import time
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

from .manifest import npm_publish_view
from .tarball import InvalidTarball, entries_of, gzipped_tar

KIB, MIB = 1024, 1024 * 1024

DEPENDENCY_KINDS = ("dependencies", "optionalDependencies", "peerDependencies", "bundleDependencies",
                    "devDependencies")
# Dependencies a consumer's install fetches (devDependencies are the package author's own).
INSTALLED_DEPENDENCY_KINDS = frozenset(DEPENDENCY_KINDS) - {"devDependencies"}
# Scripts npm runs when someone installs the package (`prepare` for git dependencies and links).
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall", "prepare")

_BINARY_MAGIC = (b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"\x00asm")
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_NPMRC_SECRET = re.compile(rb"_authToken|_auth\s*=|_password\s*=")
SNIFF_BYTES = 64 * KIB  # the start of every file, looked at for secrets even when its text is not kept
_KEY_FILE_NAMES = {"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"}
# Bidirectional controls and invisible characters: with them, code reads differently from how it runs
# ("Trojan Source", CVE-2021-42574). The page warns about them and shows each as a visible mark.
HIDDEN_CHARACTERS = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class Limits:
    unpacked_bytes: int = 512 * MIB  # a tarball (at most 100 MiB) that unpacks to more is not reviewed
    entries: int = 20_000
    text_per_file: int = 256 * KIB  # larger files are compared by size and digest only
    text_per_tarball: int = 16 * MIB  # text kept for diffs across one tarball
    diff_lines: int = 2_000  # lines of one file's unified diff shown
    # All diffs shown together: later files are listed without theirs. Characters too: lines of 999
    # characters are not minified, and 41 KiB tarballs of them made an 85 MiB page.
    page_diff_lines: int = 20_000
    page_diff_chars: int = 2 * MIB
    # difflib's time grows with the square of the lines on inputs as plain as "every other line changed"
    # (10,000 such lines: 7 s; a crafted order of repeated lines: 16 s). A file with more lines on either
    # side is compared by digest only (4,000 lines: 1 to 2.5 s at worst), and once a page spent
    # diff_seconds in difflib its later files are listed without their diff.
    compared_lines: int = 4_000
    diff_seconds: float = 2.0
    manifest_bytes: int = 1 * MIB
    path_chars: int = 4 * MIB  # the paths of one tarball together (each is on the page, up to twice)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    digest: str  # sha256 hex of the content
    kind: str  # text, binary, minified, large (text not kept)
    text: str | None = None  # kept only for small text files, within the tarball's text budget
    secret: str | None = None  # why the file looks like a secret, if it does


@dataclass(frozen=True)
class Snapshot:
    """One tarball, summarised: its package.json, its files by installed path, what was skipped."""

    manifest: dict | None
    files: dict[str, FileEntry]
    unpacked: int
    problems: tuple[str, ...] = ()


def snapshot(data: bytes, limits: Limits = Limits()) -> Snapshot:
    """Read a gzipped npm tarball once, streaming; `InvalidTarball` when it cannot be read in bounds."""
    files: dict[str, FileEntry] = {}
    problems: list[str] = []
    budget = [limits.text_per_tarball]
    manifest_text: bytes | None = None
    unpacked, path_chars = 0, 0
    try:
        with gzipped_tar(data, limits.unpacked_bytes) as archive:
            for count, member in enumerate(entries_of(archive)):
                if count >= limits.entries:
                    raise InvalidTarball(f"the tarball holds more than {limits.entries} entries")
                if member.isdir():
                    continue
                path_chars += len(member.name)
                if path_chars > limits.path_chars:
                    raise InvalidTarball(f"the paths in the tarball are longer than {human_size(limits.path_chars)} "
                                         "together, more than the page shows")
                path = _safe_path(member.name)
                if path is None:
                    problems.append(f"entry {member.name[:200]!r} has a path that escapes the package or is "
                                    "empty: npm skips it; not compared")
                    continue
                if member.issym() or member.islnk():  # npm (pacote) skips links: the path keeps what it had
                    problems.append(f"entry {path!r} is a link to {member.linkname[:200]!r}: npm does not install "
                                    "links; not compared")
                    continue
                if not member.isfile():
                    problems.append(f"entry {path!r} is not a regular file (type {member.type!r}): not compared")
                    continue
                entry, raw = _read_file(archive, member, path, limits, budget)
                unpacked += entry.size
                if path == "package.json":  # the last one is what npm installs
                    manifest_text = raw if raw is not None and len(raw) <= limits.manifest_bytes else None
                files[path] = entry
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise InvalidTarball(f"the tarball is not a readable gzipped tarball ({exc.__class__.__name__})") from None
    return Snapshot(_parse_manifest(manifest_text, problems), files, unpacked, tuple(problems))


def _safe_path(name: str) -> str | None:
    """The path npm installs an entry at (first component stripped), or None when it must not be used."""
    parts = name.replace("\\", "/").split("/")[1:]
    if not parts or name.startswith("/") or any(p == ".." for p in parts):
        return None
    path = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")))
    return None if path in (".", "") or path.startswith("../") else path


def _read_file(archive: tarfile.TarFile, member: tarfile.TarInfo, path: str, limits: Limits,
               budget: list[int]) -> tuple[FileEntry, bytes | None]:
    handle = archive.extractfile(member)
    digest, size, head = hashlib.sha256(), 0, bytearray()
    # package.json has its own allowance (manifest_bytes); every other file draws on the tarball's budget.
    keep = limits.manifest_bytes if path == "package.json" else min(limits.text_per_file, budget[0])
    wanted = max(keep, SNIFF_BYTES) + 1  # one byte past `keep` tells that the file did not fit
    while handle is not None and (chunk := handle.read(256 * KIB)):
        digest.update(chunk)
        size += len(chunk)
        if len(head) < wanted:
            head += chunk[: wanted - len(head)]
    kept = bytes(head) if size <= keep else None
    kind, text = _classify(path, bytes(head[:8 * KIB]), kept)
    if text is not None and path != "package.json":
        budget[0] -= len(kept)
    return FileEntry(path, size, digest.hexdigest(), kind, text, _secret_reason(path, bytes(head[:SNIFF_BYTES]))), kept


def _classify(path: str, start: bytes, kept: bytes | None) -> tuple[str, str | None]:
    if b"\x00" in start or start.startswith(_BINARY_MAGIC) or path.endswith(".node"):
        return "binary", None
    if kept is None:
        return "large", None
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", None
    if _minified(path, text):
        return "minified", None
    return "text", text


def _minified(path: str, text: str) -> bool:
    if re.search(r"\.min\.(js|mjs|cjs|css)$", path):
        return True
    lines = text.splitlines() or [""]
    return max(len(line) for line in lines) > 1_000 and len(text) / len(lines) > 300


def _secret_reason(path: str, head: bytes) -> str | None:
    name = posixpath.basename(path)
    if name == ".env" or name.startswith(".env.") and not name.endswith((".example", ".sample", ".template")):
        return "an environment file (.env) often holds credentials"
    if name == ".npmrc" and _NPMRC_SECRET.search(head):
        return "an .npmrc with a registry credential (_authToken, _auth or _password)"
    if _PRIVATE_KEY.search(head):
        return "holds a private key (-----BEGIN … PRIVATE KEY-----)"
    if name in _KEY_FILE_NAMES:
        return "named like an SSH private key"
    return None


def _parse_manifest(raw: bytes | None, problems: list[str]) -> dict | None:
    if raw is None:
        problems.append("package.json is missing or too large to read")
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        problems.append("package.json is not valid JSON")
        return None
    if not isinstance(value, dict):
        problems.append("package.json is not a JSON object")
        return None
    return value


# --- comparing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    key: str
    old: str | None
    new: str | None
    flagged: bool = False  # an install-time script, shown prominently

    @property
    def status(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"


@dataclass(frozen=True)
class ManifestDiff:
    dependencies: dict[str, list[Change]]  # by kind, only kinds with changes
    scripts: list[Change]
    bin: list[Change]
    engines: list[Change]
    exports: list[Change]
    install_scripts: list[Change]  # every install-time script of the new version, changed or not

    @property
    def empty(self) -> bool:
        return not (self.dependencies or self.scripts or self.bin or self.engines or self.exports)


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added, removed, changed
    old_size: int | None
    new_size: int | None
    kind: str  # text, binary, minified, large (of the new file, or the old one when removed)
    diff: tuple[str, ...] | None = None  # unified diff lines, for text files
    truncated: bool = False
    withheld: bool = False  # a text diff not shown because the page's diff lines ran out


@dataclass(frozen=True)
class Warning:
    code: str  # install-script, new-dependency, size-jump, new-binary, secret, new-bin, shrinkwrap,
    # hidden-characters, unreadable
    message: str


@dataclass(frozen=True)
class ReviewDiff:
    manifest: ManifestDiff
    files: list[FileChange]
    warnings: list[Warning]
    old_unpacked: int | None
    new_unpacked: int
    unchanged_files: int
    problems: tuple[str, ...] = field(default=())


def compare(old: Snapshot | None, new: Snapshot, limits: Limits = Limits()) -> ReviewDiff:
    """The changes from `old` (None: nothing published to compare with) to `new`."""
    manifest = manifest_diff(installed_manifest(old) if old else {}, installed_manifest(new))
    files, unchanged = _file_changes(old.files if old else {}, new.files, limits)
    problems = tuple(f"this version: {p}" for p in new.problems) + \
        (tuple(f"the version compared with: {p}" for p in old.problems) if old else ())
    return ReviewDiff(manifest, files, _warnings(manifest, files, old, new), old.unpacked if old else None,
                      new.unpacked, unchanged, problems)


def installed_manifest(snap: Snapshot) -> dict:
    """The tarball's package.json with the scripts and commands npm derives from its files: an
    `install` script `node-gyp rebuild` for a gyp file (npm runs it at install, and a gyp file's
    actions run commands), `start` for a server.js, and the commands of `directories.bin`."""
    raw = snap.manifest or {}
    try:
        view = npm_publish_view(raw, frozenset(snap.files))
    except RecursionError:  # nested past what the walk takes: the publish check refused such a manifest
        return raw
    scripts = raw.get("scripts") if isinstance(raw.get("scripts"), dict) else {}
    made = view.get("scripts") if isinstance(view.get("scripts"), dict) else {}
    derived = {k: v for k, v in made.items() if k not in scripts}
    out = {**raw, "scripts": {**scripts, **derived}} if derived else dict(raw)
    if not raw.get("bin") and view.get("bin"):
        out["bin"] = view["bin"]
    return out


def manifest_diff(old: dict | None, new: dict | None) -> ManifestDiff:
    old, new = old or {}, new or {}
    dependencies = {}
    for kind in DEPENDENCY_KINDS:
        changes = _changes(_dependency_map(old, kind), _dependency_map(new, kind))
        if changes:
            dependencies[kind] = changes
    old_scripts, new_scripts = _string_map(old.get("scripts")), _string_map(new.get("scripts"))
    scripts = [Change(c.key, c.old, c.new, c.key in INSTALL_SCRIPTS) for c in _changes(old_scripts, new_scripts)]
    installing = [Change(k, old_scripts.get(k), new_scripts[k], True) for k in INSTALL_SCRIPTS if k in new_scripts]
    return ManifestDiff(dependencies, scripts, _changes(_bin_map(old), _bin_map(new)),
                        _changes(_string_map(old.get("engines")), _string_map(new.get("engines"))),
                        _changes(_flat(old.get("exports"), "."), _flat(new.get("exports"), ".")), installing)


def _changes(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    return [Change(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _string_map(value: Any) -> dict[str, str]:
    return {str(k): _text(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _dependency_map(manifest: dict, kind: str) -> dict[str, str]:
    value = manifest.get(kind)
    if kind == "bundleDependencies" and value is None:
        value = manifest.get("bundledDependencies")
    if isinstance(value, list):  # bundleDependencies: names only
        return {_text(v): "bundled" for v in value}
    if value is True:
        return {"(all dependencies)": "bundled"}
    return _string_map(value)


def _bin_map(manifest: dict) -> dict[str, str]:
    value = manifest.get("bin")
    if isinstance(value, str):  # "bin": "cli.js" installs a command named like the package
        name = str(manifest.get("name", "")).split("/")[-1]
        return {name: value}
    return _string_map(value)


def _flat(value: Any, prefix: str) -> dict[str, str]:
    """`exports` flattened to "./sub > import" keys, so that a changed leaf shows as one line."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for k, v in value.items():
            key = str(k) if prefix == "." and str(k).startswith(".") else f"{prefix} > {k}"
            out.update(_flat(v, key))
        return out
    return {} if value is None and prefix == "." else {prefix: _text(value)}


def _file_changes(old: dict[str, FileEntry], new: dict[str, FileEntry], limits: Limits) -> tuple[list[FileChange], int]:
    changes, unchanged, budget = [], 0, _PageBudget(limits)
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        cap = budget.cap()
        if before is None:
            change = FileChange(path, "added", None, after.size, after.kind, *_added_text(after, cap))
        elif after is None:
            changes.append(FileChange(path, "removed", before.size, None, before.kind))
            continue
        elif before.digest == after.digest:
            unchanged += 1
            continue
        else:
            kind = _changed_kind(before, after, limits)
            shown = budget.timed(_text_diff, path, before, after, cap) if kind == "text" else (None, False)
            change = FileChange(path, "changed", before.size, after.size, kind, *shown)
        if change.kind == "text" and change.diff is None and cap <= 0:
            change = replace(change, withheld=True)
        changes.append(budget.take(change))
    return changes, unchanged


@dataclass
class _PageBudget:
    """What one page may still show and spend: diff lines, diff characters, seconds in difflib. Once one
    runs out, later text files are listed without their diff ("withheld")."""

    limits: Limits
    lines: int = 0
    chars: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.lines, self.chars, self.seconds = self.limits.page_diff_lines, self.limits.page_diff_chars, \
            self.limits.diff_seconds

    def cap(self) -> int:
        """The lines the next file's diff may have: 0 once the page's lines, characters or time ran out."""
        return 0 if self.chars <= 0 or self.seconds <= 0 else min(self.limits.diff_lines, self.lines)

    def timed(self, diff, *args):
        started = time.monotonic()
        try:
            return diff(*args)
        finally:
            self.seconds -= time.monotonic() - started

    def take(self, change: FileChange) -> FileChange:
        """The change with its diff cut to the characters left, counted against the page."""
        if change.diff is None:
            return change
        kept, used = [], 0
        for line in change.diff:
            if used + len(line) > self.chars:
                break
            kept.append(line)
            used += len(line)
        self.lines, self.chars = self.lines - len(kept), self.chars - used
        if len(kept) == len(change.diff):
            return change
        return replace(change, diff=tuple(kept) or None, truncated=bool(kept), withheld=not kept)


def _changed_kind(before: FileEntry, after: FileEntry, limits: Limits) -> str:
    if before.text is not None and after.text is not None:
        return "text" if max(_lines(before), _lines(after)) <= limits.compared_lines else "large"
    return after.kind if after.kind != "text" else before.kind


def _lines(entry: FileEntry) -> int:
    return (entry.text or "").count("\n") + 1


def _added_text(entry: FileEntry, cap: int) -> tuple[tuple[str, ...] | None, bool]:
    if entry.text is None or cap <= 0:
        return None, False
    lines = entry.text.splitlines()
    return tuple("+" + line for line in lines[:cap]), len(lines) > cap


def _text_diff(path: str, before: FileEntry, after: FileEntry, cap: int) -> tuple[tuple[str, ...] | None, bool]:
    if before.text is None or after.text is None or cap <= 0:
        return None, False
    lines = []
    for line in difflib.unified_diff(before.text.splitlines(), after.text.splitlines(), f"a/{path}", f"b/{path}",
                                     lineterm="", n=3):
        if len(lines) >= cap:
            return tuple(lines), True
        lines.append(line)
    return tuple(lines), False


SIZE_JUMP_RATIO = 2.0
SIZE_JUMP_MIN = 100 * KIB


def _warnings(manifest: ManifestDiff, files: list[FileChange], old: Snapshot | None, new: Snapshot) -> list[Warning]:
    found = []
    for script in manifest.install_scripts:
        if script.old is None:
            found.append(Warning("install-script", f"new install-time script `{script.key}`: {script.new}"))
        elif script.old != script.new:
            found.append(Warning("install-script", f"changed install-time script `{script.key}`: {script.new}"))
    for kind, changes in manifest.dependencies.items():
        if kind in INSTALLED_DEPENDENCY_KINDS:
            for change in changes:
                if change.status == "added":
                    found.append(Warning("new-dependency", f"new dependency {change.key} {change.new} ({kind})"))
    for change in manifest.bin:
        if change.status != "removed":
            found.append(Warning("new-bin", f"{change.status} command `{change.key}` -> {change.new}"))
    if old is not None and new.unpacked - old.unpacked >= SIZE_JUMP_MIN and \
            new.unpacked >= SIZE_JUMP_RATIO * max(old.unpacked, 1):
        found.append(Warning("size-jump", f"unpacked size grew from {human_size(old.unpacked)} to "
                                          f"{human_size(new.unpacked)}"))
    for change in files:
        if change.path == "npm-shrinkwrap.json" and change.status != "removed":
            found.append(Warning("shrinkwrap", f"{change.status} npm-shrinkwrap.json: npm installs the exact "
                                               "dependency tree it names, from the URLs it names"))
        if change.status != "removed" and change.kind == "binary":
            found.append(Warning("new-binary", f"{change.status} binary file {change.path} "
                                               f"({human_size(change.new_size or 0)})"))
    hidden = [c.path for c in files if c.status != "removed" and _hides_characters(c.path, new.files[c.path])]
    hidden += [f"package.json {k}" for k, v in _manifest_texts(manifest) if HIDDEN_CHARACTERS.search(v)]
    if hidden:
        found.append(Warning("hidden-characters", "bidirectional controls or invisible characters in "
                                                  f"{', '.join(hidden)}: the text may read differently from how "
                                                  "it runs (marked U+…)"))
    for entry in new.files.values():
        if entry.secret:
            found.append(Warning("secret", f"{entry.path} looks like a secret: {entry.secret}"))
    if new.problems:
        found.append(Warning("unreadable", f"{len(new.problems)} entries of this version could not be compared "
                                           "(see the list below)"))
    return found


def _hides_characters(path: str, entry: FileEntry) -> bool:
    text = (entry.text or "").removeprefix("\ufeff")  # a byte order mark opening a file is only that
    return bool(HIDDEN_CHARACTERS.search(path) or HIDDEN_CHARACTERS.search(text))


def _manifest_texts(manifest: ManifestDiff):
    """(name, text) of every new value the manifest diff shows."""
    changes = [c for kind in manifest.dependencies.values() for c in kind]
    for change in [*changes, *manifest.scripts, *manifest.bin, *manifest.engines, *manifest.exports]:
        if change.new is not None:
            yield change.key, change.key + change.new


def human_size(size: int) -> str:
    if size < KIB:
        return f"{size} B"
    if size < MIB:
        return f"{size / KIB:.1f} KiB"
    return f"{size / MIB:.1f} MiB"
