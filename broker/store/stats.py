"""Counts for the metrics: versions by state and the stages waiting for a decision."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from .tables import stages, versions


def version_states(conn: Connection) -> dict[str, int]:
    query = select(versions.c.state, func.count()).group_by(versions.c.state)
    return {state: count for state, count in conn.execute(query)}


def pending_stages(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(stages)).scalar_one()
