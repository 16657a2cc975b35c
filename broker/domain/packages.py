"""Rules for a package's settings and dist-tags that do not depend on HTTP or SQL."""

from __future__ import annotations

import semver

from .versions import highest

ACCESS_LEVELS = ("public", "restricted")


def initial_access(requested: str | None, scoped: bool) -> str:
    """The access of a new package: as on the public registry, scoped packages are restricted unless
    published with --access public."""
    if requested:
        return requested
    return "restricted" if scoped else "public"


def next_latest(published: list[str]) -> str | None:
    """What `latest` points at once its version is gone: the highest stable version, or the highest
    prerelease when only prereleases remain; None when nothing is published."""
    stable = [v for v in published if not semver.Version.parse(v).prerelease]
    return highest(stable or published)


def access_change(current: str, requested: str | None) -> str | None:
    """The access a publish document asks to move the package to, or None when it asks no change."""
    if requested is None or requested == current:
        return None
    return requested
