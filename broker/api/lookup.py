"""The package a request names, and whether the caller may read or change it: shared by every
package route family (packages, dist-tags, access, trust, stage, the exchange)."""

from __future__ import annotations

from ..domain.credentials import Action, Credential, MfaPolicy, second_factor
from ..domain.names import InvalidName, PackageName, parse_package_name
from ..errors import RegistryError, bad_request, forbidden, not_found
from ..store import registry
from ..store.accounts import User
from ..store.registry import Package
from .auth import credential, enforce, require_account, trust_token_for
from .context import Broker
from .http import Req


def package_name(req: Req) -> PackageName:
    try:
        return parse_package_name(req.params["pkg"])
    except InvalidName as exc:
        raise bad_request(f"invalid package name {req.params['pkg']!r}: {exc}") from None


def package_not_found(name: PackageName | str) -> RegistryError:
    return not_found(f"package {name} not found", code="package.not-found")


def readable_package(b: Broker, req: Req, name: PackageName) -> Package:
    """The package if the caller may read it; restricted packages look absent to others (404)."""
    trust = trust_token_for(credential(b, req) if req.headers.get("authorization") else None, name.name)
    with b.db.read() as conn:
        pkg = registry.package(conn, name.name)
        if pkg is None:
            raise package_not_found(name)
        if pkg.access == "public" or trust:
            return pkg
        cred = credential(b, req)
        if cred is None or cred.user_id is None or not cred.covers(name.name) or \
                not registry.is_owner(conn, name.name, cred.user_id):
            raise package_not_found(name)
    return pkg


def owned_package(conn, name: PackageName, user_id: int, refusal: str | None = None) -> Package:
    """The package, if `user_id` owns it; a stranger cannot tell a restricted package from a missing one,
    and of a public one is told `refusal`."""
    pkg = registry.package(conn, name.name)
    if pkg is None:
        raise package_not_found(name)
    if not registry.is_owner(conn, name.name, user_id):
        if pkg.access != "public":
            raise package_not_found(name)
        raise forbidden(refusal or f"you do not have permission to change {name}: you are not one of its owners")
    return pkg


def writable_package(b: Broker, req: Req, name: PackageName, action: Action) -> tuple[Credential, User, Package]:
    """The package, the caller and their account, once write access and 2FA are satisfied."""
    cred, user = require_account(b, req)
    with b.db.read() as conn:
        pkg = owned_package(conn, name, user.id)
    if not cred.may_write(name.name):
        raise forbidden(f"this token cannot write {name}: its packages, scopes or read-only permission exclude it")
    enforce(b, user, second_factor(cred, user.tfa_mode, action, MfaPolicy(pkg.mfa), name.name), req.otp)
    return cred, user, pkg
