"""Packages: packuments, publish, metadata updates (deprecate, owners, unpublish), tarballs."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from starlette.responses import Response

from ..domain.credentials import Action, Credential, MfaPolicy, second_factor
from ..domain.names import PackageName
from ..domain.packages import access_change, initial_access, next_latest
from ..domain.packument import (ABBREVIATED_TYPE, PackageView, PublishedVersion, abbreviated_packument,
                                full_packument)
from ..domain.publish import InvalidDocument, PublishRequest, parse_publish_document
from ..domain.trust import CREATE_PACKAGE
from ..errors import RegistryError, bad_request, conflict, forbidden, not_found
from ..services.versions import check_version_free, commit_version, delete_unused_blobs
from ..store import accounts, audit, registry
from .auth import TRUST_ONLY, credential, enforce, require_account, require_login, trust_token_for
from .bodies import body_as
from .context import Broker
from .http import Req, json_response, request_variant, same_for_everyone
from .lookup import owned_package, package_name, package_not_found, readable_package, writable_package

GZIP_FROM = 1024  # smaller documents are sent as they are


def package_view(b: Broker, name: str) -> PackageView | None:
    with b.db.read() as conn:
        pkg = registry.package(conn, name)
        if pkg is None:
            return None
        rows = registry.published_versions(conn, name)
        if not rows:
            return None
        return PackageView(name=name, rev=pkg.rev, readme=pkg.readme, created_at=pkg.created_at,
                           modified_at=pkg.modified_at,
                           versions=[PublishedVersion(r.version, r.manifest, r.created_at) for r in rows],
                           tags=registry.tags(conn, name), maintainers=registry.maintainers(conn, name))


def _serialized(b: Broker, name: PackageName, abbreviated: bool) -> tuple[int, bytes] | None:
    view = package_view(b, name.name)
    if view is None:
        return None
    url = lambda version: b.tarball_url(name.tarball_path(version))  # noqa: E731
    document = abbreviated_packument(view, url, b.keyring) if abbreviated else full_packument(view, url, b.keyring)
    return view.rev, json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def get_packument(b: Broker, req: Req) -> Response:
    name = package_name(req)
    pkg = readable_package(b, req, name)
    abbreviated, gzipped = request_variant(req.headers.get("accept"), req.headers.get("accept-encoding"))
    body = b.packuments.get_or_build(name.name, pkg.rev, "abbreviated" if abbreviated else "full",
                                     lambda: _serialized(b, name, abbreviated))
    if body is None:
        raise package_not_found(name)
    kind, media_type = ("abbreviated", ABBREVIATED_TYPE) if abbreviated else ("full", "application/json")
    headers = {"vary": "accept, accept-encoding"}
    if len(body) > GZIP_FROM and gzipped:
        body = b.packuments.gzipped(name.name, kind, body)
        headers["content-encoding"] = "gzip"
    if pkg.access == "public":
        same_for_everyone(req, abbreviated, gzipped)
    return Response(body, media_type=media_type, headers=headers)


def get_version(b: Broker, req: Req) -> Response:
    name = package_name(req)
    pkg = readable_package(b, req, name)
    body = b.packuments.get_or_build(name.name, pkg.rev, "full", lambda: _serialized(b, name, False))
    if body is None:
        raise package_not_found(name)
    packument = json.loads(body)
    wanted = packument["dist-tags"].get(req.params["version"], req.params["version"])
    document = packument["versions"].get(wanted)
    if document is None:
        raise not_found(f"version {req.params['version']} of {name} not found")
    return json_response(document)


def get_tarball(b: Broker, req: Req) -> Response:
    name = package_name(req)
    filename = req.params["file"]
    prefix = name.basename + "-"
    if not (filename.startswith(prefix) and filename.endswith(".tgz")):
        raise not_found(f"no tarball {filename} for {name}")
    with b.db.read() as conn:
        found = registry.published_tarball(conn, name.name, filename[len(prefix):-4])
    if found is None:
        raise not_found(f"no tarball {filename} for {name}")
    blob, access = found
    if access != "public":
        readable_package(b, req, name)
    data = b.blob_cache.get_or_load(blob, lambda: b.blobs.get(blob))
    if data is None:
        raise RegistryError(500, f"the tarball {filename} of {name} is missing from storage")
    if access == "public":
        same_for_everyone(req, *request_variant(req.headers.get("accept"), req.headers.get("accept-encoding")))
    return Response(data, media_type="application/octet-stream")


def put_package(b: Broker, req: Req) -> Response:
    """PUT /<pkg>: a publish when it carries attachments, otherwise a metadata update (deprecate)."""
    name = package_name(req)
    body = req.take_json()
    if isinstance(body, dict) and body.get("_attachments"):
        return publish(b, req, name, body)
    if trust_token_for(credential(b, req), name.name):
        raise forbidden(TRUST_ONLY, code="trust.route-denied")
    return update_metadata(b, req, name, body)


def publish(b: Broker, req: Req, name: PackageName, body: Any) -> Response:
    cred = require_login(b, req)
    if trust_token_for(cred, name.name):
        return _publish_as_trust(b, req, name, body, cred)
    cred, user = require_account(b, req)
    request = parse_document(b, name, body)
    if not cred.may_write(name.name):
        raise forbidden(f"this token cannot publish {name}: its packages, scopes or read-only permission exclude it")
    with b.db.read() as conn:
        pkg = registry.package(conn, name.name)
        if pkg is not None and not registry.is_owner(conn, name.name, user.id):
            raise _no_permission(name)
        check_version_free(conn, request)
    new_access = access_change(pkg.access, request.access) if pkg else None
    if new_access is not None:  # only a person with 2FA, from a session, with an OTP
        action, policy = Action.PACKAGE_ADMIN, MfaPolicy.NONE
    else:
        action, policy = Action.PUBLISH, MfaPolicy(pkg.mfa) if pkg else MfaPolicy.NONE
    how = enforce(b, user, second_factor(cred, user.tfa_mode, action, policy, name.name), req.otp)
    _commit_publish(b, request, cred, actor=user.name, new_owner=None if pkg else user.id, second_factor=how,
                    new_access=new_access)
    return json_response({"success": True})


def _publish_as_trust(b: Broker, req: Req, name: PackageName, body: Any, cred: Credential) -> Response:
    """A trust relationship is the package policy's exception: no OTP, but only with createPackage,
    and it changes nothing but versions (no access, owners or policy)."""
    if CREATE_PACKAGE not in cred.trust_permissions:
        raise forbidden("OIDC permission denied for this action: the trust relationship of "
                        f"{name} does not allow npm publish (--allow-publish); use `npm stage publish`",
                        code="trust.permission-denied")
    request = parse_document(b, name, body)
    with b.db.read() as conn:
        pkg = registry.package(conn, name.name)
        if pkg is None:
            raise package_not_found(name)
        check_version_free(conn, request)
    if access_change(pkg.access, request.access) is not None:
        raise _access_not_changed(name, pkg.access, request.access, code="trust.permission-denied")
    _commit_publish(b, request, cred, actor=cred.username or "trust", new_owner=None, second_factor=None)
    return json_response({"success": True})


def _access_not_changed(name: PackageName, current: str, requested: str | None,
                        code: str | None = None) -> RegistryError:
    return forbidden(f"this publish asks to make {name} {requested}, but it is {current}, and a token made for "
                     f"automation cannot change a package's access: an owner with 2FA runs `npm access set "
                     f"status={requested} {name}`, or publish without --access", code=code)


def parse_document(b: Broker, name: PackageName, body: Any) -> PublishRequest:
    try:
        return parse_publish_document(body, name.name, b.settings.max_tarball_bytes)
    except InvalidDocument as exc:
        raise bad_request(str(exc), code=exc.code) from None


def _no_permission(name: PackageName) -> RegistryError:
    return forbidden(f'You do not have permission to publish "{name}". Are you logged in as the correct user?')


def _commit_publish(b: Broker, request: PublishRequest, cred: Credential, *, actor: str, new_owner: int | None,
                    second_factor: str | None, new_access: str | None = None) -> None:
    name = request.package

    def create_package(conn: Connection) -> None:
        access = initial_access(request.access, scoped=bool(name.scope))
        if not registry.create_package(conn, name.name, new_owner, access) and \
                not registry.is_owner(conn, name.name, new_owner):
            raise _no_permission(name)

    def record(conn: Connection) -> None:
        registry.set_tag(conn, name.name, request.tag, request.version)
        changes: dict[str, Any] = {}
        if request.tag == "latest":
            changes["readme"] = request.readme
        if new_access is not None:
            changes["access"] = new_access
        registry.touch(conn, name.name, **changes)
        audit.record(conn, "package.published", actor=actor, package=name.name, version=request.version,
                     tag=request.tag, auth=cred.kind.value, token_id=cred.token_id, second_factor=second_factor,
                     integrity=request.digests.integrity, origin=cred.origin or None,
                     **({"access": new_access} if new_access else {}))

    commit_version(b, request, cred, "published", record, before=create_package if new_owner is not None else None)


class Maintainer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class VersionUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    deprecated: str | None = None  # "" or absent: not deprecated


class MetadataUpdate(BaseModel):
    """The couch-style document `npm owner`, `npm deprecate` and `npm unpublish <pkg>@<v>` send back."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    rev: str | None = Field(default=None, alias="_rev")
    maintainers: list[Maintainer] | None = Field(default=None, min_length=1)
    versions: dict[str, VersionUpdate] | None = None


