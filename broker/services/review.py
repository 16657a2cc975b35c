"""Approving, rejecting and expiring a stage: the one sequence behind `npm stage approve|reject`, the
review page and the expiry sweep.

The caller has already checked who the reviewer is, that they may see the stage, and their second
factor; this module applies the package's approval policy, changes the rows and writes the audit
record in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection

from ..api.context import Broker
from ..domain.approvals import StageAuthor, Tally, expired, may_approve
from ..domain.credentials import Refused
from ..errors import RegistryError
from ..store import audit, registry
from ..store import staging as stage_store
from ..store.accounts import User
from ..store.staging import StageRow
from . import outbox
from .versions import delete_unused_blobs


@dataclass(frozen=True)
class Reviewer:
    """A maintainer acting on a stage, and how they proved it (for the audit record)."""

    user: User
    auth: str  # the credential kind ("session", "automation", "web", …)
    token_id: str | None
    second_factor: str | None  # how the OTP was given, or None where none was needed


@dataclass(frozen=True)
class Approval:
    """What one approval did: published the stage, or recorded and waits for more maintainers."""

    published: bool
    approvals: tuple[str, ...] = ()  # who approved so far (the maintainers still among its owners)
    required: int = 1
    repeated: bool = False  # this reviewer had approved it already; nothing new was recorded

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approvals))


def approve(b: Broker, reviewer: Reviewer, stage: StageRow) -> Approval:
    """Record the reviewer's approval; publish once the package's required number of maintainers approved.

    The stage row is locked first, so approvals of one stage (on any instance) count in turn: the one
    that completes the count publishes, in the same transaction as its own approval row."""
    _refuse_expired(b, stage)
    with b.db.write() as conn:
        if stage_store.lock_stage(conn, stage.id) is None:
            raise RegistryError(409, f"stage {stage.id} was approved or rejected meanwhile", code="stage.gone")
        required = stage_store.required_approvals(conn, stage.package)
        decision = may_approve(reviewer.user.name, StageAuthor(stage.actor, stage.actor_type), required)
        if isinstance(decision, Refused):
            raise RegistryError(403, decision.reason, code=decision.code)
        added = stage_store.add_approval(conn, stage.id, reviewer.user.id, reviewer.user.name)
        tally = Tally(tuple(stage_store.approvers(conn, stage)), required, repeated=not added)
        if tally.complete:
            _publish(conn, stage)
        if added or tally.complete:
            _record_approval(conn, reviewer, stage, tally, added)
    return Approval(published=tally.complete, approvals=tally.approvers, required=required, repeated=tally.repeated)


def _refuse_expired(b: Broker, stage: StageRow) -> None:
    """An expired stage is expired now (if the sweep has not yet) and refused with 410."""
    if expired(stage.created_at, b.settings.stage_ttl, time.time()):
        expire(b, stage)
        raise RegistryError(410, f"stage {stage.id} ({stage.package}@{stage.version}) expired: it waited longer "
                            "than the stage lifetime for its approvals and was rejected; stage it again",
                            code="stage.expired")


def check_may_approve(b: Broker, reviewer_name: str, stage: StageRow) -> None:
    """An expired stage and the stager's own approval, refused before the reviewer's OTP is spent
    (`approve` checks again, the latter under the lock)."""
    _refuse_expired(b, stage)
    with b.db.read() as conn:
        required = stage_store.required_approvals(conn, stage.package)
    decision = may_approve(reviewer_name, StageAuthor(stage.actor, stage.actor_type), required)
    if isinstance(decision, Refused):
        raise RegistryError(403, decision.reason, code=decision.code)


def _record_approval(conn: Connection, reviewer: Reviewer, stage: StageRow, tally: Tally, added: bool) -> None:
    """The audit record and the events of an approval that counted, or (a lowered policy) completed."""
    name = reviewer.user.name
    audit.record(conn, "stage.approved", actor=name, package=stage.package, version=stage.version, tag=stage.tag,
                 stage_id=stage.id, auth=reviewer.auth, token_id=reviewer.token_id,
                 second_factor=reviewer.second_factor, staged_by=stage.actor, integrity=stage.integrity,
                 approvals=len(tally.approvers), required=tally.required, published=tally.complete)
    if added:
        outbox.enqueue(conn, "stage.approved", stage.package, name, version=stage.version, tag=stage.tag,
                       stage_id=stage.id, approvals=len(tally.approvers), required=tally.required,
                       published=tally.complete)
    if tally.complete:
        outbox.enqueue(conn, "package.published", stage.package, name, version=stage.version, tag=stage.tag,
                       stage_id=stage.id, staged_by=stage.actor, approvers=list(tally.approvers))


def _publish(conn: Connection, stage: StageRow) -> None:
    if not stage_store.publish_staged(conn, stage):
        raise RegistryError(409, f"stage {stage.id} was approved or rejected meanwhile", code="stage.gone")
    registry.set_tag(conn, stage.package, stage.tag, stage.version)
    registry.touch(conn, stage.package, **({"readme": stage.readme} if stage.tag == "latest" else {}))


def reject(b: Broker, reviewer: Reviewer, stage: StageRow) -> None:
    with b.db.write() as conn:
        discarded = stage_store.discard_staged(conn, stage)
        if discarded is None:
            raise RegistryError(409, f"stage {stage.id} was approved or rejected meanwhile", code="stage.gone")
        audit.record(conn, "stage.rejected", actor=reviewer.user.name, package=stage.package,
                     version=stage.version, stage_id=stage.id, auth=reviewer.auth, token_id=reviewer.token_id,
                     second_factor=reviewer.second_factor, staged_by=stage.actor)
        outbox.enqueue(conn, "stage.rejected", stage.package, reviewer.user.name, version=stage.version,
                       tag=stage.tag, stage_id=stage.id, staged_by=stage.actor)
    delete_unused_blobs(b, [discarded.blob] if discarded.blob else [])


def expire(b: Broker, stage: StageRow) -> bool:
    """Reject a stage that outlived STAGEGATE_STAGE_TTL; False when it is gone already (another
    instance's sweep, an approval or a rejection got there first: the stage row's delete decides)."""
    with b.db.write() as conn:
        discarded = stage_store.discard_staged(conn, stage)
        if discarded is None:
            return False
        audit.record(conn, "stage.expired", actor=None, package=stage.package, version=stage.version,
                     stage_id=stage.id, staged_by=stage.actor, created_at=stage.created_at,
                     ttl=b.settings.stage_ttl)
        outbox.enqueue(conn, "stage.expired", stage.package, None, version=stage.version, tag=stage.tag,
                       stage_id=stage.id, staged_by=stage.actor)
    delete_unused_blobs(b, [discarded.blob] if discarded.blob else [])
    return True


EXPIRE_BATCH = 100


def expire_stale(b: Broker, now: float | None = None) -> int:
    """Expire every stage older than the stage lifetime, a batch at a time; returns how many this call expired."""
    before = (now or time.time()) - b.settings.stage_ttl
    count = 0
    while True:
        with b.db.read() as conn:
            batch = stage_store.expired_stages(conn, before, EXPIRE_BATCH)
        count += sum(expire(b, stage) for stage in batch)
        if len(batch) < EXPIRE_BATCH:
            return count
