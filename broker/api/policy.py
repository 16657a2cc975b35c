"""A package's approval policy: `GET|POST /-/package/<name>/policy` with `{"requiredApprovals": N}`."""

from __future__ import annotations

from starlette.responses import Response

from ..domain.approvals import PolicyChange
from ..domain.credentials import Action
from ..services import approval_policy
from ..store import staging as stage_store
from .auth import require_account
from .bodies import body_as
from .context import Broker
from .http import Req, json_response
from .lookup import owned_package, package_name, writable_package

POLICY_BODY = 1024  # {"requiredApprovals": 10} and some whitespace


def get_policy(b: Broker, req: Req) -> Response:
    """For the package's maintainers (no OTP: reading the policy changes nothing)."""
    name = package_name(req)
    _, user = require_account(b, req)
    with b.db.read() as conn:
        owned_package(conn, name, user.id, f"only the maintainers of {name} can read its approval policy")
        required = stage_store.required_approvals(conn, name.name)
        maintainers = stage_store.owner_count(conn, name.name)
    return json_response({"requiredApprovals": required, "maintainers": maintainers})


def set_policy(b: Broker, req: Req) -> Response:
    """An owner's logged-in session with 2FA and an OTP, as for `npm access` and `npm owner`."""
    name = package_name(req)
    change = body_as(PolicyChange, req.json_object(), "approval policy")
    _, user = require_account(b, req)
    with b.db.read() as conn:  # before the count check: a stranger learns nothing of the package's owners
        owned_package(conn, name, user.id)
    approval_policy.check(b, name.name, change.required_approvals)  # an unmeetable policy costs no OTP
    cred, user, _ = writable_package(b, req, name, Action.PACKAGE_ADMIN)
    approval_policy.apply(b, name.name, change.required_approvals, actor=user.name, auth=cred.kind.value)
    return json_response({"ok": True, "requiredApprovals": change.required_approvals})
