"""Putting an event in the webhook outbox, in the transaction of the event itself.

Each place an event happens calls `enqueue(conn, event, package, actor, **data)` inside its write
transaction: the event and its deliveries commit together or not at all, so a crash can neither
lose a committed event nor announce one that rolled back. Delivery is `services/delivery.py`'s job.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import Connection

from ..domain.credentials import Credential
from ..domain.packument import iso
from ..domain.publish import PublishRequest
from ..domain.webhooks import EVENTS, event_text
from ..store import webhooks as hook_store


def event_body(event: str, package: str, actor: str | None, data: dict[str, Any], at: float | None = None) -> bytes:
    """The JSON document every hook of the event receives, byte for byte (what the signature covers)."""
    document = {"id": str(uuid.uuid4()), "event": event, "time": iso(at or time.time()), "package": package,
                "actor": actor, "text": event_text(event, package, actor, data),
                "data": {k: v for k, v in data.items() if v is not None}}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def enqueue(conn: Connection, event: str, package: str, actor: str | None, **data: Any) -> int:
    """An outbox row for each hook (of the package, and of the registry) that wants `event`."""
    assert event in EVENTS, event
    at = time.time()  # the event's time, not the moment a hook makes its body
    return hook_store.enqueue(conn, package, event, lambda: event_body(event, package, actor, data, at))


def version_committed(conn: Connection, request: PublishRequest, cred: Credential, state: str) -> None:
    """`npm publish` committed a version (a stage is announced by its own route, `stage.created`)."""
    if state == "published":
        actor = cred.username or cred.origin.get("repository")
        enqueue(conn, "package.published", request.package.name, actor, version=request.version, tag=request.tag,
                auth=cred.kind.value)
