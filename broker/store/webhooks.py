"""Queries for webhooks and their outbox: add and list hooks, enqueue events, lease and settle deliveries."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from .tables import packages, webhook_outbox, webhooks


@dataclass(frozen=True)
class Hook:
    id: str
    package: str | None  # None: the registry's own hook, for every package
    sealed_url: str  # a hook URL may hold a credential (Slack's path does): sealed like the secret
    events: tuple[str, ...]  # empty: every event
    sealed_secret: str
    created_by: str | None
    created_at: float

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


def _hook(row) -> Hook:
    return Hook(row.id, row.package, row.url, tuple(json.loads(row.events)), row.secret, row.created_by,
                row.created_at)


def add_hook(conn: Connection, package: str | None, sealed_url: str, events: list[str] | None, sealed_secret: str,
             created_by: str | None) -> Hook:
    hook = Hook(str(uuid.uuid4()), package, sealed_url, tuple(events or ()), sealed_secret, created_by, time.time())
    conn.execute(insert(webhooks).values(id=hook.id, package=package, url=sealed_url, events=json.dumps(list(hook.events)),
                                         secret=sealed_secret, created_by=created_by, created_at=hook.created_at))
    return hook


def hooks_of(conn: Connection, package: str | None) -> list[Hook]:
    """A package's own hooks, or (None) the registry's."""
    where = webhooks.c.package.is_(None) if package is None else webhooks.c.package == package
    return [_hook(r) for r in conn.execute(select(webhooks).where(where).order_by(webhooks.c.created_at))]


def hook_count(conn: Connection, package: str) -> int:
    """How many hooks the package has, with its row locked (PostgreSQL: FOR UPDATE; SQLite writes are
    serialized anyway) so that two concurrent additions cannot both pass the limit."""
    conn.execute(select(packages.c.name).where(packages.c.name == package).with_for_update())
    return conn.execute(select(func.count()).select_from(webhooks).where(webhooks.c.package == package)).scalar_one()


def hook_by_id(conn: Connection, hook_id: str) -> Hook | None:
    row = conn.execute(select(webhooks).where(webhooks.c.id == hook_id)).first()
    return _hook(row) if row else None


def remove_hook(conn: Connection, package: str | None, hook_id: str) -> bool:
    where = webhooks.c.package.is_(None) if package is None else webhooks.c.package == package
    return conn.execute(delete(webhooks).where(webhooks.c.id == hook_id, where)).rowcount == 1


def pending_counts(conn: Connection, hook_ids: list[str]) -> dict[str, int]:
    rows = conn.execute(select(webhook_outbox.c.hook_id, func.count()).where(
        webhook_outbox.c.hook_id.in_(hook_ids), webhook_outbox.c.delivered_at.is_(None),
        webhook_outbox.c.failed_at.is_(None)).group_by(webhook_outbox.c.hook_id)) if hook_ids else []
    return {hook_id: count for hook_id, count in rows}


# --- the outbox ------------------------------------------------------------------------------------

def enqueue(conn: Connection, package: str, event: str, body: Callable[[], bytes]) -> int:
    """One outbox row per hook that wants `event` (the package's and the registry's), in the caller's
    transaction; returns how many. `body` is made only when some hook wants the event."""
    targets = [h for h in _hooks_for(conn, package) if h.wants(event)]
    now = time.time()
    if targets:
        text = body().decode()
        conn.execute(_INSERT_DELIVERY, [
            {"hook_id": h.id, "package": package, "event": event, "body": text, "created_at": now,
             "attempts": 0, "next_attempt_at": now} for h in targets])
    return len(targets)


def _hooks_for(conn: Connection, package: str) -> list[Hook]:
    return [_hook(r) for r in conn.execute(_HOOKS_FOR, {"package": package})]


# Built once: every publish, stage and approval runs them.
_HOOKS_FOR = select(webhooks).where(or_(webhooks.c.package == bindparam("package"), webhooks.c.package.is_(None)))
_INSERT_DELIVERY = insert(webhook_outbox)


@dataclass(frozen=True)
class Delivery:
    id: int
    hook: Hook
    event: str
    body: bytes
    attempts: int
    created_at: float


def anything_due(conn: Connection, now: float) -> bool:
    """A cheap read before leasing: most rounds find nothing, and then take no write lock."""
    return conn.execute(select(webhook_outbox.c.id).where(_pending(), webhook_outbox.c.next_attempt_at <= now)
                        .limit(1)).first() is not None


def _pending():
    return and_(webhook_outbox.c.delivered_at.is_(None), webhook_outbox.c.failed_at.is_(None))


def claim(conn: Connection, owner: str, now: float, lease: float, limit: int) -> list[Delivery]:
    """Lease up to `limit` deliveries that are due, each the oldest pending event of its (hook, package)
    stream, so a stream is delivered in order; the one due longest first (not the oldest event: a
    receiver that never answers would have its retries, due again and again, take every round ahead
    of other hooks' events). The conditional update decides between instances: a row leased by
    another one meanwhile is skipped."""
    earlier = aliased(webhook_outbox)
    blocked = exists().where(earlier.c.hook_id == webhook_outbox.c.hook_id,
                             earlier.c.package == webhook_outbox.c.package, earlier.c.id < webhook_outbox.c.id,
                             earlier.c.delivered_at.is_(None), earlier.c.failed_at.is_(None))
    free = or_(webhook_outbox.c.lease_until.is_(None), webhook_outbox.c.lease_until < now)
    due = conn.execute(select(webhook_outbox.c.id).where(_pending(), webhook_outbox.c.next_attempt_at <= now, free,
                                                         ~blocked)
                       .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.id).limit(limit)).scalars()
    claimed = []
    for row_id in list(due):
        taken = conn.execute(update(webhook_outbox).where(webhook_outbox.c.id == row_id, _pending(), free)
                             .values(lease_owner=owner, lease_until=now + lease)).rowcount
        if taken == 1:
            claimed.append(row_id)
    if not claimed:
        return []
    rows = conn.execute(select(webhook_outbox, webhooks).join(webhooks, webhooks.c.id == webhook_outbox.c.hook_id)
                        .where(webhook_outbox.c.id.in_(claimed)).order_by(webhook_outbox.c.id)).mappings().all()
    return [Delivery(r[webhook_outbox.c.id], Hook(r[webhooks.c.id], r[webhooks.c.package], r[webhooks.c.url],
                                                  tuple(json.loads(r[webhooks.c.events])), r[webhooks.c.secret],
                                                  r[webhooks.c.created_by], r[webhooks.c.created_at]),
                     r[webhook_outbox.c.event], r[webhook_outbox.c.body].encode(), r[webhook_outbox.c.attempts],
                     r[webhook_outbox.c.created_at])
            for r in rows]


def delivered(conn: Connection, delivery_id: int, owner: str) -> bool:
    return conn.execute(update(webhook_outbox).where(webhook_outbox.c.id == delivery_id,
                                                     webhook_outbox.c.lease_owner == owner)
                        .values(delivered_at=time.time(), lease_until=None, lease_owner=None,
                                attempts=webhook_outbox.c.attempts + 1, last_error=None)).rowcount == 1


def failed_attempt(conn: Connection, delivery_id: int, owner: str, error: str, retry_at: float | None) -> bool:
    """Record a failed try: the next one at `retry_at`, or none (None: given up, the stream moves on)."""
    values = {"lease_until": None, "lease_owner": None, "attempts": webhook_outbox.c.attempts + 1,
              "last_error": error[:500]}
    if retry_at is None:
        values["failed_at"] = time.time()
    else:
        values["next_attempt_at"] = retry_at
    return conn.execute(update(webhook_outbox).where(webhook_outbox.c.id == delivery_id,
                                                     webhook_outbox.c.lease_owner == owner)
                        .values(**values)).rowcount == 1


def prune_settled(conn: Connection, before: float) -> int:
    """Forget deliveries settled (delivered or given up) before `before`."""
    return conn.execute(delete(webhook_outbox).where(or_(webhook_outbox.c.delivered_at < before,
                                                         webhook_outbox.c.failed_at < before))).rowcount
