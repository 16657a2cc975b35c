"""The OIDC exchange's floor, measured in-process: one PyJWT RS256 verification plus the same
database writes the exchange makes (jti, token, audit record) in one transaction."""

from __future__ import annotations

import time
from pathlib import Path

import jwt

from broker.domain.credentials import TokenKind
from broker.security.tokens import new_token, token_digest, token_display_prefix
from broker.store import accounts, audit, schema
from broker.store import trust as trust_store
from broker.store.db import Database


def exchange_floor(workdir: Path, tokens: list[str], public_key, issuer: str, audience: str,
                   warmup: int = 0) -> float:
    """Exchanges per second, sequentially, with nothing but the essential work (the first `warmup`
    tokens are spent untimed, as the broker's are)."""
    db = Database(f"sqlite:///{workdir / 'floor.db'}")
    schema.upgrade(db)
    for token in tokens[:warmup]:
        _essential(db, token, public_key, issuer, audience)
    tokens = tokens[warmup:]
    started = time.perf_counter()
    for token in tokens:
        _essential(db, token, public_key, issuer, audience)
    elapsed = time.perf_counter() - started
    db.dispose()
    return len(tokens) / elapsed


def _essential(db: Database, token: str, public_key, issuer: str, audience: str) -> None:
    claims = jwt.decode(token, public_key, algorithms=["RS256"], audience=audience, issuer=issuer, leeway=60,
                        options={"require": ["exp", "iat", "iss", "aud", "jti"]})
    with db.write() as conn:
        trust_store.claim_jti(conn, issuer, claims["jti"], float(claims["exp"]))
        value = new_token()
        accounts.insert_token(conn, digest=token_digest(value), display=token_display_prefix(value),
                              user_id=None, kind=TokenKind.TRUST, trust_package="pkg",
                              trust_permissions=["createStagedPackage"], expires_at=time.time() + 900)
        audit.record(conn, "oidc.exchange", actor=claims["repository"], package="pkg", outcome="granted")
