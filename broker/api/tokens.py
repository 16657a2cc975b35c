"""`npm token create|list|revoke`: granular access tokens of an account."""

from __future__ import annotations

import ipaddress
import time
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from ..domain.credentials import Action, TokenKind, second_factor
from ..domain.names import InvalidName, parse_package_name
from ..domain.staging import MAX_PAGE
from ..errors import bad_request, forbidden, not_found, unauthorized
from ..security.tokens import new_token, token_digest, token_display_prefix
from ..store import accounts, audit
from ..store.accounts import TokenRow
from .auth import enforce, password_matches, require_account
from .bodies import body_as
from .context import Broker
from .http import Req, json_response
from ..domain.packument import iso

PAGE = 100
MAX_EXPIRY_DAYS = 365


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    packages: list[str] = Field(default_factory=list, max_length=100)
    packages_all: bool = False
    scopes: list[str] = Field(default_factory=list, max_length=100)
    orgs: list[str] = Field(default_factory=list, max_length=100)
    packages_and_scopes_permission: Literal["read-only", "read-write", "no-access"] | None = None
    orgs_permission: Literal["read-only", "read-write", "no-access"] | None = None
    expires: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_DAYS)
    cidr_whitelist: list[str] = Field(default_factory=list, max_length=50)
    bypass_2fa: bool = False
    readonly: bool | None = None

    @field_validator("cidr_whitelist")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.IPv4Network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IPv4 CIDR range") from None
        return value


def _describe(row: TokenRow, with_value: str | None = None) -> dict:
    body = {"token": with_value or row.display, "key": row.id, "name": row.name or "",
            "readonly": row.readonly, "bypass_2fa": row.bypass_2fa, "cidr_whitelist": row.cidr_whitelist,
            "packages": row.packages, "scopes": row.scopes,
            "created": iso(row.created_at), "updated": iso(row.created_at)}
    if row.expires_at is not None:
        body["expires"] = iso(row.expires_at)
    return body


def list_tokens(b: Broker, req: Req) -> Response:
    _, user = require_account(b, req)
    try:
        page = min(MAX_PAGE, max(0, int(req.query.get("page", "0"))))
    except ValueError:
        raise bad_request("page must be a number") from None
    with b.db.read() as conn:
        rows, total = accounts.tokens_of_user(conn, user.id, page * PAGE, PAGE)
    urls = {}
    if (page + 1) * PAGE < total:
        urls["next"] = b.public_url + "-/npm/v1/tokens?" + urlencode({"page": page + 1})
    return json_response({"objects": [_describe(r) for r in rows], "total": total, "urls": urls})


def create_token(b: Broker, req: Req) -> Response:
    cred, user = require_account(b, req)
    if cred.kind is not TokenKind.SESSION:
        raise forbidden("tokens can only be created from a logged-in session: run `npm login` first")
    body = body_as(TokenCreate, req.json_object(), "token request")
    if not password_matches(b, req, user, body.password):
        raise unauthorized("incorrect password", "Basic", code="auth.bad-credentials")
    for name in body.packages:
        try:
            parse_package_name(name)
        except InvalidName as exc:
            raise bad_request(f"--packages {name!r}: {exc}") from None
    enforce(b, user, second_factor(cred, user.tfa_mode, Action.ACCOUNT), req.otp)
    permission = body.packages_and_scopes_permission or "read-only"
    if permission == "no-access":
        raise bad_request("a token with packages-and-scopes-permission no-access could do nothing")
    token = new_token()
    with b.db.write() as conn:
        row = accounts.insert_token(
            conn, digest=token_digest(token), display=token_display_prefix(token), user_id=user.id,
            kind=TokenKind.GRANULAR, name=body.name, description=body.description,
            readonly=permission == "read-only", bypass_2fa=body.bypass_2fa, packages=body.packages,
            scopes=[s if s.startswith("@") else "@" + s for s in body.scopes],
            cidr_whitelist=body.cidr_whitelist,
            expires_at=time.time() + body.expires * 86400 if body.expires else None)
        audit.record(conn, "token.created", actor=user.name, token_id=row.id, readonly=row.readonly,
                     bypass_2fa=row.bypass_2fa, packages=row.packages, scopes=row.scopes)
    headers = {}
    if row.readonly:
        headers["npm-notice"] = ("this token is read-only; create it with "
                                 "--packages-and-scopes-permission read-write to publish with it")
    return json_response(_describe(row, token), headers=headers)


def revoke_token(b: Broker, req: Req) -> Response:
    """DELETE by the token's key (id) or by the token value itself, as the CLI may send either."""
    cred, user = require_account(b, req)
    if cred.kind is not TokenKind.SESSION:
        raise forbidden("tokens can only be revoked from a logged-in session: run `npm login` first")
    ref = req.params["ref"]
    with b.db.read() as conn:
        row = accounts.token_by_digest(conn, token_digest(ref))
        if row is None:
            row = accounts.token_by_id(conn, ref)
    if row is None or row.user_id != user.id:
        raise not_found("no such token on your account: see `npm token list`")
    enforce(b, user, second_factor(cred, user.tfa_mode, Action.ACCOUNT), req.otp)
    with b.db.write() as conn:
        accounts.delete_token(conn, row.id)
        audit.record(conn, "token.revoked", actor=user.name, token_id=row.id)
    return json_response({"ok": True})
