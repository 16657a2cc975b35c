"""Packages: packuments, publish, metadata updates (deprecate, owners, unpublish), tarballs."""

from __future__ import annotations

import json
import logging
from typing import Any

import semver
from starlette.responses import Response

from ..domain.credentials import Action, Credential, MfaPolicy, second_factor
from ..domain.names import InvalidName, PackageName, parse_package_name
from ..domain.packument import (ABBREVIATED_TYPE, PackageView, PublishedVersion, abbreviated_packument,
                                full_packument, wants_abbreviated)
from ..domain.publish import InvalidDocument, PublishRequest, parse_publish_document
from ..domain.versions import highest
from ..errors import RegistryError, bad_request, conflict, forbidden, not_found
from ..store import accounts, audit, registry, staging
from ..store.accounts import User
from ..store.registry import Package
from ..domain.trust import CREATE_PACKAGE
from .auth import credential, enforce, require_account, require_login, trust_token_for
from .context import Broker
from .http import Req, accepts_gzip, json_response


log = logging.getLogger("stagegate")

GZIP_FROM = 1024  # smaller documents are sent as they are


def package_name(req: Req) -> PackageName:
    try:
        return parse_package_name(req.params["pkg"])
    except InvalidName as exc:
        raise bad_request(f"invalid package name {req.params['pkg']!r}: {exc}") from None


def _not_found(name: PackageName) -> RegistryError:
    return not_found(f"package {name} not found")


def readable_package(b: Broker, req: Req, name: PackageName) -> Package:
    """The package if the caller may read it; restricted packages look absent to others (404)."""
    trust = trust_token_for(credential(b, req) if req.headers.get("authorization") else None, name.name)
    with b.db.read() as conn:
        pkg = registry.package(conn, name.name)
        if pkg is None:
            raise _not_found(name)
        if pkg.access == "public" or trust:
            return pkg
        cred = credential(b, req)
        if cred is None or cred.user_id is None or not cred.covers(name.name) or \
                not registry.is_owner(conn, name.name, cred.user_id):
            raise _not_found(name)
    return pkg


def writable_package(b: Broker, req: Req, name: PackageName, action: Action) -> tuple[Credential, User, Package]:
    """The package, the caller and their account, once write access and 2FA are satisfied."""
    cred, user = require_account(b, req)
    with b.db.read() as conn:
        pkg = registry.package(conn, name.name)
        if pkg is None:
            raise _not_found(name)
        owner = registry.is_owner(conn, name.name, user.id)
    if not owner:
        raise forbidden(f"you do not have permission to change {name}: you are not one of its owners")
    if not cred.may_write(name.name):
        raise forbidden(f"this token cannot write {name}: its packages, scopes or read-only permission exclude it")
    enforce(b, user, second_factor(cred, user.tfa_mode, action, MfaPolicy(pkg.mfa), name.name), req.otp)
    return cred, user, pkg


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


def get_packument(b: Broker, req: Req):
    name = package_name(req)
    pkg = readable_package(b, req, name)
    abbreviated = wants_abbreviated(req.headers.get("accept"))
    body = b.packuments.get_or_build(name.name, pkg.rev, "abbreviated" if abbreviated else "full",
                                     lambda: _serialized(b, name, abbreviated))
    if body is None:
        raise _not_found(name)
    kind, media_type = ("abbreviated", ABBREVIATED_TYPE) if abbreviated else ("full", "application/json")
    headers = {"vary": "accept, accept-encoding"}
    if len(body) > GZIP_FROM and accepts_gzip(req.headers.get("accept-encoding")):
        body = b.packuments.gzipped(name.name, kind, body)
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=media_type, headers=headers)


def get_version(b: Broker, req: Req):
    name = package_name(req)
    pkg = readable_package(b, req, name)
    body = b.packuments.get_or_build(name.name, pkg.rev, "full", lambda: _serialized(b, name, False))
    if body is None:
        raise _not_found(name)
    packument = json.loads(body)
    wanted = packument["dist-tags"].get(req.params["version"], req.params["version"])
    document = packument["versions"].get(wanted)
    if document is None:
        raise not_found(f"version {req.params['version']} of {name} not found")
    return json_response(document)


def get_tarball(b: Broker, req: Req):
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
    return Response(data, media_type="application/octet-stream")


def put_package(b: Broker, req: Req):
    """PUT /<pkg>: a publish when it carries attachments, otherwise a metadata update (deprecate)."""
    name = package_name(req)
    body = req.take_json()
    if isinstance(body, dict) and body.get("_attachments"):
        return publish(b, req, name, body)
    if trust_token_for(credential(b, req), name.name):
        raise forbidden("a trust-issued token may only publish or stage-publish its package")
    return update_metadata(b, req, name, body)


