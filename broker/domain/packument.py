"""Packuments: the full document `npm view` reads and the abbreviated one installers read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

ABBREVIATED_TYPE = "application/vnd.npm.install-v1+json"

# The keys of a version that installers need (npm's "corgi" document).
_ABBREVIATED_KEYS = ("name", "version", "deprecated", "dependencies", "optionalDependencies",
                     "devDependencies", "bundleDependencies", "bundledDependencies", "peerDependencies",
                     "peerDependenciesMeta", "bin", "directories", "dist", "engines", "os", "cpu",
                     "libc", "funding", "license", "_hasShrinkwrap", "hasInstallScript", "acceptDependencies")


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PublishedVersion:
    version: str
    manifest: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class PackageView:
    name: str
    rev: int
    readme: str
    created_at: float
    modified_at: float
    versions: list[PublishedVersion]
    tags: dict[str, str]
    maintainers: list[dict[str, str]]


class Signer(Protocol):
    def signatures(self, name: str, version: str, integrity: str) -> list[dict[str, str]]: ...


def _served(manifest: dict[str, Any], name: str, version: str, url: str, signer: Signer | None) -> dict[str, Any]:
    """The version with its tarball URL and the registry's signatures (never ones a publisher sent)."""
    dist = {k: v for k, v in manifest.get("dist", {}).items() if k != "signatures"}
    dist["tarball"] = url
    if signer is not None and dist.get("integrity"):
        dist["signatures"] = signer.signatures(name, version, dist["integrity"])
    return {**manifest, "dist": dist}


def full_packument(view: PackageView, tarball_url: Callable[[str], str], signer: Signer | None = None) -> dict[str, Any]:
    versions = {v.version: _served(v.manifest, view.name, v.version, tarball_url(v.version), signer)
                for v in view.versions}
    time = {"created": iso(view.created_at), "modified": iso(view.modified_at)}
    time.update({v.version: iso(v.created_at) for v in view.versions})
    latest = versions.get(view.tags.get("latest", ""), {})
    return {
        "_id": view.name, "_rev": f"{view.rev}-{view.rev:016x}", "name": view.name,
        "description": latest.get("description", ""), "dist-tags": view.tags, "versions": versions,
        "time": time, "maintainers": view.maintainers, "readme": view.readme,
        **{k: latest[k] for k in ("license", "homepage", "repository", "keywords", "author", "bugs") if k in latest},
    }


def abbreviated_packument(view: PackageView, tarball_url: Callable[[str], str],
                          signer: Signer | None = None) -> dict[str, Any]:
    versions = {}
    for v in view.versions:
        slim = {k: v.manifest[k] for k in _ABBREVIATED_KEYS if k in v.manifest}
        versions[v.version] = _served(slim, view.name, v.version, tarball_url(v.version), signer)
    return {"name": view.name, "modified": iso(view.modified_at), "dist-tags": view.tags, "versions": versions}


def wants_abbreviated(accept: str | None) -> bool:
    """True when the client ranks the abbreviated document at least as high as full JSON."""
    if not accept or ABBREVIATED_TYPE not in accept:
        return False
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        weights[media] = q
    return weights.get(ABBREVIATED_TYPE, 0.0) >= weights.get("application/json", 0.0)
