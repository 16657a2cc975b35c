"""Queries for staged versions."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .tables import owners, packages, stage_approvals, stages, versions


@dataclass(frozen=True)
class StageRow:
    id: str
    package: str
    version: str
    tag: str
    readme: str
    integrity: str
    shasum: str
    size: int
    actor: str
    actor_type: str
    origin: dict
    idempotency_key: str | None
    created_at: float


def _stage(row) -> StageRow:
    return StageRow(row.id, row.package, row.version, row.tag, row.readme, row.integrity, row.shasum, row.size,
                    row.actor, row.actor_type, json.loads(row.origin), row.idempotency_key, row.created_at)


def insert_stage(conn: Connection, row: StageRow) -> bool:
    """False when the idempotency key is taken for this package (the unique constraint decides)."""
    try:
        with conn.begin_nested():
            conn.execute(_INSERT_STAGE, dict(
                id=row.id, package=row.package, version=row.version, tag=row.tag, readme=row.readme,
                integrity=row.integrity, shasum=row.shasum, size=row.size, actor=row.actor,
                actor_type=row.actor_type, origin=json.dumps(row.origin), idempotency_key=row.idempotency_key,
                created_at=row.created_at))
    except IntegrityError:
        return False
    return True


def stage_by_id(conn: Connection, stage_id: str) -> StageRow | None:
    row = conn.execute(_STAGE_BY_ID, {"id": stage_id}).first()
    return _stage(row) if row else None


def stage_by_key(conn: Connection, package: str, key: str) -> StageRow | None:
    row = conn.execute(_STAGE_BY_KEY, {"package": package, "key": key}).first()
    return _stage(row) if row else None


def stage_of_version(conn: Connection, package: str, version: str) -> StageRow | None:
    row = conn.execute(_STAGE_OF_VERSION, {"package": package, "version": version}).first()
    return _stage(row) if row else None


# Built once: every stage publish, view and approval runs some of them.
_INSERT_STAGE = insert(stages)
_STAGE_BY_ID = select(stages).where(stages.c.id == bindparam("id"))
_STAGE_BY_KEY = select(stages).where(stages.c.package == bindparam("package"),
                                     stages.c.idempotency_key == bindparam("key"))
_STAGE_OF_VERSION = select(stages).where(stages.c.package == bindparam("package"),
                                         stages.c.version == bindparam("version"))


@dataclass(frozen=True)
class Visible:
    """Which stages a caller sees: of packages they own, narrowed by their token's selection."""

    owner_id: int
    packages: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    package: str | None = None


def _visible(v: Visible):
    owned = select(owners.c.package).where(owners.c.user_id == v.owner_id)
    condition = stages.c.package.in_(owned)
    if v.packages or v.scopes:
        selected = [stages.c.package.startswith(f"{scope}/", autoescape=True) for scope in v.scopes]
        if v.packages:
            selected.append(stages.c.package.in_(v.packages))
        condition = and_(condition, or_(*selected))
    if v.package is not None:
        condition = and_(condition, stages.c.package == v.package)
    return condition


def list_stages(conn: Connection, visible: Visible, offset: int, limit: int) -> tuple[list[StageRow], int]:
    condition = _visible(visible)
    total = conn.execute(select(func.count()).select_from(stages).where(condition)).scalar_one()
    rows = conn.execute(select(stages).where(condition).order_by(stages.c.created_at.desc(), stages.c.id)
                        .offset(offset).limit(limit)).all()
    return [_stage(r) for r in rows], total


def publish_staged(conn: Connection, stage: StageRow) -> bool:
    """Turn the staged version into a published one and drop the stage, in the caller's transaction.

    False when another approval or a rejection got there first: the stage row, read by id, decides,
    so a newer stage of the same version number is never published in its place.
    """
    if conn.execute(delete(stages).where(stages.c.id == stage.id)).rowcount != 1:
        return False
    return conn.execute(update(versions).where(
        versions.c.package == stage.package, versions.c.version == stage.version, versions.c.state == "staged")
        .values(state="published", created_at=time.time())).rowcount == 1


