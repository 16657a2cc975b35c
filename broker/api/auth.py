"""Turning a request's credentials into a Credential, password checks, and the OTP checks of 2FA.

Guessing is bounded here: password checks back off per account and per client address, OTP checks
per account (security/throttle.py has the schedules), and password hashing runs in a few slots.

Username and password (Basic) on an account with 2FA need an `npm-otp` on every request, or get
the OTP challenge. A Basic request checks its code once: a request that changes something (any
method but GET/HEAD) uses the code up, and that check also satisfies the route's own 2FA step; a
read only verifies that the code is valid now (right, in the accepted window), without using it
up. So `npm publish --otp=…` with `_auth` in .npmrc works (npm sends the code on the packument GET
too, then on the PUT), each code still authorises one change, and a code that was seen proves
presence for reads only while it is valid (about 90 s).
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import time
from dataclasses import replace

from .. import metrics
from ..domain.credentials import Allowed, Credential, Decision, OtpRequired, Refused, TokenKind
from ..errors import RegistryError, forbidden, otp_required, unauthorized
from ..security import totp
from ..security.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from ..security.throttle import OTP, PASSWORD_ACCOUNT, PASSWORD_ADDRESS, Busy, Slots, address_key
from ..security.tokens import token_digest
from ..store import accounts, audit
from ..store.accounts import User
from .context import Broker
from .http import Req

LOGIN_HINT = "run `npm login` to get a new token"
TRUST_ONLY = "a trust-issued token may only publish or stage-publish its package"
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Argon2id at 19 MiB keeps a core busy for ~70 ms: more hashes at once than cores only queue.
KDF_SLOTS = Slots(size=max(2, os.cpu_count() or 2), wait=1.0)


_ACCOUNT = "account"  # req.extra: the credential's account, as read when the credential was checked


def credential(b: Broker, req: Req) -> Credential | None:
    """The caller's credential; None without an Authorization header; 401 when it is not valid.

    Worked out once per request, refusals included: a password and an OTP are checked (and
    counted) once, however many times the request asks."""
    if "credential" in req.extra:
        return req.extra["credential"]
    if "credential-error" in req.extra:
        raise req.extra["credential-error"]
    try:
        found = _credential(b, req)
    except RegistryError as exc:
        req.extra["credential-error"] = exc
        raise
    req.extra["credential"] = found
    return found


def _credential(b: Broker, req: Req) -> Credential | None:
    header = req.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return _bearer(b, req, value.strip())
    if scheme.lower() == "basic":
        return _basic(b, req, value.strip())
    raise unauthorized(f"unsupported authorization scheme {scheme!r}: send a Bearer token")


def _bearer(b: Broker, req: Req, token: str) -> Credential:
    client = req.client
    with b.db.read() as conn:
        row, user = accounts.token_with_user(conn, token_digest(token))
    if row is None or (row.user_id is not None and user is None) or row.kind is TokenKind.WEB:
        # A review-page session is not an npm token: it answers like an unknown one.
        raise unauthorized(f"this token is not valid (revoked or never issued): {LOGIN_HINT}", code="auth.invalid-token")
    if row.expires_at is not None and row.expires_at <= time.time():
        raise unauthorized(f"this token expired: {LOGIN_HINT}", code="auth.invalid-token")
    cred = accounts.credential_for(row, user.name if user else None)
    if not cred.allowed_from(client):
        raise RegistryError(401, f"this token may not be used from {client}: its CIDR whitelist is "
                                 f"{', '.join(cred.cidr_whitelist)}", headers={"www-authenticate": "ipaddress"})
    if user is not None:
        req.extra[_ACCOUNT] = user  # read with the token: `require_account` need not read it again
    return cred


def _basic(b: Broker, req: Req, value: str) -> Credential:
    """Username and password; with 2FA on the account, also a valid npm-otp (see the module doc)."""
    try:
        name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text given to b64decode
        raise unauthorized("malformed Basic credentials", "Basic") from None
    user = checked_password(b, req, name, password)
    if user is None:
        raise unauthorized("incorrect username or password", "Basic", code="auth.bad-credentials")
    if user.tfa_mode and not user.tfa_pending:
        if not req.otp:
            raise otp_required("this account has two-factor authentication: a username and password need a "
                               "one-time password from your authenticator too (--otp=<code>)")
        uses_up = req.method not in SAFE_METHODS
        how = check_otp(b, user, req.otp, use_up=uses_up)
        if uses_up:
            req.extra["request-otp"] = (user.id, req.otp, how)
    req.extra[_ACCOUNT] = user
    return Credential(user_id=user.id, username=user.name, kind=TokenKind.SESSION)


def with_request_otp(req: Req, user: User) -> User:
    """The user, marked with the OTP this request already used up for this same account (see `enforce`)."""
    used = req.extra.get("request-otp")
    if used is None or used[0] != user.id:
        return user
    return replace(user, request_otp=used[1:])


def checked_password(b: Broker, req: Req, name: str, password: str) -> User | None:
    """The account `name` if `password` is its password, else None (unknown name or wrong password).

    429 `auth.rate-limited` while the account or the caller's address is backing off, 503
    `auth.busy` when every hashing slot stays taken. An unknown name costs a hash like a known one
    (against a dummy hash), and counts as a failure for the address and the name."""
    account, address, now = name[:214], address_key(req.client), time.time()
    with b.db.read() as conn:  # a guesser who is backing off never gets to take the write lock
        _refuse_while_backing_off(conn, account, address, now)
    with b.db.write(retire_reads=False) as conn:
        accounts.lock_password_buckets(conn, account, address)
        _refuse_while_backing_off(conn, account, address, now)
        check = accounts.reserve_password_check(conn, account, address, now)
        user = accounts.user_by_name(conn, name)
    try:
        matched = KDF_SLOTS.run(verify_password, password, user.password_hash if user else dummy_hash())
        upgraded = KDF_SLOTS.run(hash_password, password) \
            if matched and user and needs_rehash(user.password_hash) else None
    except Busy:
        with b.db.write(retire_reads=False) as conn:
            accounts.release_password_check(conn, check)
        raise RegistryError(503, "the registry is checking too many passwords at once: try again in a few seconds",
                            code="auth.busy", headers={"retry-after": "2"}) from None
    with b.db.write(retire_reads=False) as conn:
        if matched and user:
            accounts.release_password_check(conn, check)
            if upgraded:
                accounts.set_password_hash(conn, user.id, user.password_hash, upgraded)
        else:
            accounts.forget_password_failures(conn, now - max(PASSWORD_ACCOUNT.window, PASSWORD_ADDRESS.window))
    return user if matched else None


def _refuse_while_backing_off(conn, account: str, address: str, now: float) -> None:
    by_account = accounts.password_failures_since(conn, account=account, since=now - PASSWORD_ACCOUNT.window)
    by_address = accounts.password_failures_since(conn, address=address, since=now - PASSWORD_ADDRESS.window)
    wait = max(PASSWORD_ACCOUNT.wait(*by_account, now), PASSWORD_ADDRESS.wait(*by_address, now))
    if wait > 0:
        seconds = math.ceil(wait)
        raise RegistryError(429, f"too many wrong passwords for this account or from this address: try again in "
                                 f"{seconds} s", code="auth.rate-limited", headers={"retry-after": str(seconds)})


def password_matches(b: Broker, req: Req, user: User, password: str) -> bool:
    """Re-check the password of a logged-in account (token create, 2FA changes), rate-limited alike."""
    return checked_password(b, req, user.name, password) is not None


def new_password_hash(password: str) -> str:
    """A hash for a new account, in a hashing slot like every other password hash."""
    try:
        return KDF_SLOTS.run(hash_password, password)
    except Busy:
        raise RegistryError(503, "the registry is hashing too many passwords at once: try again in a few seconds",
                            code="auth.busy", headers={"retry-after": "2"}) from None


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
    user = req.extra.get(_ACCOUNT)
    if user is None or user.id != cred.user_id:
        with b.db.read() as conn:
            user = accounts.user_by_id(conn, cred.user_id)
    if user is None:
        raise unauthorized(f"the account of this token no longer exists: {LOGIN_HINT}")
    return cred, with_request_otp(req, user)


def enforce(b: Broker, user: User, decision: Decision, otp: str | None) -> str | None:
    """Apply a 2FA decision: refuse, challenge for an OTP, or check (and use up) the one given.

    Returns how the second factor was satisfied ("otp", "recovery-code") or None when none was needed.
    A code this request already used up (Basic auth, `User.request_otp`) is not checked twice.
    """
    if isinstance(decision, Allowed):
        return None
    if isinstance(decision, Refused):
        raise forbidden(decision.reason, code=decision.code)
    assert isinstance(decision, OtpRequired)
    if not otp:
        raise otp_required()
    if user.request_otp is not None and user.request_otp[0] == otp:
        return user.request_otp[1]
    return check_otp(b, user, otp)


def check_otp(b: Broker, user: User, otp: str, secret: bytes | None = None, *, use_up: bool = True) -> str:
    """Accept a fresh TOTP code (or a recovery code) once; count, audit and back off on failures.

    The account's OTP checks take turns (a row lock), so concurrent guesses cannot all slip under
    the back-off. `use_up=False` (reads with Basic auth) accepts a TOTP or recovery code that is
    valid now without spending it.
    """
    if secret is None:
        if not user.tfa_secret:
            raise forbidden("two-factor authentication is not enabled on this account")
        secret = b.box.open(user.tfa_secret)
    code, now, outcome = otp.strip().replace(" ", ""), time.time(), None
    with b.db.read() as conn:  # a guesser who is backing off never gets to take the write lock
        _refuse_while_otp_backs_off(conn, user, now)
    with b.db.write(retire_reads=False) as conn:
        accounts.lock_user(conn, user.id)
        failures = _refuse_while_otp_backs_off(conn, user, now)
        step = totp.matching_step(secret, code, now)
        if step is not None and (not use_up or accounts.claim_otp_step(conn, user.id, step)):
            outcome = "otp"
        elif step is None and (accounts.has_recovery_code(conn, user.id, recovery_digest(code)) if not use_up
                               else accounts.consume_recovery_code(conn, user.id, recovery_digest(code))):
            outcome = "recovery-code"
        else:
            accounts.record_otp_failure(conn, user.id, now)
            accounts.forget_old_otp_records(conn, user.id, now - OTP.window)
            audit.record(conn, "otp.failed", actor=user.name, reason="reused" if step is not None else "wrong",
                         failures=failures + 1)
    if outcome is None:
        metrics.otp_failed("reused" if step is not None else "invalid")
        reason = "was already used" if step is not None else "is wrong or expired"
        raise RegistryError(401, f"this one-time password {reason}: wait for the next code from your "
                                 "authenticator and try again", code="otp.invalid", headers={"www-authenticate": "OTP"})
    return outcome


def _refuse_while_otp_backs_off(conn, user: User, now: float) -> int:
    """The account's recent OTP failures; 429 while it must wait before the next check."""
    failures, last = accounts.otp_failures_since(conn, user.id, now - OTP.window)
    wait = OTP.wait(failures, last, now)
    if wait > 0:
        metrics.otp_failed("rate-limited")
        seconds = math.ceil(wait)
        raise RegistryError(429, f"too many wrong one-time passwords on this account: try again in {seconds} s",
                            code="otp.rate-limited", headers={"retry-after": str(seconds)})
    return failures


def recovery_digest(code: str) -> str:
    return hashlib.sha256(b"stagegate-recovery:" + code.lower().encode()).hexdigest()


