"""npm package names (the rules of validate-npm-package-name for new packages)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

_SCOPED = re.compile(r"^@([^/]+)/([^/]+)$")
_URL_SAFE = re.compile(r"^[A-Za-z0-9\-._~!'()*]+$")
_EXCLUDED = {"node_modules", "favicon.ico"}
MAX_LENGTH = 214


class InvalidName(ValueError):
    pass


@dataclass(frozen=True)
class PackageName:
    name: str

    @property
    def scope(self) -> str | None:
        return self.name.split("/")[0] if self.name.startswith("@") else None

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def escaped(self) -> str:
        """As the CLI puts it in a URL: @scope%2fname."""
        return self.name.replace("/", "%2f") if self.scope else quote(self.name, safe="")

    def tarball_filename(self, version: str) -> str:
        return f"{self.basename}-{version}.tgz"

    def tarball_path(self, version: str) -> str:
        return f"{self.name}/-/{self.tarball_filename(version)}"

    def __str__(self) -> str:
        return self.name


def _check_part(part: str, what: str) -> None:
    if not part:
        raise InvalidName(f"{what} cannot be empty")
    if part.startswith("."):
        raise InvalidName(f"{what} cannot start with a period")
    if part.startswith("_"):
        raise InvalidName(f"{what} cannot start with an underscore")
    if part.startswith("-") and what == "name":
        raise InvalidName("name cannot start with a hyphen")
    if not _URL_SAFE.match(part):
        raise InvalidName(f"{what} can only contain URL-friendly characters")
    if re.search(r"[~'!()*]", part) and what == "name":
        raise InvalidName('name can no longer contain special characters ("~\'!()*")')


def parse_package_name(raw: object) -> PackageName:
    """A valid name for a new package, or InvalidName saying what is wrong with it."""
    if not isinstance(raw, str):
        raise InvalidName("name must be a string")
    if not raw:
        raise InvalidName("name length must be greater than zero")
    if raw.strip() != raw:
        raise InvalidName("name cannot contain leading or trailing spaces")
    if len(raw) > MAX_LENGTH:
        raise InvalidName(f"name can no longer contain more than {MAX_LENGTH} characters")
    if raw.lower() != raw:
        raise InvalidName("name can no longer contain capital letters")
    if raw.lower() in _EXCLUDED:
        raise InvalidName(f"{raw} is not a valid package name")
    match = _SCOPED.match(raw)
    if match:
        _check_part(match.group(1), "scope")
        _check_part(match.group(2), "name")
    elif raw.startswith("@") or "/" in raw:
        raise InvalidName("a scoped name must look like @scope/name")
    else:
        _check_part(raw, "name")
    return PackageName(raw)


_SCOPE_WILDCARD = re.compile(r"^(@[^/]+)/\*$")


def parse_scope_wildcard(raw: object) -> str | None:
    """`@scope` for the scope-wide name `@scope/*` (a valid scope), else None."""
    match = _SCOPE_WILDCARD.match(raw) if isinstance(raw, str) else None
    if match is None or len(raw) > MAX_LENGTH or raw.lower() != raw:
        return None
    try:
        _check_part(match.group(1)[1:], "scope")
    except InvalidName:
        return None
    return match.group(1)
