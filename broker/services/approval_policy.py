"""Setting a package's approval policy: the one sequence behind `POST /-/package/<name>/policy` and the
review page's form. The caller has checked who the owner is; their OTP is checked between `check`
(an unmeetable policy costs no OTP) and `apply`."""

from __future__ import annotations

from ..api.context import Broker
from ..domain.approvals import policy_fits_owners
from ..domain.credentials import Refused
from ..errors import RegistryError
from ..store import audit
from ..store import staging as stage_store


def _fits(conn, package: str, required: int) -> None:
    fits = policy_fits_owners(required, stage_store.owner_count(conn, package))
    if isinstance(fits, Refused):
        raise RegistryError(409, fits.reason, code=fits.code)


def check(b: Broker, package: str, required: int) -> None:
    with b.db.read() as conn:
        _fits(conn, package, required)


def apply(b: Broker, package: str, required: int, *, actor: str, auth: str) -> int:
    """Set the policy and audit it; the previous value. The owner count is read again in the same
    transaction: a concurrent `npm owner rm` either commits first (and is counted) or after (and the
    policy was meetable when set)."""
    with b.db.write() as conn:
        _fits(conn, package, required)
        previous = stage_store.required_approvals(conn, package)
        stage_store.set_required_approvals(conn, package, required)
        audit.record(conn, "package.policy", actor=actor, package=package, auth=auth,
                     required_approvals=required, previous=previous)
    return previous
