"""A package's approval policy: `GET|POST /-/package/<name>/policy` with `{"requiredApprovals": N}`."""

from __future__ import annotations

from starlette.responses import Response

from ..domain.approvals import PolicyChange, policy_fits_owners
from ..domain.credentials import Action, Refused
from ..errors import RegistryError, forbidden
from ..store import audit, registry
from ..store import staging as stage_store
from .auth import require_account
from .bodies import body_as
from .context import Broker
from .http import Req, json_response
from .lookup import package_name, package_not_found, writable_package

POLICY_BODY = 1024  # {"requiredApprovals": 10} and some whitespace


def _check_fits(change: PolicyChange, owners: int) -> None:
    fits = policy_fits_owners(change.required_approvals, owners)
    if isinstance(fits, Refused):
        raise RegistryError(409, fits.reason, code=fits.code)


def get_policy(b: Broker, req: Req) -> Response:
    """For the package's maintainers (no OTP: reading the policy changes nothing)."""
    name = package_name(req)
    _, user = require_account(b, req)
    with b.db.read() as conn:
        pkg = registry.package(conn, name.name)
        if pkg is None:
            raise package_not_found(name)
        if not registry.is_owner(conn, name.name, user.id):
            raise forbidden(f"only the maintainers of {name} can read its approval policy")
        required = stage_store.required_approvals(conn, name.name)
        maintainers = stage_store.owner_count(conn, name.name)
    return json_response({"requiredApprovals": required, "maintainers": maintainers})


def set_policy(b: Broker, req: Req) -> Response:
    """An owner's logged-in session with 2FA and an OTP, as for `npm access` and `npm owner`."""
    name = package_name(req)
    change = body_as(PolicyChange, req.json_object(), "approval policy")
    with b.db.read() as conn:  # an unmeetable policy costs no OTP
        _check_fits(change, stage_store.owner_count(conn, name.name))
    cred, user, _ = writable_package(b, req, name, Action.PACKAGE_ADMIN)
    with b.db.write() as conn:
        # Read again in the transaction that sets the policy: a concurrent `npm owner rm` either
        # commits first (and is counted) or after (and the policy was valid when set).
        _check_fits(change, stage_store.owner_count(conn, name.name))
        previous = stage_store.required_approvals(conn, name.name)
        stage_store.set_required_approvals(conn, name.name, change.required_approvals)
        audit.record(conn, "package.policy", actor=user.name, package=name.name, auth=cred.kind.value,
                     required_approvals=change.required_approvals, previous=previous)
    return json_response({"ok": True, "requiredApprovals": change.required_approvals})
