"""Packing a package directory exactly as `npm pack` would: its files, order, headers, digests."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .collate import listing_order, packlist_order
from .errors import ActionError
from .packlist import packlist
from .tarball import build, entries

LIFECYCLE_SCRIPTS = ("prepublish", "prepare", "prepublishOnly", "prepack", "postpack")


class PackError(ActionError):
    title = "Cannot pack"


@dataclass(frozen=True)
class PackedFile:
    path: str
    size: int
    mode: int


@dataclass(frozen=True)
class Packed:
    manifest: dict
    files: list[PackedFile]  # in the order `npm pack --dry-run` lists them
    tarball: bytes
    readme: str

    @property
    def integrity(self) -> str:
        return "sha512-" + base64.b64encode(hashlib.sha512(self.tarball).digest()).decode()

    @property
    def shasum(self) -> str:
        return hashlib.sha1(self.tarball).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.manifest['name'].replace('@', '').replace('/', '-')}-{self.manifest['version']}.tgz"

    @property
    def unpacked_size(self) -> int:
        return sum(f.size for f in self.files)


def read_manifest(directory: Path) -> dict:
    try:
        manifest = json.loads((directory / "package.json").read_text())
    except FileNotFoundError:
        raise PackError(f"no package.json in {directory}: set the `path` input to the package directory") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackError(f"{directory}/package.json is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("name"), str) or \
            not isinstance(manifest.get("version"), str):
        raise PackError(f"{directory}/package.json needs a string name and version")
    return manifest


def lifecycle_scripts(manifest: dict) -> list[str]:
    scripts = manifest.get("scripts") if isinstance(manifest.get("scripts"), dict) else {}
    return [s for s in LIFECYCLE_SCRIPTS if s in scripts]


def _readme(directory: Path, files: list[str]) -> str:
    for name in files:
        if "/" not in name and name.lower().startswith("readme"):
            return (directory / name).read_text(errors="replace")
    return ""


def pack(directory: Path) -> Packed:
    directory = directory.resolve()
    manifest = read_manifest(directory)
    files = packlist(directory)
    ordered = packlist_order(files)
    items = entries(directory, ordered, manifest)
    tarball = build(directory, files, manifest, ordered)
    by_path = {rel: PackedFile(rel, len(data), mode) for rel, data, mode in items}
    return Packed(manifest=manifest, files=[by_path[p] for p in listing_order(files)], tarball=tarball,
                  readme=_readme(directory, files))


def from_tarball(path: Path) -> Packed:
    """A .tgz made earlier (by `npm pack`, say), uploaded byte for byte."""
    import io
    import tarfile

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackError(f"cannot read the tarball {path}: {exc.strerror}") from None
    files, manifest, readme = [], None, ""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
                files.append(PackedFile(rel, member.size, member.mode))
                if rel == "package.json":
                    manifest = json.loads(archive.extractfile(member).read())
                elif "/" not in rel and rel.lower().startswith("readme"):
                    readme = archive.extractfile(member).read().decode(errors="replace")
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise PackError(f"{path} is not a gzipped npm tarball: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("name"), str) or \
            not isinstance(manifest.get("version"), str):
        raise PackError(f"{path} has no package/package.json with a name and version")
    by_path = {f.path: f for f in files}
    return Packed(manifest=manifest, files=[by_path[p] for p in listing_order(list(by_path))], tarball=data,
                  readme=readme)
