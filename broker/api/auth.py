"""Turning a request's credentials into a Credential, and the OTP checks of 2FA."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time

from ..domain.credentials import Allowed, Credential, Decision, OtpRequired, Refused, TokenKind
from ..errors import RegistryError, forbidden, otp_required, unauthorized
from ..security import totp
from ..security.passwords import verify_password
from ..security.tokens import token_digest
from ..store import accounts
from ..store.accounts import User
from .context import Broker
from .http import Req

OTP_FAILURE_LIMIT = 10
OTP_FAILURE_WINDOW = 300.0
LOGIN_HINT = "run `npm login` to get a new token"
TRUST_ONLY = "a trust-issued token may only publish or stage-publish its package"


def credential(b: Broker, req: Req) -> Credential | None:
    """The caller's credential; None without an Authorization header; 401 when it is not valid."""
    if "credential" in req.extra:
        return req.extra["credential"]
    header = req.headers.get("authorization")
    found = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            found = _bearer(b, value.strip(), req.client)
        elif scheme.lower() == "basic":
            found = _basic(b, value.strip())
        else:
            raise unauthorized(f"unsupported authorization scheme {scheme!r}: send a Bearer token")
    req.extra["credential"] = found
    return found


def _bearer(b: Broker, token: str, client: str | None) -> Credential:
    with b.db.read() as conn:
        row = accounts.token_by_digest(conn, token_digest(token))
        user = accounts.user_by_id(conn, row.user_id) if row and row.user_id is not None else None
    if row is None or (row.user_id is not None and user is None):
        raise unauthorized(f"this token is not valid (revoked or never issued): {LOGIN_HINT}")
    if row.expires_at is not None and row.expires_at <= time.time():
        raise unauthorized(f"this token expired: {LOGIN_HINT}")
    cred = accounts.credential_for(row, user.name if user else None)
    if not cred.allowed_from(client):
        raise RegistryError(401, f"this token may not be used from {client}: its CIDR whitelist is "
                                 f"{', '.join(cred.cidr_whitelist)}", headers={"www-authenticate": "ipaddress"})
    return cred


def _basic(b: Broker, value: str) -> Credential:
    try:
        name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise unauthorized("malformed Basic credentials", "Basic") from None
    with b.db.read() as conn:
        user = accounts.user_by_name(conn, name)
    if user is None or not verify_password(password, user.password_hash):
        raise unauthorized("incorrect username or password", "Basic")
    return Credential(user_id=user.id, username=user.name, kind=TokenKind.SESSION)


def refuse_trust_token(b: Broker, req: Req) -> None:
    """403 for a trust-issued token on a route it may not call; other credentials pass untouched."""
    try:
        cred = credential(b, req)
    except RegistryError:
        return  # an invalid credential: the handler refuses it if it needs one
    if cred is not None and cred.kind is TokenKind.TRUST:
        raise forbidden(TRUST_ONLY, code="trust.route-denied")


def trust_token_for(cred: Credential | None, package: str) -> bool:
    """True for a trust token of this package; 403 for a trust token of another package."""
    if cred is None or cred.kind is not TokenKind.TRUST:
        return False
    if cred.trust_package != package:
        raise forbidden(f"{TRUST_ONLY}; this one was minted for {cred.trust_package}", code="trust.wrong-package")
    return True


def require_login(b: Broker, req: Req) -> Credential:
    cred = credential(b, req)
    if cred is None:
        raise unauthorized("you must be logged in to do this: run `npm login`")
    return cred


def require_account(b: Broker, req: Req) -> tuple[Credential, User]:
    """A credential that belongs to a user account (trust tokens do not)."""
    cred = require_login(b, req)
    if cred.user_id is None:
        raise forbidden(TRUST_ONLY, code="trust.route-denied")
    with b.db.read() as conn:
        user = accounts.user_by_id(conn, cred.user_id)
    if user is None:
        raise unauthorized(f"the account of this token no longer exists: {LOGIN_HINT}")
    return cred, user


def enforce(b: Broker, user: User, decision: Decision, otp: str | None) -> str | None:
    """Apply a 2FA decision: refuse, challenge for an OTP, or check (and use up) the one given.

    Returns how the second factor was satisfied ("otp", "recovery-code") or None when none was needed.
    """
    if isinstance(decision, Allowed):
        return None
    if isinstance(decision, Refused):
        raise forbidden(decision.reason, code=decision.code)
    assert isinstance(decision, OtpRequired)
    if not otp:
        raise otp_required()
    return check_otp(b, user, otp)


def check_otp(b: Broker, user: User, otp: str, secret: bytes | None = None) -> str:
    """Accept a fresh TOTP code (or a recovery code) once; count and rate-limit failures."""
    if secret is None:
        if not user.tfa_secret:
            raise forbidden("two-factor authentication is not enabled on this account")
        secret = b.box.open(user.tfa_secret)
    code = otp.strip().replace(" ", "")
    outcome = None
    with b.db.write() as conn:
        if accounts.recent_otp_failures(conn, user.id, OTP_FAILURE_WINDOW) >= OTP_FAILURE_LIMIT:
            raise RegistryError(429, "too many wrong one-time passwords: wait five minutes, then try again")
        step = totp.matching_step(secret, code)
        if step is not None and accounts.claim_otp_step(conn, user.id, step):
            outcome = "otp"
        elif step is None and accounts.consume_recovery_code(conn, user.id, recovery_digest(code)):
            outcome = "recovery-code"
        else:
            accounts.record_otp_failure(conn, user.id)
            accounts.forget_old_otp_records(conn, user.id, time.time() - 3600)
    if outcome is None:
        reason = "was already used" if step is not None else "is wrong or expired"
        raise RegistryError(401, f"this one-time password {reason}: wait for the next code from your "
                                 "authenticator and try again", headers={"www-authenticate": "OTP"})
    return outcome


def recovery_digest(code: str) -> str:
    return hashlib.sha256(b"stagegate-recovery:" + code.lower().encode()).hexdigest()