@dataclass(frozen=True)
class Discarded:
    blob: str | None  # the blob key to delete once committed, if nothing else refers to it


def discard_staged(conn: Connection, stage: StageRow) -> Discarded | None:
    """Delete the stage and free its version number, in the caller's transaction.

    None when the stage is gone already (approved or rejected meanwhile). Only the stage row read
    (by id) is deleted, and the version row only while it still belongs to that stage: a rejection
    racing a re-stage of the same version never deletes the newer stage.
    """
    if conn.execute(delete(stages).where(stages.c.id == stage.id)).rowcount != 1:
        return None
    # The stage row existed until now, so the staged version row is its own (one stage per version).
    blob = conn.execute(select(versions.c.blob).where(
        versions.c.package == stage.package, versions.c.version == stage.version,
        versions.c.state == "staged")).scalar_one_or_none()
    conn.execute(delete(versions).where(versions.c.package == stage.package, versions.c.version == stage.version,
                                        versions.c.state == "staged"))
    return Discarded(blob)


# --- approvals -----------------------------------------------------------------------------------

def lock_stage(conn: Connection, stage_id: str) -> StageRow | None:
    """The stage, locked until this write transaction ends (PostgreSQL; a SQLite writer is alone anyway):
    approvals of one stage take turns, so each counts the ones committed before it. None when it is gone."""
    row = conn.execute(select(stages).where(stages.c.id == stage_id).with_for_update()).first()
    return _stage(row) if row else None


def add_approval(conn: Connection, stage_id: str, user_id: int, user_name: str) -> bool:
    """False when this maintainer had approved the stage already (the primary key decides)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(stage_approvals).values(stage_id=stage_id, user_id=user_id, user_name=user_name,
                                                        at=time.time()))
    except IntegrityError:
        return False
    return True


def approvers_of(conn: Connection, stages_: list[StageRow]) -> dict[str, list[str]]:
    """Who approved each stage so far, first approval first: only those still among the package's
    maintainers count (an approval by someone removed since is void)."""
    if not stages_:
        return {}
    rows = conn.execute(select(stage_approvals.c.stage_id, stage_approvals.c.user_name)
                        .join(stages, stages.c.id == stage_approvals.c.stage_id)
                        .join(owners, and_(owners.c.package == stages.c.package,
                                           owners.c.user_id == stage_approvals.c.user_id))
                        .where(stage_approvals.c.stage_id.in_([s.id for s in stages_]))
                        .order_by(stage_approvals.c.at, stage_approvals.c.user_name)).all()
    found: dict[str, list[str]] = {s.id: [] for s in stages_}
    for stage_id, name in rows:
        found[stage_id].append(name)
    return found


def approvers(conn: Connection, stage: StageRow) -> list[str]:
    return approvers_of(conn, [stage])[stage.id]


def required_approvals(conn: Connection, package: str) -> int:
    return conn.execute(select(packages.c.required_approvals).where(packages.c.name == package)).scalar_one_or_none() \
        or 1


def required_of(conn: Connection, names: list[str]) -> dict[str, int]:
    rows = conn.execute(select(packages.c.name, packages.c.required_approvals).where(packages.c.name.in_(names)))
    return {name: required for name, required in rows}


def set_required_approvals(conn: Connection, package: str, required: int) -> None:
    conn.execute(update(packages).where(packages.c.name == package).values(required_approvals=required))


def owner_count(conn: Connection, package: str) -> int:
    return conn.execute(select(func.count()).select_from(owners).where(owners.c.package == package)).scalar_one()


# --- expiry ---------------------------------------------------------------------------------------

def expired_stages(conn: Connection, before: float, limit: int) -> list[StageRow]:
    """Stages created before `before`, oldest first."""
    rows = conn.execute(select(stages).where(stages.c.created_at < before)
                        .order_by(stages.c.created_at, stages.c.id).limit(limit)).all()
    return [_stage(r) for r in rows]
