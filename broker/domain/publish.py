"""The document `npm publish` PUTs (and `npm stage publish` POSTs), checked into a typed request.

The version document is stored and served as sent, so it is only accepted when it tells the same
story as the tarball's own package.json on every field that changes what an install does
(broker/domain/manifest.py says which fields, how npm's normalizations are allowed for, and why a
disagreeing document is refused rather than rewritten from the tarball).
"""

from __future__ import annotations

import binascii
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pybase64
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .manifest import disagreement, registry_fields
from .names import InvalidName, PackageName, parse_package_name
from .tarball import Digests, InvalidTarball, PackageContents, digests, integrity_matches, read_package
from .validation import describe
from .versions import InvalidVersion, is_valid_tag, parse_version


class InvalidDocument(ValueError):
    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # None: the caller's default for a bad request


class LongString(ABC):
    """A string too long to hold in memory (a large upload's base64 text), read in slices: the HTTP
    layer keeps it in a file (api/spill.py)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def ascii_chunks(self, size: int) -> Iterator[bytes]:
        """The text, `size` bytes at a time (the last slice may be shorter)."""


@dataclass(frozen=True)
class _Attachment:
    """Checked by hand, not by pydantic: its base64 text can be 130 MB and must not be copied."""

    data: str | LongString
    length: int | None


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str
    versions: dict[str, dict[str, Any]]
    dist_tags: dict[str, str] = Field(default_factory=dict, alias="dist-tags")
    access: str | None = None


def _attachments_of(raw: Any) -> dict[str, _Attachment]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidDocument("the publish document has no _attachments: nothing to publish")
    found = {}
    for name, item in raw.items():
        if not isinstance(item, dict) or not isinstance(item.get("data"), (str, LongString)):
            raise InvalidDocument(f"invalid publish document: _attachments.{name}.data must be a string")
        length = item.get("length")
        if length is not None and (not isinstance(length, int) or isinstance(length, bool)):
            raise InvalidDocument(f"invalid publish document: _attachments.{name}.length must be an integer")
        found[name] = _Attachment(item["data"], length)
    return found


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
    return describe(error, "publish document")


def parse_publish_document(raw: Any, url_name: str, max_tarball_bytes: int) -> PublishRequest:
    """The checked request. Takes `_attachments` out of `raw` once decoded (memory, for big uploads)."""
    if not isinstance(raw, dict):
        raise InvalidDocument("the publish document must be a JSON object")
    attachments = _attachments_of(raw.get("_attachments"))
    try:
        doc = _Document.model_validate({k: v for k, v in raw.items() if k != "_attachments"})
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
    tarball, extra = _decoded(attachments, max_tarball_bytes)
    raw.pop("_attachments", None)  # the base64 text is decoded: let a large upload's copy go early
    attachments.clear()
    found = digests(tarball)
    _check_dist(manifest, found)
    contents = _agreeing_contents(tarball, manifest, version)
    return PublishRequest(
        package=package, version=version, tag=tag, manifest=_stored_manifest(manifest, found, contents),
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


_CHUNK = 4 * 1024 * 1024  # characters of base64 decoded at a time (a multiple of 4)


def _slices(text: str | LongString) -> Iterator[bytes]:
    if isinstance(text, LongString):
        yield from text.ascii_chunks(_CHUNK)
        return
    for start in range(0, len(text), _CHUNK):
        yield text[start:start + _CHUNK].encode("ascii")


def _decode(name: str, attachment: _Attachment) -> bytes:
    """Strict base64 decoding in slices: never a second full-size copy of the text or of the bytes in
    memory (BytesIO grows its one buffer in place and hands that buffer out)."""
    out = io.BytesIO()
    try:
        for piece in _slices(attachment.data):
            out.write(pybase64.b64decode(piece, validate=True))  # strict, as binascii's strict_mode, SIMD
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InvalidDocument(f"attachment {name!r} is not valid base64") from None
    data = out.getvalue()
    del out
    if attachment.length is not None and attachment.length != len(data):
        raise InvalidDocument(f"attachment {name!r} says length {attachment.length} but holds {len(data)} bytes")
    return data


def _decoded(attachments: dict[str, _Attachment], limit: int) -> tuple[bytes, dict[str, bytes]]:
    tgz = [n for n in attachments if n.endswith(".tgz")]
    if len(tgz) != 1:
        raise InvalidDocument("a publish carries exactly one .tgz attachment")
    others = {n: a for n, a in attachments.items() if n not in tgz}
    if any(not n.endswith(".sigstore") for n in others) or len(others) > 1:
        raise InvalidDocument("only the tarball and one provenance (.sigstore) attachment are accepted")
    if len(attachments[tgz[0]].data) > limit * 4 // 3 + 4:
        raise InvalidDocument(f"the tarball is larger than this registry accepts (at most {limit} bytes)")
    tarball = _decode(tgz[0], attachments[tgz[0]])
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


def _agreeing_contents(tarball: bytes, manifest: dict[str, Any], version: str) -> PackageContents:
    """The tarball's contents, once its package.json agrees with the document on every install field."""
    try:
        contents = read_package(tarball)
        mismatch = disagreement(manifest, contents)
    except InvalidTarball as exc:
        raise InvalidDocument(str(exc)) from None
    except RecursionError:
        raise InvalidDocument(f"versions[{version!r}] is nested too deeply to compare with the tarball") from None
    if mismatch is not None:
        raise InvalidDocument(mismatch.sentence(version), code="manifest.mismatch")
    return contents


def _stored_manifest(manifest: dict[str, Any], found: Digests, contents: PackageContents) -> dict[str, Any]:
    dropped = ("readme", "readmeFilename", "_attachments", "hasInstallScript", "_hasShrinkwrap")
    stored = {k: v for k, v in manifest.items() if k not in dropped}
    stored.update(registry_fields(stored, contents.files))
    dist = {k: v for k, v in manifest["dist"].items() if k in ("fileCount", "unpackedSize", "signatures", "attestations")}
    dist.update(integrity=found.integrity, shasum=found.shasum)
    stored["dist"] = dist
    return stored
