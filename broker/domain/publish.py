"""The document `npm publish` PUTs (and `npm stage publish` POSTs), checked into a typed request."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .names import InvalidName, PackageName, parse_package_name
from .tarball import Digests, InvalidTarball, digests, integrity_matches, read_manifest
from .versions import InvalidVersion, is_valid_tag, parse_version


class InvalidDocument(ValueError):
    pass


class _Attachment(BaseModel):
    model_config = ConfigDict(extra="allow")
    content_type: str | None = None
    data: str
    length: int | None = None


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str
    versions: dict[str, dict[str, Any]]
    dist_tags: dict[str, str] = Field(default_factory=dict, alias="dist-tags")
    attachments: dict[str, _Attachment] = Field(alias="_attachments")
    access: str | None = None


@dataclass(frozen=True)
class PublishRequest:
    package: PackageName
    version: str
    tag: str
    manifest: dict[str, Any]  # as stored: dist rewritten, readme split off
    readme: str
    tarball: bytes
    digests: Digests
    access: str | None
    extra_attachments: dict[str, bytes]  # e.g. a provenance bundle


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    return f"invalid publish document: {where}: {first['msg']}"


def parse_publish_document(raw: Any, url_name: str, max_tarball_bytes: int) -> PublishRequest:
    if not isinstance(raw, dict):
        raise InvalidDocument("the publish document must be a JSON object")
    if not raw.get("_attachments"):
        raise InvalidDocument("the publish document has no _attachments: nothing to publish")
    try:
        doc = _Document.model_validate(raw)
    except ValidationError as exc:
        raise InvalidDocument(_describe(exc)) from None
    try:
        package = parse_package_name(doc.name)
    except InvalidName as exc:
        raise InvalidDocument(f"invalid package name {doc.name!r}: {exc}") from None
    if package.name != url_name:
        raise InvalidDocument(f"the document names {doc.name!r} but was sent to {url_name!r}")
    version, manifest = _single_version(doc, package)
    tag = _single_tag(doc, version)
    if doc.access not in (None, "public", "restricted"):
        raise InvalidDocument('access must be "public" or "restricted"')
    if doc.access == "restricted" and package.scope is None:
        raise InvalidDocument("unscoped packages cannot be restricted; only scoped packages can be private")
    tarball, extra = _attachments(doc, package, version, max_tarball_bytes)
    found = digests(tarball)
    _check_dist(manifest, found)
    _check_tarball_manifest(tarball, package, version)
    return PublishRequest(
        package=package, version=version, tag=tag, manifest=_stored_manifest(manifest, found),
        readme=manifest.get("readme") if isinstance(manifest.get("readme"), str) else "",
        tarball=tarball, digests=found, access=doc.access, extra_attachments=extra,
    )


def _single_version(doc: _Document, package: PackageName) -> tuple[str, dict[str, Any]]:
    if len(doc.versions) != 1:
        raise InvalidDocument(f"a publish carries exactly one version; this one has {len(doc.versions)}")
    (version, manifest), = doc.versions.items()
    try:
        parse_version(version)
    except InvalidVersion as exc:
        raise InvalidDocument(str(exc)) from None
    if manifest.get("name") != package.name or manifest.get("version") != version:
        raise InvalidDocument(f"versions[{version!r}] must have name {package.name!r} and version {version!r}")
    if manifest.get("private") is True:
        raise InvalidDocument(f"{package.name} is marked \"private\": true in package.json; "
                              "remove that field to publish it")
    return version, manifest


def _single_tag(doc: _Document, version: str) -> str:
    if not doc.dist_tags:
        return "latest"
    if len(doc.dist_tags) != 1:
        raise InvalidDocument("a publish sets exactly one dist-tag")
    (tag, target), = doc.dist_tags.items()
    if not is_valid_tag(tag):
        raise InvalidDocument(f"invalid dist-tag {tag!r}: a tag is a short name that is not a version")
    if target != version:
        raise InvalidDocument(f"dist-tags.{tag} points at {target!r}, not at the published version {version!r}")
    return tag


def _decode(name: str, attachment: _Attachment) -> bytes:
    try:
        data = base64.b64decode(attachment.data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDocument(f"attachment {name!r} is not valid base64") from None
    if attachment.length is not None and attachment.length != len(data):
        raise InvalidDocument(f"attachment {name!r} says length {attachment.length} but holds {len(data)} bytes")
    return data


def _attachments(doc: _Document, package: PackageName, version: str, limit: int) -> tuple[bytes, dict[str, bytes]]:
    tgz = [n for n in doc.attachments if n.endswith(".tgz")]
    if len(tgz) != 1:
        raise InvalidDocument("a publish carries exactly one .tgz attachment")
    others = {n: a for n, a in doc.attachments.items() if n not in tgz}
    if any(not n.endswith(".sigstore") for n in others) or len(others) > 1:
        raise InvalidDocument("only the tarball and one provenance (.sigstore) attachment are accepted")
    tarball = _decode(tgz[0], doc.attachments[tgz[0]])
    if len(tarball) > limit:
        raise InvalidDocument(f"the tarball is {len(tarball)} bytes; this registry accepts at most {limit}")
    if not tarball:
        raise InvalidDocument("the tarball attachment is empty")
    return tarball, {n: _decode(n, a) for n, a in others.items()}


def _check_dist(manifest: dict[str, Any], found: Digests) -> None:
    dist = manifest.get("dist")
    if not isinstance(dist, dict):
        raise InvalidDocument("the version has no dist object with integrity and shasum")
    integrity, shasum = dist.get("integrity"), dist.get("shasum")
    if integrity is None and shasum is None:
        raise InvalidDocument("dist must carry integrity or shasum of the tarball")
    if integrity is not None and (not isinstance(integrity, str) or not integrity_matches(integrity, found)):
        raise InvalidDocument("dist.integrity does not match the attached tarball: it was corrupted "
                              "or altered in transit; pack and publish again")
    if shasum is not None and shasum != found.shasum:
        raise InvalidDocument("dist.shasum does not match the attached tarball: it was corrupted "
                              "or altered in transit; pack and publish again")


def _check_tarball_manifest(tarball: bytes, package: PackageName, version: str) -> None:
    try:
        inner = read_manifest(tarball)
    except InvalidTarball as exc:
        raise InvalidDocument(str(exc)) from None
    if inner.get("name") != package.name or inner.get("version") != version:
        raise InvalidDocument(
            f"the tarball's package.json is {inner.get('name')!r}@{inner.get('version')!r}, "
            f"but the document publishes {package.name}@{version}")


def _stored_manifest(manifest: dict[str, Any], found: Digests) -> dict[str, Any]:
    stored = {k: v for k, v in manifest.items() if k not in ("readme", "readmeFilename", "_attachments")}
    dist = {k: v for k, v in manifest["dist"].items() if k in ("fileCount", "unpackedSize", "signatures", "attestations")}
    dist.update(integrity=found.integrity, shasum=found.shasum)
    stored["dist"] = dist
    return stored
