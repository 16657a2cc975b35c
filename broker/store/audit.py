"""The audit log: every security-relevant event, with who did it and how they authenticated."""

from __future__ import annotations

import json
import time

from sqlalchemy import Connection, insert, select

from .tables import audit_log


def record(conn: Connection, event: str, *, actor: str | None, package: str | None = None, **detail) -> None:
    conn.execute(_INSERT, {"at": time.time(), "event": event, "actor": actor, "package": package,
                           "detail": json.dumps(detail, sort_keys=True, default=str)})


_INSERT = insert(audit_log)  # built once: every exchange and write records an event


def events(conn: Connection, event: str | None = None, limit: int = 100) -> list[dict]:
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if event:
        query = query.where(audit_log.c.event == event)
    return [{"at": r.at, "event": r.event, "actor": r.actor, "package": r.package, **json.loads(r.detail)}
            for r in conn.execute(query)]
