"""Approving and rejecting a stage: the one sequence behind `npm stage approve|reject` and the review page.

The caller has already checked who the reviewer is, that they may see the stage, and their second
factor; this module changes the rows and writes the audit record in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.context import Broker
from ..errors import RegistryError
from ..store import audit, registry
from ..store import staging as stage_store
from ..store.accounts import User
from ..store.staging import StageRow
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
    published: bool


def approve(b: Broker, reviewer: Reviewer, stage: StageRow) -> Approval:
    with b.db.write() as conn:
        if not stage_store.publish_staged(conn, stage):
            raise RegistryError(409, f"stage {stage.id} was approved or rejected meanwhile", code="stage.gone")
        registry.set_tag(conn, stage.package, stage.tag, stage.version)
        registry.touch(conn, stage.package, **({"readme": stage.readme} if stage.tag == "latest" else {}))
        audit.record(conn, "stage.approved", actor=reviewer.user.name, package=stage.package,
                     version=stage.version, tag=stage.tag, stage_id=stage.id, auth=reviewer.auth,
                     token_id=reviewer.token_id, second_factor=reviewer.second_factor, staged_by=stage.actor,
                     integrity=stage.integrity)
    return Approval(published=True)


def reject(b: Broker, reviewer: Reviewer, stage: StageRow) -> None:
    with b.db.write() as conn:
        discarded = stage_store.discard_staged(conn, stage)
        if discarded is None:
            raise RegistryError(409, f"stage {stage.id} was approved or rejected meanwhile", code="stage.gone")
        audit.record(conn, "stage.rejected", actor=reviewer.user.name, package=stage.package,
                     version=stage.version, stage_id=stage.id, auth=reviewer.auth, token_id=reviewer.token_id,
                     second_factor=reviewer.second_factor, staged_by=stage.actor)
    delete_unused_blobs(b, [discarded.blob] if discarded.blob else [])