def update_metadata(b: Broker, req: Req, name: PackageName, body: Any) -> Response:
    """A couch-style document update: deprecations, owners, or removing versions (unpublish)."""
    doc = body_as(MetadataUpdate, body, "package document")
    wanted = sorted({m.name for m in doc.maintainers}) if doc.maintainers is not None else None
    with b.db.read() as conn:
        owners_change = wanted is not None and wanted != [m["name"] for m in registry.maintainers(conn, name.name)]
    cred, user, pkg = writable_package(b, req, name, Action.PACKAGE_ADMIN if owners_change else Action.PACKAGE_WRITE)
    rev = doc.rev or req.params.get("rev")
    if rev is not None and rev.split("-")[0] != str(pkg.rev):
        raise conflict(f"{name} changed since you read it: run the command again")
    removed: list[str] = []
    with b.db.write() as conn:
        if wanted is not None:
            _set_owners(conn, name, wanted, allowed=owners_change)
        if doc.versions is not None:
            removed = _apply_versions(conn, name, doc.versions)
        registry.touch(conn, name.name)
        audit.record(conn, "package.updated", actor=user.name, package=name.name, auth=cred.kind.value,
                     unpublished=removed, owners_changed=owners_change)
    delete_unused_blobs(b, removed)
    return json_response({"ok": True})


