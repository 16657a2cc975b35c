"""`npm access`: a package's visibility and its publishing access (2FA policy)."""

from __future__ import annotations

from ..domain.credentials import Action, MfaPolicy
from ..errors import bad_request
from ..store import audit, registry
from .context import Broker
from .http import Req, json_response
from .packages import package_name, readable_package, writable_package


def visibility(b: Broker, req: Req):
    name = package_name(req)
    pkg = readable_package(b, req, name)
    return json_response({"public": pkg.access == "public"})


def get_access(b: Broker, req: Req):
    name = package_name(req)
    pkg = readable_package(b, req, name)
    return json_response({"access": pkg.access, "mfa": pkg.mfa})


def _policy(body: dict) -> MfaPolicy:
    requires, overrides = body.get("publish_requires_tfa"), body.get("automation_token_overrides_tfa")
    if not isinstance(requires, bool) or not isinstance(overrides, (bool, type(None))):
        raise bad_request("publish_requires_tfa must be true or false")
    if not requires:
        return MfaPolicy.NONE
    return MfaPolicy.AUTOMATION if overrides else MfaPolicy.PUBLISH


def set_access(b: Broker, req: Req):
    name = package_name(req)
    body = req.json_object()
    changes: dict[str, str] = {}
    if "access" in body:
        if body["access"] not in ("public", "restricted"):
            raise bad_request('access must be "public" or "restricted"')
        if body["access"] == "restricted" and not name.scope:
            raise bad_request("only scoped packages can be restricted")
        changes["access"] = body["access"]
    if "publish_requires_tfa" in body:
        changes["mfa"] = _policy(body).value
    if not changes:
        raise bad_request("nothing to change: send access or publish_requires_tfa")
    cred, user, _ = writable_package(b, req, name, Action.PACKAGE_WRITE)
    with b.db.write() as conn:
        registry.touch(conn, name.name, **changes)
        audit.record(conn, "package.access", actor=user.name, package=name.name, auth=cred.kind.value, **changes)
    return json_response({"ok": True, **changes})
