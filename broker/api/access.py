"""`npm access`: a package's visibility and its publishing access (2FA policy)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator
from starlette.responses import Response

from ..domain.credentials import Action, MfaPolicy
from ..errors import bad_request
from ..store import audit, registry
from .bodies import body_as
from .context import Broker
from .http import Req, json_response
from .lookup import package_name, readable_package, writable_package


class AccessChange(BaseModel):
    """What `npm access set status=…|mfa=…` sends."""

    model_config = ConfigDict(extra="ignore")
    access: Literal["public", "restricted"] | None = None
    publish_requires_tfa: bool | None = None
    automation_token_overrides_tfa: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> "AccessChange":
        if self.access is None and self.publish_requires_tfa is None:
            raise ValueError("nothing to change: send access or publish_requires_tfa")
        return self

    @property
    def policy(self) -> MfaPolicy | None:
        if self.publish_requires_tfa is None:
            return None
        if not self.publish_requires_tfa:
            return MfaPolicy.NONE
        return MfaPolicy.AUTOMATION if self.automation_token_overrides_tfa else MfaPolicy.PUBLISH


def visibility(b: Broker, req: Req) -> Response:
    name = package_name(req)
    pkg = readable_package(b, req, name)
    return json_response({"public": pkg.access == "public"})


def get_access(b: Broker, req: Req) -> Response:
    name = package_name(req)
    pkg = readable_package(b, req, name)
    return json_response({"access": pkg.access, "mfa": pkg.mfa})


def set_access(b: Broker, req: Req) -> Response:
    """Changes who may read or publish: only an owner's logged-in session with 2FA and an OTP."""
    name = package_name(req)
    body = body_as(AccessChange, req.json_object(), "access change")
    if body.access == "restricted" and not name.scope:
        raise bad_request("only scoped packages can be restricted")
    changes: dict[str, str] = {}
    if body.access is not None:
        changes["access"] = body.access
    if body.policy is not None:
        changes["mfa"] = body.policy.value
    cred, user, _ = writable_package(b, req, name, Action.PACKAGE_ADMIN)
    with b.db.write() as conn:
        registry.touch(conn, name.name, **changes)
        audit.record(conn, "package.access", actor=user.name, package=name.name, auth=cred.kind.value, **changes)
    return json_response({"ok": True, **changes})
