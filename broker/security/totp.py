"""TOTP (RFC 6238) codes for 2FA, with the time step of a match so each can be used once."""

from __future__ import annotations

import base64
import secrets
import time
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

STEP = 30
DIGITS = 6
WINDOW = 1  # accept the previous and the next step for clock drift


def new_secret() -> bytes:
    return secrets.token_bytes(20)


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, DIGITS, SHA1(), STEP, enforce_key_length=False)


def matching_step(secret: bytes, code: str, now: float | None = None) -> int | None:
    """The time step whose code equals `code`, or None. Callers record the step as used."""
    if not (len(code) == DIGITS and code.isdigit()):
        return None
    now = time.time() if now is None else now
    totp = _totp(secret)
    current = int(now // STEP)
    for step in range(current - WINDOW, current + WINDOW + 1):
        try:
            totp.verify(code.encode(), step * STEP)
        except InvalidToken:
            continue
        return step
    return None


def code_at(secret: bytes, when: float) -> str:
    return _totp(secret).generate(when).decode()


def otpauth_url(secret: bytes, account: str, issuer: str) -> str:
    b32 = base64.b32encode(secret).decode().rstrip("=")
    query = urlencode({"secret": b32, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP})
    return f"otpauth://totp/{quote(issuer)}:{quote(account)}?{query}"


def new_recovery_codes(count: int = 5) -> list[str]:
    return [secrets.token_hex(8) for _ in range(count)]
