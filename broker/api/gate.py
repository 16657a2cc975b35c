"""What a request must show before its body is read: a valid credential allowed on the route.

Reading a body costs the registry memory, disk and a connection; a caller without a credential
gets its 401 (and a wrong credential its 403) while the body is still on the wire.
"""

from __future__ import annotations

from ..domain.credentials import TokenKind
from ..domain.names import InvalidName, parse_package_name, parse_scope_wildcard
from ..domain.trust import PERMISSIONS
from ..errors import bad_request, forbidden
from .auth import TRUST_ONLY, require_login, trust_token_for
from .context import Broker
from .http import Req, Route


def check_before_body(b: Broker, route: Route, req: Req) -> None:
    """401 without a valid credential, 403 when the credential may not call this route for this package."""
    if route.anonymous_body:
        return
    cred = require_login(b, req)
    if cred.kind is TokenKind.TRUST and not route.trust_ok:
        raise forbidden(TRUST_ONLY, code="trust.route-denied")
    if cred.kind is not TokenKind.TRUST and "pkg" in req.params and parse_scope_wildcard(req.params["pkg"]) is not None:
        return  # a scope's relationships (`@scope/*`, api/trust.py): the handler checks the scope's owners
    try:
        package = parse_package_name(req.params["pkg"]).name if "pkg" in req.params else None
    except InvalidName as exc:
        raise bad_request(f"invalid package name {req.params['pkg']!r}: {exc}") from None
    if package is None:
        return
    if cred.kind is TokenKind.TRUST:
        trust_token_for(cred, package)
        if route.trust_permission and route.trust_permission not in cred.trust_permissions:
            needed = route.trust_permission
            raise forbidden(f"OIDC permission denied for this action: the trust relationship of {package} does not "
                            f"allow {PERMISSIONS[needed]} ({needed}): an owner can add a relationship that does",
                            code="trust.permission-denied")
    elif not cred.may_write(package):
        raise forbidden(f"this token cannot write {package}: its packages, scopes or read-only permission exclude it")
