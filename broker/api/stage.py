"""`npm stage publish|list|view|download|approve|reject`: staged publishing."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid

from anyio import to_thread
from sqlalchemy import Connection
from starlette.responses import Response

from ..domain.credentials import Action, Credential, Refused, TokenKind, second_factor
from ..domain.names import PackageName
from ..domain.packument import iso
from ..domain.publish import PublishRequest
from ..domain.staging import (StageItem, actor_type, may_stage, page_of, parse_stage_id,
                              valid_idempotency_key)
from ..errors import RegistryError, bad_request, conflict, forbidden, not_found
from ..services import outbox, review
from ..services.versions import check_version_free, commit_version
from ..domain.packages import initial_access
from ..store import accounts, audit, registry
from ..store import staging as stage_store
from ..store.accounts import User
from ..store.staging import StageRow, Visible
from .auth import enforce, require_account, require_login
from .context import Broker
from .http import Req, json_response
from .lookup import package_name
from .packages import parse_document

log = logging.getLogger("stagegate")


def _item(row: StageRow, approvals: list[str], required: int, ttl: int) -> dict:
    origin = row.origin
    workflow = origin.get("workflow_ref")
    return StageItem(
        id=row.id, package_name=row.package, version=row.version, tag=row.tag, created_at=iso(row.created_at),
        actor=row.actor, actor_type=row.actor_type, shasum=row.shasum, integrity=row.integrity, size=row.size,
        repository=origin.get("repository"), workflow=workflow, ref=origin.get("ref"), sha=origin.get("sha"),
        run_id=origin.get("run_id"), approvals=approvals, required_approvals=required,
        expires_at=iso(row.created_at + ttl)).wire()


def _items(b: Broker, conn: Connection, rows: list[StageRow]) -> list[dict]:
    """The stages as the CLI shows them, with their approvals so far and what their package requires."""
    approvals = stage_store.approvers_of(conn, rows)
    required = stage_store.required_of(conn, sorted({r.package for r in rows}))
    return [_item(r, approvals[r.id], required.get(r.package, 1), b.settings.stage_ttl) for r in rows]


# --- stage publish ----------------------------------------------------------------------------

def stage_publish(b: Broker, req: Req) -> Response:
    name = package_name(req)
    cred = require_login(b, req)
    key = req.headers.get("idempotency-key")
    if not valid_idempotency_key(key):
        raise bad_request("Idempotency-Key must be 1 to 255 printable ASCII characters")
    decision = may_stage(cred, name.name)
    if isinstance(decision, Refused):
        raise forbidden(decision.reason, code=decision.code)
    actor, new_owners = _stager(b, cred, name)
    request = parse_document(b, name, req.take_json())
    with b.db.read() as conn:
        if key is not None and (earlier := _replayed(conn, name, key, request)) is not None:
            return json_response({"stageId": earlier}, status=201)
        check_version_free(conn, request, staging_it=True)
    stage_id = _commit_stage(b, request, cred, actor, key, new_owners)
    return json_response({"stageId": stage_id}, status=201)


def _stager(b: Broker, cred: Credential, name: PackageName) -> tuple[str, list[int] | None]:
    """Who the stage is recorded as, and the owners of the package it creates (None: it exists). The
    package must exist and (for accounts) be theirs; or the caller is a trust token the exchange minted
    for a name not taken yet, which only a scope-wide relationship does."""
    with b.db.read() as conn:
        new_owners = None
        if registry.package(conn, name.name) is None:
            new_owners = _first_stage_owners(conn, cred, name)
        if cred.kind is TokenKind.TRUST:
            return cred.origin.get("repository") or cred.username or "trust", new_owners
        if cred.user_id is None or not registry.is_owner(conn, name.name, cred.user_id):
            raise forbidden(f'You do not have permission to stage "{name}": you are not one of its owners')
    return cred.username or "", new_owners


def _first_stage_owners(conn: Connection, cred: Credential, name: PackageName) -> list[int]:
    """The scope's owners (every package's; for a scope without any, its namesake account), who own the
    package the first stage creates and review that stage as usual. None (a 404) for a scope whose
    packages no one account owns all of."""
    owners = []
    if cred.kind is TokenKind.TRUST and name.scope is not None:
        owners = registry.scope_owner_ids(conn, name.scope)
        if not owners and not registry.scope_has_packages(conn, name.scope):  # else no one account owns them all
            namesake = accounts.user_by_name(conn, name.scope[1:])
            owners = [namesake.id] if namesake else []
    if not owners:
        raise not_found(f"package {name} not found: staging needs an existing package, "
                        "publish its first version with `npm publish`", code="package.not-found")
    return owners


def _replayed(conn, name: PackageName, key: str, request: PublishRequest) -> str | None:
    earlier = stage_store.stage_by_key(conn, name.name, key)
    if earlier is None:
        return None
    if earlier.integrity != request.digests.integrity:
        raise conflict(f"Idempotency-Key {key!r} was used for stage {earlier.id} with other content "
                       f"({earlier.package}@{earlier.version}); use a new key for a new upload")
    return earlier.id


def _commit_stage(b: Broker, request: PublishRequest, cred: Credential, actor: str, key: str | None,
                  new_owners: list[int] | None = None) -> str:
    stage = StageRow(id=str(uuid.uuid4()), package=request.package.name, version=request.version, tag=request.tag,
                     readme=request.readme, integrity=request.digests.integrity, shasum=request.digests.shasum,
                     size=request.digests.size, actor=actor, actor_type=actor_type(cred), origin=cred.origin,
                     idempotency_key=key, created_at=time.time())

    def replay(conn: Connection) -> str | None:
        return _replayed(conn, request.package, key, request) if key is not None else None

    def record(conn: Connection) -> str:
        if not stage_store.insert_stage(conn, stage):
            raise conflict(f"Idempotency-Key {key!r} was just used for another stage of {stage.package}")
        audit.record(conn, "stage.created", actor=actor, package=stage.package, version=stage.version,
                     tag=stage.tag, stage_id=stage.id, auth=cred.kind.value, token_id=cred.token_id,
                     integrity=stage.integrity, origin=cred.origin)
        outbox.enqueue(conn, "stage.created", stage.package, actor, version=stage.version, tag=stage.tag,
                       stage_id=stage.id, actor_type=stage.actor_type, repository=cred.origin.get("repository"),
                       workflow=cred.origin.get("workflow_ref"), run_id=cred.origin.get("run_id"))
        return stage.id

    def create_package(conn: Connection) -> None:
        access = initial_access(request.access, scoped=True)
        if not registry.create_package_owned_by(conn, request.package.name, new_owners, access):
            raise conflict(f"{request.package} was created by someone else meanwhile: run the job again",
                           code="package.created-meanwhile")
        audit.record(conn, "package.created", actor=actor, package=request.package.name, access=access,
                     owners=new_owners, auth=cred.kind.value, origin=cred.origin, by="scope-trust")

    return commit_version(b, request, cred, "staged", record, replay=replay,
                          before=create_package if new_owners is not None else None)


# --- list, view, download -----------------------------------------------------------------------

def _visible_stage(b: Broker, req: Req, cred: Credential, user: User) -> StageRow:
    stage_id = parse_stage_id(req.params["id"])
    if stage_id is None:
        raise bad_request("stage-id must be a valid UUID")
    with b.db.read() as conn:
        stage = stage_store.stage_by_id(conn, stage_id)
        visible = stage is not None and registry.is_owner(conn, stage.package, user.id) and \
            cred.may_write(stage.package)
    if not visible:
        raise not_found(f"no staged package with id {stage_id} that you can see "
                        "(it may have been approved or rejected already)", code="stage.not-found")
    return stage


def list_stages(b: Broker, req: Req) -> Response:
    cred, user = require_account(b, req)
    page = page_of(req.query.get("page"), req.query.get("perPage"))
    if cred.read_only:
        return json_response({"items": [], "total": 0})
    visible = Visible(owner_id=user.id, packages=cred.packages, scopes=cred.scopes, package=req.query.get("package"))
    with b.db.read() as conn:
        rows, total = stage_store.list_stages(conn, visible, page.offset, page.size)
        items = _items(b, conn, rows)
    return json_response({"items": items, "total": total})


def view_stage(b: Broker, req: Req) -> Response:
    cred, user = require_account(b, req)
    stage = _visible_stage(b, req, cred, user)
    with b.db.read() as conn:
        item, = _items(b, conn, [stage])
    return json_response(item)


def download_stage(b: Broker, req: Req) -> Response:
    cred, user = require_account(b, req)
    stage = _visible_stage(b, req, cred, user)
    with b.db.read() as conn:
        row = registry.version_row(conn, stage.package, stage.version)
    data = b.blobs.get(row.blob) if row and row.blob else None
    if data is None:
        raise not_found(f"the tarball of stage {stage.id} is gone (approved or rejected meanwhile)",
                        code="stage.not-found")
    return Response(data, media_type="application/octet-stream")


# --- approve, reject ------------------------------------------------------------------------------

def _review(b: Broker, req: Req, approving: bool = False) -> tuple[Credential, User, StageRow, str | None]:
    cred, user = require_account(b, req)  # trust tokens get their 403 here
    stage = _visible_stage(b, req, cred, user)
    if approving:
        review.check_may_approve(b, user.name, stage)
    how = enforce(b, user, second_factor(cred, user.tfa_mode, Action.STAGE_REVIEW), req.otp)
    return cred, user, stage, how


def approve(b: Broker, req: Req) -> Response:
    cred, user, stage, how = _review(b, req, approving=True)
    approval = review.approve(b, _reviewer(cred, user, how), stage)
    if not approval.published:
        raise _not_published_yet(stage, approval)
    return json_response({"ok": True, "id": stage.id, "packageName": stage.package, "version": stage.version,
                          "tag": stage.tag, "published": True, "approvals": list(approval.approvals),
                          "requiredApprovals": approval.required})


def _not_published_yet(stage: StageRow, approval: review.Approval) -> RegistryError:
    """An approval that was recorded but does not publish yet is not a success for the CLI.

    npm 11 prints "approved and published successfully" on any 2xx of this route, whatever the body,
    so a 202 would make it lie. A 409 makes it print "409 Conflict - POST …/approve - <this text>" and
    exit non-zero: the text says the approval is recorded and what is still missing. The error code
    `stage.awaiting-approvals` (and the counts in the body) tell scripts it is not a failure."""
    so_far = f"{len(approval.approvals)} of {approval.required} required approvals ({', '.join(approval.approvals)})"
    first = "you had approved it already" if approval.repeated else "your approval is recorded"
    more = "1 more maintainer approves" if approval.missing == 1 else f"{approval.missing} more maintainers approve"
    return RegistryError(409, f"{first}, but {stage.package}@{stage.version} is not published yet: stage "
                         f"{stage.id} has {so_far}; it is published when {more} with `npm stage approve {stage.id}`",
                         code="stage.awaiting-approvals",
                         extra={"published": False, "approvals": list(approval.approvals),
                                "requiredApprovals": approval.required})


def reject(b: Broker, req: Req) -> Response:
    cred, user, stage, how = _review(b, req)
    review.reject(b, _reviewer(cred, user, how), stage)
    return json_response({"ok": True})


def _reviewer(cred: Credential, user: User, how: str | None) -> review.Reviewer:
    return review.Reviewer(user=user, auth=cred.kind.value, token_id=cred.token_id, second_factor=how)


# --- expiry ---------------------------------------------------------------------------------------

SWEEP_EVERY = 3600.0  # at most; a short stage lifetime is swept more often


async def keep_swept(b: Broker) -> None:
    """At start, then periodically: expire the stages older than STAGEGATE_STAGE_TTL. Every instance
    sweeps; the delete of a stage row decides which one expires it (and records and notifies once)."""
    every = min(SWEEP_EVERY, max(1.0, b.settings.stage_ttl / 10))
    while True:
        try:
            expired = await to_thread.run_sync(review.expire_stale, b)
            if expired:
                log.info("stages: %d expired after %d s without enough approvals", expired, b.settings.stage_ttl)
        except Exception:  # the database may be away for a while: try again next round, say so now
            log.exception("stages: the expiry sweep failed; trying again later")
        await asyncio.sleep(every * random.uniform(0.9, 1.1))
