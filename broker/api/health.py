"""/-/ping (cheap: the process answers) and /-/healthz (this instance reaches its database and blob store)."""

from __future__ import annotations

import logging

from sqlalchemy import text
from starlette.responses import Response

from .context import Broker
from .http import Req, json_response

log = logging.getLogger("stagegate")


def ping(b: Broker, req: Req) -> Response:
    return json_response({})


def healthz(b: Broker, req: Req) -> Response:
    checks = {}
    try:
        with b.db.read() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure is the answer here, logged with its cause
        log.warning("health check: database: %s", exc)
        checks["database"] = "unreachable"
    try:
        b.blobs.check()
        checks["blobs"] = "ok"
    except Exception as exc:
        log.warning("health check: blobs: %s", exc)
        checks["blobs"] = "unreachable"
    healthy = all(v == "ok" for v in checks.values())
    return json_response({"ok": healthy, **checks}, status=200 if healthy else 503)