def _set_owners(conn: Connection, name: PackageName, wanted: list[str], allowed: bool) -> None:
    """Make `wanted` the owners; `allowed` says whether the caller was cleared to change them."""
    if wanted == [m["name"] for m in registry.maintainers(conn, name.name)]:
        return
    if not allowed:  # they changed between our read and this write
        raise conflict(f"the owners of {name} changed meanwhile: run the command again")
    ids = []
    for owner in wanted:
        account = accounts.user_by_name(conn, owner)
        if account is None:
            raise not_found(f"no user named {owner}")
        ids.append(account.id)
    registry.set_owners(conn, name.name, sorted(set(ids)))


def _apply_versions(conn: Connection, name: PackageName, versions: dict[str, VersionUpdate]) -> list[str]:
    """Apply deprecation changes and unpublish the versions the document no longer lists."""
    current = {r.version: r for r in registry.published_versions(conn, name.name)}
    unknown = set(versions) - set(current)
    if unknown:
        raise bad_request(f"cannot add versions without publishing them: {', '.join(sorted(unknown))}")
    removed = sorted(set(current) - set(versions))
    for version, sent in versions.items():
        stored = current[version].manifest
        wanted = sent.deprecated or None
        if wanted != stored.get("deprecated"):
            updated = {k: v for k, v in stored.items() if k != "deprecated"}
            if wanted:
                updated["deprecated"] = wanted
            registry.set_manifest(conn, name.name, version, updated)
    for version in removed:
        _unpublish_version(conn, name, version)
    return [current[v].blob for v in removed if current[v].blob]


def _unpublish_version(conn: Connection, name: PackageName, version: str) -> None:
    registry.mark_unpublished(conn, name.name, version)
    registry.remove_tags_of_version(conn, name.name, version)
    if "latest" not in registry.tags(conn, name.name):
        top = next_latest([r.version for r in registry.published_versions(conn, name.name)])
        if top:
            registry.set_tag(conn, name.name, "latest", top)


def unpublish_all(b: Broker, req: Req) -> Response:
    """DELETE /<pkg>/-rev/<rev>: every version goes; the version numbers stay used forever."""
    name = package_name(req)
    cred, user, _ = writable_package(b, req, name, Action.PACKAGE_WRITE)
    with b.db.write() as conn:
        rows = registry.published_versions(conn, name.name)
        for row in rows:
            registry.mark_unpublished(conn, name.name, row.version)
            registry.remove_tags_of_version(conn, name.name, row.version)
        registry.touch(conn, name.name)
        audit.record(conn, "package.unpublished", actor=user.name, package=name.name, auth=cred.kind.value,
                     versions=[r.version for r in rows])
    delete_unused_blobs(b, [r.blob for r in rows if r.blob])
    return json_response({"ok": True})


def delete_tarball(b: Broker, req: Req) -> Response:
    """The last step of `npm unpublish pkg@version`: the blob went with the version already."""
    # No second OTP check: the CLI repeats the OTP it just used for the version removal.
    name = package_name(req)
    _, user = require_account(b, req)
    with b.db.read() as conn:
        owned_package(conn, name, user.id)
    return json_response({"ok": True})


def update_metadata_route(b: Broker, req: Req) -> Response:
    """PUT /<pkg>/-rev/<rev>: owners and unpublish of one version send the document here."""
    return update_metadata(b, req, package_name(req), req.json())