def publish(b: Broker, req: Req, name: PackageName, body: Any):
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
    policy = MfaPolicy(pkg.mfa) if pkg else MfaPolicy.NONE
    how = enforce(b, user, second_factor(cred, user.tfa_mode, Action.PUBLISH, policy, name.name), req.otp)
    _commit_publish(b, request, cred, actor=user.name, new_owner=None if pkg else user.id, second_factor=how)
    return json_response({"success": True})


def _publish_as_trust(b: Broker, req: Req, name: PackageName, body: Any, cred: Credential):
    """A trust relationship is the package policy's exception: no OTP, but only with createPackage."""
    if CREATE_PACKAGE not in cred.trust_permissions:
        raise forbidden("OIDC permission denied for this action: the trust relationship of "
                        f"{name} does not allow npm publish (--allow-publish); use `npm stage publish`")
    request = parse_document(b, name, body)
    with b.db.read() as conn:
        if registry.package(conn, name.name) is None:
            raise _not_found(name)
        check_version_free(conn, request)
    _commit_publish(b, request, cred, actor=cred.username or "trust", new_owner=None, second_factor=None)
    return json_response({"success": True})


def parse_document(b: Broker, name: PackageName, body: Any) -> PublishRequest:
    try:
        return parse_publish_document(body, name.name, b.settings.max_tarball_bytes)
    except InvalidDocument as exc:
        raise bad_request(str(exc), code=exc.code) from None


def _no_permission(name: PackageName) -> RegistryError:
    return forbidden(f'You do not have permission to publish "{name}". Are you logged in as the correct user?')


def _commit_publish(b: Broker, request: PublishRequest, cred: Credential, *, actor: str,
                    new_owner: int | None, second_factor: str | None) -> None:
    name = request.package
    blob = b.blobs.put(request.tarball)  # durable before any row refers to it
    with b.db.write() as conn:
        if new_owner is not None and not registry.create_package(conn, name.name, new_owner,
                                                                 _initial_access(request)):
            if not registry.is_owner(conn, name.name, new_owner):
                raise _no_permission(name)
        if not registry.claim_version(conn, name.name, request.version, "published", request.manifest, blob):
            check_version_free(conn, request)
        keep_blob(b, conn, blob, request.tarball)
        registry.set_tag(conn, name.name, request.tag, request.version)
        changes: dict[str, Any] = {}
        if request.tag == "latest":
            changes["readme"] = request.readme
        if new_owner is None and request.access is not None:
            changes["access"] = request.access
        registry.touch(conn, name.name, **changes)
        audit.record(conn, "package.published", actor=actor, package=name.name, version=request.version,
                     tag=request.tag, auth=cred.kind.value, token_id=cred.token_id, second_factor=second_factor,
                     integrity=request.digests.integrity)


def _initial_access(request: PublishRequest) -> str:
    # As on the public registry: scoped packages are restricted unless published with --access public.
    if request.access:
        return request.access
    return "restricted" if request.package.scope else "public"


def check_version_free(conn, request: PublishRequest, staging_it: bool = False) -> None:
    """The one version-number space: a number published, unpublished or staged is never reused."""
    row = registry.version_row(conn, request.package.name, request.version)
    if row is None:
        return
    if row.state == "staged":
        stage = staging.stage_of_version(conn, request.package.name, request.version)
        stage_id = stage.id if stage else "?"
        if staging_it:
            raise conflict(f"version {request.version} of {request.package} is already staged (stage {stage_id}); "
                           "reject it first or stage a new version")
        raise conflict(f"version {request.version} of {request.package} is staged (stage {stage_id}): approve it "
                       f"with `npm stage approve {stage_id}`, or reject it and publish a new version")
    if staging_it:
        raise forbidden(f"version {request.version} of {request.package} was already published; "
                        "a version number can be used only once: stage a new version")
    raise forbidden(f"You cannot publish over the previously published versions: {request.version}.")


def update_metadata(b: Broker, req: Req, name: PackageName, body: Any):
    """A couch-style document update: deprecations, owners, or removing versions (unpublish)."""
    if not isinstance(body, dict):
        raise bad_request("the package document must be a JSON object")
    cred, user, pkg = writable_package(b, req, name, Action.PACKAGE_WRITE)
    rev = body.get("_rev") or req.params.get("rev")
    if rev is not None and (not isinstance(rev, str) or rev.split("-")[0] != str(pkg.rev)):
        raise conflict(f"{name} changed since you read it: run the command again")
    removed: list[str] = []
    with b.db.write() as conn:
        if "maintainers" in body:
            _set_maintainers(conn, name, body["maintainers"])
        if "versions" in body:
            removed = _apply_versions(conn, name, body["versions"])
        registry.touch(conn, name.name)
        audit.record(conn, "package.updated", actor=user.name, package=name.name, auth=cred.kind.value,
                     unpublished=removed, owners_changed="maintainers" in body)
    delete_unused_blobs(b, removed)
    return json_response({"ok": True})


