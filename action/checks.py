"""Checks before anything is uploaded, worded as npm words them."""

from __future__ import annotations

import semver

from .errors import ActionError


class CheckFailed(ActionError):
    title = "Not publishable"


def resolved_tag(manifest: dict, tag_input: str | None) -> tuple[str, bool]:
    """The dist-tag to use, and whether it is only the default ("latest")."""
    if tag_input:
        return tag_input, False
    config_tag = (manifest.get("publishConfig") or {}).get("tag") if isinstance(manifest.get("publishConfig"), dict) else None
    if isinstance(config_tag, str) and config_tag:
        return config_tag, False
    return "latest", True


def check_local(manifest: dict, tag_is_default: bool) -> None:
    if manifest.get("private") is True:
        raise CheckFailed("This package has been marked as private\n"
                          "Remove the 'private' field from the package.json to publish it.")
    try:
        version = semver.Version.parse(manifest["version"])
    except ValueError:
        raise CheckFailed(f"Invalid version: {manifest['version']!r} is not a semver version") from None
    if version.prerelease and tag_is_default:
        raise CheckFailed("You must specify a tag using --tag when publishing a prerelease version. "
                          "(Set the action's `tag` input.)")


def check_against_registry(manifest: dict, tag_is_default: bool, packument: dict | None) -> None:
    if not packument:
        return
    versions = [v for v in (packument.get("versions") or {}) if semver.Version.is_valid(v)]
    version = manifest["version"]
    if version in versions:
        raise CheckFailed(f"You cannot publish over the previously published versions: {version}.")
    highest = max(versions, key=semver.Version.parse) if versions else None
    if highest and tag_is_default and semver.Version.parse(highest) >= semver.Version.parse(version):
        raise CheckFailed(f'Cannot implicitly apply the "latest" tag because previously published version '
                          f"{highest} is higher than the new version {version}. You must specify a tag using "
                          "--tag. (Set the action's `tag` input.)")
