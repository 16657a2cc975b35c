"""Taking a version number for a published or staged version, and the blobs those rows refer to.

Publish and stage commit the same way: put the blob (durable before any row refers to it), then in
one write transaction check the credential is still granted, claim the version number (the primary
key decides), and keep the blob. Whatever else the caller records goes in that same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from sqlalchemy import Connection

from ..api.context import Broker
from ..domain.credentials import Credential, TokenKind
from ..domain.publish import PublishRequest
from ..errors import conflict, forbidden, unauthorized
from ..store import registry, staging
from ..store.revocation import token_still_granted
from . import outbox

log = logging.getLogger("stagegate")

T = TypeVar("T")


def check_version_free(conn: Connection, request: PublishRequest, staging_it: bool = False) -> None:
    """The one version-number space: a number published, unpublished or staged is never reused."""
    row = registry.version_row(conn, request.package.name, request.version)
    if row is None:
        return
    if row.state == "staged":
        stage = staging.stage_of_version(conn, request.package.name, request.version)
        stage_id = stage.id if stage else "?"
        if staging_it:
            raise conflict(f"version {request.version} of {request.package} is already staged (stage {stage_id}); "
                           "reject it first or stage a new version", code="version.staged")
        raise conflict(f"version {request.version} of {request.package} is staged (stage {stage_id}): approve it "
                       f"with `npm stage approve {stage_id}`, or reject it and publish a new version",
                       code="version.staged")
    if staging_it:
        raise forbidden(f"version {request.version} of {request.package} was already published; "
                        "a version number can be used only once: stage a new version", code="version.used")
    raise forbidden(f"You cannot publish over the previously published versions: {request.version}.",
                    code="version.used")


def check_still_granted(conn: Connection, cred: Credential) -> None:
    """A token revoked (or a trust relationship removed) while the request ran wins over it."""
    if cred.token_id is not None and not token_still_granted(conn, cred.token_id):
        what = "its trust relationship was revoked" if cred.kind is TokenKind.TRUST else "it was revoked"
        raise unauthorized(f"this token is no longer valid ({what} while the request ran); nothing was changed",
                           code="auth.invalid-token")


def commit_version(b: Broker, request: PublishRequest, cred: Credential, state: Literal["published", "staged"],
                   record: Callable[[Connection], T], *, before: Callable[[Connection], None] | None = None,
                   replay: Callable[[Connection], T | None] | None = None) -> T:
    """Claim `request`'s version number in `state` and run `record` in the same transaction.

    `before` runs first (creating a new package, say); `replay` may answer for a version that turns
    out taken (an idempotent retry); otherwise a taken number is refused as `check_version_free` says.
    """
    blob = b.blobs.put(request.tarball, request.digests.sha512_hex)  # durable before any row refers to it
    with b.db.write() as conn:
        check_still_granted(conn, cred)
        if before is not None:
            before(conn)
        name = request.package.name
        if not registry.claim_version(conn, name, request.version, state, request.manifest, blob):
            if replay is not None and (earlier := replay(conn)) is not None:
                return earlier
            check_version_free(conn, request, staging_it=state == "staged")
            raise conflict(f"version {request.version} of {request.package} was just taken; use a new version")
        keep_blob(b, conn, blob, request.tarball)
        outbox.version_committed(conn, request, cred, state)
        return record(conn)


def keep_blob(b: Broker, conn: Connection, blob: str, data: bytes) -> None:
    """In the write transaction whose rows refer to `blob`: the blob is there when they commit."""
    registry.lock_blob(conn, blob)
    if not b.blobs.exists(blob):  # deleted since our put, by a reject or unpublish of the same bytes
        b.blobs.put(data, blob)


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