def _set_maintainers(conn, name: PackageName, maintainers: Any) -> None:
    if not isinstance(maintainers, list) or not maintainers or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str) for m in maintainers):
        raise bad_request("maintainers must be a non-empty list of {name, email}")
    ids = []
    for entry in maintainers:
        account = accounts.user_by_name(conn, entry["name"])
        if account is None:
            raise not_found(f"no user named {entry['name']}")
        ids.append(account.id)
    registry.set_owners(conn, name.name, sorted(set(ids)))


def _apply_versions(conn, name: PackageName, versions: Any) -> list[str]:
    """Apply deprecation changes and unpublish the versions the document no longer lists."""
    if not isinstance(versions, dict):
        raise bad_request("versions must be an object")
    current = {r.version: r for r in registry.published_versions(conn, name.name)}
    unknown = set(versions) - set(current)
    if unknown:
        raise bad_request(f"cannot add versions without publishing them: {', '.join(sorted(unknown))}")
    removed = sorted(set(current) - set(versions))
    for version, sent in versions.items():
        if not isinstance(sent, dict):
            raise bad_request(f"versions[{version!r}] must be an object")
        stored = current[version].manifest
        wanted = sent.get("deprecated") or None
        if wanted is not None and not isinstance(wanted, str):
            raise bad_request("deprecated must be a string")
        if wanted != stored.get("deprecated"):
            updated = {k: v for k, v in stored.items() if k != "deprecated"}
            if wanted:
                updated["deprecated"] = wanted
            registry.set_manifest(conn, name.name, version, updated)
    for version in removed:
        _unpublish_version(conn, name, version)
    return [current[v].blob for v in removed if current[v].blob]


def _unpublish_version(conn, name: PackageName, version: str) -> None:
    registry.mark_unpublished(conn, name.name, version)
    registry.remove_tags_of_version(conn, name.name, version)
    tags = registry.tags(conn, name.name)
    if "latest" not in tags:
        remaining = [r.version for r in registry.published_versions(conn, name.name)]
        stable = [v for v in remaining if not semver.Version.parse(v).prerelease] or remaining
        top = highest(stable)
        if top:
            registry.set_tag(conn, name.name, "latest", top)


def unpublish_all(b: Broker, req: Req):
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


def delete_tarball(b: Broker, req: Req):
    """The last step of `npm unpublish pkg@version`: the blob went with the version already."""
    # No second OTP check: the CLI repeats the OTP it just used for the version removal.
    name = package_name(req)
    _, user = require_account(b, req)
    with b.db.read() as conn:
        if not registry.is_owner(conn, name.name, user.id):
            raise forbidden(f"you do not have permission to change {name}: you are not one of its owners")
    return json_response({"ok": True})


def delete_unused_blobs(b: Broker, blobs: list[str]) -> None:
    """After a commit that dropped references: delete each blob that no row refers to any more.

    Blobs are shared by content, so a publish or stage of the same bytes may be under way. The check
    and the delete hold the blob's lock, as does the writer adding a reference (`keep_blob`): either
    that writer commits first and the blob stays, or it finds the blob gone and puts it back."""
    for blob in blobs:
        with b.db.write() as conn:
            registry.lock_blob(conn, blob)
            if registry.blob_in_use(conn, blob):
                continue
            b.blob_cache.forget(blob)
            try:
                b.blobs.delete(blob)
            except Exception:  # the change is committed; an orphaned blob costs space, nothing else
                log.warning("could not delete unused blob %s; it stays as an orphan", blob, exc_info=True)


def keep_blob(b: Broker, conn, blob: str, data: bytes) -> None:
    """In the write transaction whose rows refer to `blob`: the blob is there when they commit."""
    registry.lock_blob(conn, blob)
    if not b.blobs.exists(blob):  # deleted since our put, by a reject or unpublish of the same bytes
        b.blobs.put(data)


def update_metadata_route(b: Broker, req: Req):
    """PUT /<pkg>/-rev/<rev>: owners and unpublish of one version send the document here."""
    return update_metadata(b, req, package_name(req), req.json())
