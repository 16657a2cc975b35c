"""The audit log: every security-relevant event, with who did it and how they authenticated.

Writers call `record`; it never stores a secret (a key named like one, or a value shaped like a token
or a JWT, is replaced and the slip is logged by key). Readers page through it newest first, or walk it
oldest first; `prune` drops what is older than the retention."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

from sqlalchemy import ColumnElement, Connection, Select, and_, delete, func, insert, select, true

from ..domain.audit import AuditFilter, Entry, scrubbed
from .db import after_commit
from .tables import audit_log

log = logging.getLogger("stagegate")
mirror_log = logging.getLogger("stagegate.audit")

PRUNE_BATCH = 5000


def record(conn: Connection, event: str, *, actor: str | None, package: str | None = None, **detail) -> None:
    """Insert the event (scrubbed of secrets); once its transaction commits, the same event goes to
    the log too (one line, logger `stagegate.audit`), so a record that was rolled back is never logged."""
    clean, slipped = scrubbed(detail)
    actor, slipped_actor = scrubbed(actor, "actor")
    if slipped or slipped_actor:  # a caller tried to record a secret: say where, never what
        log.warning("audit: redacted %s in a %s event", ", ".join(slipped + slipped_actor), event)
    row = {"at": time.time(), "event": event, "actor": actor, "package": package,
           "detail": json.dumps(clean, sort_keys=True, default=str)}
    conn.execute(_INSERT, row)
    after_commit(conn, lambda: _mirror(row))


def _mirror(row: dict) -> None:
    mirror_log.info("audit %s", row["event"], extra={"event": row["event"], "actor": row["actor"],
                                                     "package": row["package"], "detail": json.loads(row["detail"])})


_INSERT = insert(audit_log)  # built once: every exchange and write records an event


def _entry(row) -> Entry:
    return Entry(id=row.id, at=row.at, event=row.event, actor=row.actor, package=row.package,
                 detail=json.loads(row.detail))


def _condition(where: AuditFilter) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if where.package is not None:
        parts.append(audit_log.c.package == where.package)
    if where.event:  # event_filter() allows [a-z0-9.-] only: no LIKE wildcard to escape
        if where.event.endswith("."):
            parts.append(audit_log.c.event.like(where.event + "%"))
        else:
            parts.append((audit_log.c.event == where.event) | audit_log.c.event.like(where.event + ".%"))
    if where.since is not None:
        parts.append(audit_log.c.at >= where.since)
    if where.until is not None:
        parts.append(audit_log.c.at < where.until)
    return and_(true(), *parts)


def page(conn: Connection, where: AuditFilter, offset: int, limit: int) -> tuple[list[Entry], int]:
    """One page of matching entries, newest first, and how many match in all."""
    condition = _condition(where)
    total = conn.execute(select(func.count()).select_from(audit_log).where(condition)).scalar_one()
    rows = conn.execute(select(audit_log).where(condition).order_by(audit_log.c.id.desc())
                        .offset(offset).limit(limit)).all()
    return [_entry(r) for r in rows], total


def walk(conn: Connection, where: AuditFilter, batch: int = 1000) -> Iterator[Entry]:
    """Every matching entry, oldest first, read in batches (the whole log never sits in memory)."""
    condition, after = _condition(where), 0
    while True:
        query: Select = (select(audit_log).where(condition, audit_log.c.id > after)
                         .order_by(audit_log.c.id).limit(batch))
        rows = conn.execute(query).all()
        yield from (_entry(r) for r in rows)
        if len(rows) < batch:
            return
        after = rows[-1].id


def prune(conn: Connection, before: float) -> int:
    """Delete up to PRUNE_BATCH entries older than `before`; call again while it returns PRUNE_BATCH.

    Small batches keep each transaction short; several instances pruning at once only delete
    fewer rows each (a row already gone is simply not counted)."""
    oldest = select(audit_log.c.id).where(audit_log.c.at < before).order_by(audit_log.c.id).limit(PRUNE_BATCH)
    return conn.execute(delete(audit_log).where(audit_log.c.id.in_(oldest.scalar_subquery()))).rowcount

