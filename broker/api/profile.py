"""`npm profile`: the account's profile and its two-factor authentication."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..domain.packument import iso
from ..domain.credentials import Action, Credential, TfaMode, TokenKind, second_factor
from ..errors import bad_request, forbidden, unauthorized
from ..security import totp
from ..store import accounts, audit
from ..store.accounts import User
from .auth import check_otp, enforce, password_matches, recovery_digest, require_account
from .bodies import body_as
from .context import Broker
from .http import Req, json_response

ISSUER = "stagegate"


class TfaSetting(BaseModel):
    """`npm profile enable-2fa|disable-2fa`: the mode wanted, with the account's password."""

    model_config = ConfigDict(extra="ignore")
    mode: Literal["auth-only", "auth-and-writes", "disable"]
    password: str


class ProfileChange(BaseModel):
    """Only two-factor settings change here: a setting, or the one OTP that confirms a new secret."""

    model_config = ConfigDict(extra="forbid")
    tfa: TfaSetting | list[str] = Field(union_mode="left_to_right")


def _profile(user: User) -> dict[str, Any]:
    tfa: Any = {"pending": user.tfa_pending, "mode": user.tfa_mode.value} if user.tfa_mode else False
    return {"name": user.name, "email": user.email, "email_verified": True, "tfa": tfa, "fullname": "",
            "created": iso(user.created_at), "updated": iso(user.updated_at)}


def get_profile(b: Broker, req: Req) -> Response:
    _, user = require_account(b, req)
    return json_response(_profile(user))


def _session_only(cred: Credential) -> None:
    if cred.kind is not TokenKind.SESSION:
        raise forbidden("access tokens cannot change the profile or two-factor settings: "
                        "log in with `npm login` and try again")


def set_profile(b: Broker, req: Req) -> Response:
    cred, user = require_account(b, req)
    _session_only(cred)
    body = req.json_object()
    if set(body) != {"tfa"}:
        raise bad_request("only two-factor authentication settings can be changed on this registry")
    tfa = body_as(ProfileChange, body, "profile change").tfa
    if isinstance(tfa, list):
        return _confirm_tfa(b, user, tfa)
    if not password_matches(b, req, user, tfa.password):
        raise unauthorized("incorrect password", "Basic", code="auth.bad-credentials")
    if tfa.mode == "disable":
        return _disable_tfa(b, user, req)
    mode = TfaMode(tfa.mode)
    if user.tfa_mode and not user.tfa_pending:
        return _change_mode(b, user, mode, req)
    return _start_tfa(b, user, mode)


def _start_tfa(b: Broker, user: User, mode: TfaMode) -> Response:
    secret = totp.new_secret()
    with b.db.write() as conn:
        accounts.set_tfa(conn, user.id, mode, pending=True, sealed_secret=b.box.seal(secret))
    return json_response({"tfa": totp.otpauth_url(secret, user.name, ISSUER)})


def _confirm_tfa(b: Broker, user: User, codes: list[str]) -> Response:
    if not (user.tfa_mode and user.tfa_pending and user.tfa_secret):
        raise bad_request("two-factor authentication is not being set up: run `npm profile enable-2fa` first")
    if len(codes) != 1:
        raise bad_request('confirm two-factor authentication with {"tfa": ["<otp>"]}')
    check_otp(b, user, codes[0], secret=b.box.open(user.tfa_secret))
    recovery = totp.new_recovery_codes()
    with b.db.write() as conn:
        accounts.set_tfa(conn, user.id, user.tfa_mode, pending=False, sealed_secret=user.tfa_secret)
        accounts.replace_recovery_codes(conn, user.id, [recovery_digest(c) for c in recovery])
        audit.record(conn, "tfa.enabled", actor=user.name, mode=user.tfa_mode.value)
    return json_response({"tfa": recovery})


def _change_mode(b: Broker, user: User, mode: TfaMode, req: Req) -> Response:
    enforce(b, user, second_factor(None, user.tfa_mode, Action.ACCOUNT), req.otp)
    with b.db.write() as conn:
        accounts.set_tfa(conn, user.id, mode, pending=False, sealed_secret=user.tfa_secret)
        audit.record(conn, "tfa.mode-changed", actor=user.name, mode=mode.value)
    return json_response({"tfa": {"mode": mode.value, "pending": False}})


def _disable_tfa(b: Broker, user: User, req: Req) -> Response:
    if user.tfa_mode and not user.tfa_pending:
        enforce(b, user, second_factor(None, user.tfa_mode, Action.ACCOUNT), req.otp)
    with b.db.write() as conn:
        accounts.set_tfa(conn, user.id, None, pending=False, sealed_secret=None)
        accounts.replace_recovery_codes(conn, user.id, [])
        # The review page signs in only accounts with 2FA: its sessions end with it.
        ended = accounts.delete_tokens_of_kind(conn, user.id, TokenKind.WEB)
        audit.record(conn, "tfa.disabled", actor=user.name, review_sessions_ended=ended)
    return json_response({"tfa": False})
