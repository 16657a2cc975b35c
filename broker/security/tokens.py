"""Opaque bearer tokens: random values handed out once, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "sg_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast hash is enough: no dictionary to attack.
    return hashlib.sha256(token.encode()).hexdigest()


def token_display_prefix(token: str) -> str:
    """What `npm token list` shows: enough to recognise a token, too little to use it."""
    return token[:9]
