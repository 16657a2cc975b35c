"""Package directories for tests to publish, and tarballs made the way `npm pack` makes them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path


def unique_name(prefix: str = "pkg", scope: str | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return f"@{scope}/{name}" if scope else name


def make_package(root: Path, name: str, version: str = "1.0.0", **fields) -> Path:
    directory = root / f"src-{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True)
    manifest = {"name": name, "version": version, "description": f"test package {name}", "license": "MIT",
                "repository": {"type": "git", "url": "git+https://github.com/example/demo.git"}, **fields}
    (directory / "package.json").write_text(json.dumps(manifest, indent=2))
    (directory / "index.js").write_text(f"module.exports = {json.dumps(name + '@' + version)}\n")
    (directory / "README.md").write_text(f"# {name}\n")
    return directory


def set_version(directory: Path, version: str) -> None:
    manifest = json.loads((directory / "package.json").read_text())
    manifest["version"] = version
    (directory / "package.json").write_text(json.dumps(manifest, indent=2))


def tarball(manifest: dict, files: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        entries = {"package/package.json": json.dumps(manifest).encode(), **(files or {})}
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish_document(name: str, version: str, data: bytes | None = None, tag: str = "latest",
                     manifest_extra: dict | None = None, access: str | None = None) -> dict:
    """The document libnpmpublish PUTs, built from a tarball (made here unless given)."""
    manifest = {"name": name, "version": version, **(manifest_extra or {})}
    data = tarball(manifest) if data is None else data
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    filename = f"{name}-{version}.tgz"
    return {
        "_id": name, "name": name, "dist-tags": {tag: version}, "access": access,
        "versions": {version: {**manifest, "_id": f"{name}@{version}",
                               "dist": {"integrity": integrity, "shasum": hashlib.sha1(data).hexdigest(),
                                        "tarball": f"http://x/{filename}"}}},
        "_attachments": {filename: {"content_type": "application/octet-stream",
                                    "data": base64.b64encode(data).decode(), "length": len(data)}},
    }
