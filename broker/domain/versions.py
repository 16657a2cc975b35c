"""Semantic versions as the registry accepts them: strict semver 2.0, ordered by precedence."""

from __future__ import annotations

import re

import semver

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidVersion(ValueError):
    pass


def parse_version(raw: object) -> semver.Version:
    if not isinstance(raw, str) or len(raw) > 256:
        raise InvalidVersion("version must be a string of at most 256 characters")
    try:
        return semver.Version.parse(raw)
    except ValueError:
        raise InvalidVersion(f'"{raw}" is not a valid semver version (like 1.2.3 or 1.2.3-beta.1)') from None


def highest(versions: list[str]) -> str | None:
    """The highest version by semver precedence; None for an empty list."""
    parsed = [semver.Version.parse(v) for v in versions]
    return str(max(parsed)) if parsed else None


def is_valid_tag(tag: object) -> bool:
    """A dist-tag: a short name that cannot be confused with a version or a range."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        return False
    if semver.Version.is_valid(tag) or re.match(r"^v?\d", tag):
        return False
    return True
