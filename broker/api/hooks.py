"""A package's webhooks: `GET|POST /-/package/<name>/hooks`, `DELETE /-/package/<name>/hooks/<id>`.

Owners manage them from a logged-in session with 2FA and an OTP (a hook announces every stage and
publish: it is as sensitive as the package's access). The secret that signs deliveries is shown once,
in the answer that creates the hook; it is stored sealed with the broker's secret key.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection
from starlette.responses import Response

from ..domain.credentials import Action
from ..domain.packument import iso
from ..domain.webhooks import HookRequest, InvalidTarget, check_target
from ..errors import bad_request, conflict, forbidden, not_found
from ..store import audit
from ..store import webhooks as hook_store
from .auth import require_account
from .bodies import body_as
from .context import Broker
from .http import Req, json_response
from .lookup import owned_package, package_name, writable_package

HOOK_BODY = 8 * 1024  # a URL of at most 2 KiB and a list of events
MAX_PER_PACKAGE = 10


def new_hook(b: Broker, conn: Connection, package: str | None, change: HookRequest,
             actor: str | None) -> tuple[hook_store.Hook, str]:
    """Add a hook in the caller's transaction; returns it and its secret (shown once)."""
    url = checked_target(b, change)
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = hook_store.add_hook(conn, package, b.box.seal(url.encode()), change.events, b.box.seal(secret.encode()),
                               actor)
    audit.record(conn, "webhook.created", actor=actor, package=package, id=hook.id, host=_host(url),
                 events=list(hook.events) or "all")
    return hook, secret


def describe(b: Broker, hook: hook_store.Hook, pending: int | None = None, *,
             full_url: bool = True) -> dict[str, Any]:
    """The hook as shown. Without `full_url`, the URL's origin only: a path or query may be a credential
    (Slack's path is), shown in full once, to the owner who made the hook, like the secret."""
    url = b.box.open(hook.sealed_url).decode()
    shown = {"id": hook.id, "package": hook.package, "url": url if full_url else _origin(url),
             "events": list(hook.events) or "all", "createdBy": hook.created_by, "createdAt": iso(hook.created_at)}
    if pending is not None:
        shown["pending"] = pending
    return shown


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def list_hooks(b: Broker, req: Req) -> Response:
    """For the package's maintainers whose credential may write it (no OTP: it changes nothing); each
    hook's URL by its origin only (an automation token that may publish does not learn a Slack URL)."""
    name = package_name(req)
    cred, user = require_account(b, req)
    refusal = f"listing the webhooks of {name} needs write access to it"
    with b.db.read() as conn:
        owned_package(conn, name, user.id, refusal)
        if not cred.may_write(name.name):
            raise forbidden(refusal)
        hooks = hook_store.hooks_of(conn, name.name)
        pending = hook_store.pending_counts(conn, [h.id for h in hooks])
    return json_response([describe(b, h, pending.get(h.id, 0), full_url=False) for h in hooks])


def create_hook(b: Broker, req: Req) -> Response:
    name = package_name(req)
    change = body_as(HookRequest, req.json_object(), "webhook")
    checked_target(b, change)  # a bad URL costs no OTP
    _, user, _ = writable_package(b, req, name, Action.PACKAGE_ADMIN)
    with b.db.write() as conn:
        if hook_store.hook_count(conn, name.name) >= MAX_PER_PACKAGE:
            raise conflict(f"{name} has {MAX_PER_PACKAGE} webhooks, the most a package may have: delete one first",
                           code="hook.limit")
        hook, secret = new_hook(b, conn, name.name, change, user.name)
    return json_response({**describe(b, hook), "secret": secret}, status=201)


def checked_target(b: Broker, change: HookRequest) -> str:
    """The hook's URL, or a 400 (checked before the OTP too: a bad URL costs none)."""
    try:
        return check_target(change.url, b.settings.webhook_allow_private)
    except InvalidTarget as exc:
        raise bad_request(f"invalid webhook URL: {exc}", code="hook.invalid-url") from None


def delete_hook(b: Broker, req: Req) -> Response:
    name = package_name(req)
    _, user, _ = writable_package(b, req, name, Action.PACKAGE_ADMIN)
    hook_id = req.params["id"]
    with b.db.write() as conn:
        if not hook_store.remove_hook(conn, name.name, hook_id):
            raise not_found(f"{name} has no webhook {hook_id}: see GET /-/package/{name}/hooks", code="hook.not-found")
        audit.record(conn, "webhook.deleted", actor=user.name, package=name.name, id=hook_id)
    return json_response({"ok": True})
