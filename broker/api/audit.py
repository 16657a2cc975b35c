"""A package's security history for its owners (`GET /-/package/<name>/audit`), and the retention
task that prunes the audit log."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from anyio import to_thread
from starlette.responses import Response

from ..domain.audit import AuditFilter, InvalidFilter, event_filter, instant, may_read_history
from ..domain.staging import page_of
from ..errors import bad_request, not_found
from ..store import audit as audit_store
from ..store import registry
from .auth import enforce, require_account
from .context import Broker
from .http import Req, json_response
from .lookup import package_name

log = logging.getLogger("stagegate")

PRUNE_EVERY = 3600.0  # seconds between two prunings of one instance (± 10%, so instances spread out)


def history_filter(req: Req, package: str | None) -> AuditFilter:
    try:
        return AuditFilter(package=package, event=event_filter(req.query.get("event")),
                           since=instant(req.query.get("since"), "since"),
                           until=instant(req.query.get("until"), "until"))
    except InvalidFilter as exc:
        raise bad_request(str(exc)) from None


def package_history(b: Broker, req: Req) -> Response:
    """Newest first, `page`/`perPage` as `/-/stage`; for owners with 2FA, an OTP every time."""
    name = package_name(req)
    cred, user = require_account(b, req)  # a trust token was refused before this (the route is not trust_ok)
    where = history_filter(req, name.name)  # a bad filter costs no OTP
    with b.db.read() as conn:
        pkg = registry.package(conn, name.name)
        owner = pkg is not None and registry.is_owner(conn, name.name, user.id)
    if pkg is None or (pkg.access != "public" and not (owner and cred.covers(name.name))):
        raise not_found(f"package {name} not found")  # a restricted package looks absent to others
    enforce(b, user, may_read_history(cred, user.tfa_mode, name.name, owner), req.otp)
    page = page_of(req.query.get("page"), req.query.get("perPage"))
    with b.db.read() as conn:
        entries, total = audit_store.page(conn, where, page.offset, page.size)
    return json_response({"items": [entry.wire() for entry in entries], "total": total})


# --- retention ------------------------------------------------------------------------------------

def prune_expired(b: Broker, now: float | None = None) -> int:
    """Delete the entries older than STAGEGATE_AUDIT_RETENTION_DAYS (none when unset), in short batches."""
    days = b.settings.audit_retention_days
    if days is None:
        return 0
    before = (now or time.time()) - days * 86400
    pruned = 0
    while True:
        with b.db.write() as conn:
            deleted = audit_store.prune(conn, before)
        pruned += deleted
        if deleted < audit_store.PRUNE_BATCH:
            return pruned


async def keep_pruned(b: Broker) -> None:
    """At start, then about hourly: every instance prunes, and pruning twice deletes nothing twice."""
    if b.settings.audit_retention_days is None:
        return
    while True:
        try:
            pruned = await to_thread.run_sync(prune_expired, b)
            if pruned:
                log.info("audit log: pruned %d entries older than %d days", pruned, b.settings.audit_retention_days)
        except Exception:  # the database may be away for a while: try again next round, say so now
            log.exception("audit log: pruning failed; trying again in about an hour")
        await asyncio.sleep(PRUNE_EVERY * random.uniform(0.9, 1.1))
