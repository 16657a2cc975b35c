"""The OIDC token exchange: a CI job's JWT in, a short-lived single-package token out.

Four visible steps: verify the JWT → load the package's relationships → match → mint.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from anyio import to_thread

from ..domain.credentials import TokenKind
from ..domain.packument import iso
from ..domain.trust import Match, binding, matching_relationships
from ..errors import RegistryError
from ..oidc.issuers import TrustedIssuer
from ..oidc.verify import (LEEWAY, TemporarilyUnverifiable, TokenRejected, issuer_key, peek, signing_key_id,
                           verify_signed)
from ..security.tokens import new_token, token_digest, token_display_prefix
from ..store import accounts, audit
from ..store import trust as trust_store
from .context import Broker
from .http import Req, json_response
from .lookup import package_name


class ExchangeRefused(RegistryError):
    """A refusal of the exchange (its body has `message` too, which the CLI logs here)."""


async def exchange(b: Broker, req: Req):
    """On the event loop: the verification is a few hundred microseconds of CPU, the writes go to the
    group-commit thread, and only a JWKS fetch (a key not cached yet) goes to a worker thread."""
    name = package_name(req)
    issuer, claims = await _verified_claims(b, req, name.name)
    seen = issuer.provider.seen(claims)

    def mint(conn) -> str:
        match, token = _match_and_mint(b, conn, issuer, claims, name.name)
        audit.record(conn, "oidc.exchange", actor=seen.get("repository"), package=name.name, claims=seen,
                     outcome="granted", relationships=[r.id for r in match.granted],
                     permissions=sorted(match.permissions))
        return token

    try:  # concurrent exchanges share a commit: one fsync for many jobs
        token = await asyncio.wrap_future(b.db.write_grouped(mint))
    except ExchangeRefused as refusal:  # its changes were undone; the refusal is recorded on its own
        await _audit(b, name.name, seen, outcome=f"refused {refusal.status}: {refusal.error}")
        raise
    return json_response({"token": token, "expires": iso(time.time() + b.settings.oidc_token_ttl)}, status=201)


async def _audit(b: Broker, package: str, seen: dict, **detail) -> None:
    def record(conn) -> None:
        audit.record(conn, "oidc.exchange", actor=seen.get("repository"), package=package, claims=seen, **detail)
    await asyncio.wrap_future(b.db.write_grouped(record))


async def _verified_claims(b: Broker, req: Req, package: str):
    scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ExchangeRefused(401, "send the CI job's OIDC token as `Authorization: Bearer <jwt>`")
    token = token.strip()
    unverified_iss = None
    try:
        unverified = peek(token)
        unverified_iss = unverified.payload.get("iss")
        issuer = b.issuers.get(unverified_iss) if isinstance(unverified_iss, str) else None
        if issuer is None:
            raise TokenRejected("the OIDC token's issuer is not one this registry trusts "
                                f"({', '.join(sorted(b.issuers))})")
        kid = signing_key_id(unverified)
        key = issuer.jwks.cached(kid) or await to_thread.run_sync(issuer_key, issuer.jwks, kid)
        claims = verify_signed(token, key, issuer=issuer.issuer, audiences=b.audiences,
                               model=issuer.provider.claims_model)
    except TokenRejected as exc:
        await _audit(b, package, {"issuer": unverified_iss if isinstance(unverified_iss, str) else None},
                     outcome=f"refused 401: {exc}")
        raise ExchangeRefused(401, f"OIDC token exchange error - {exc}") from None
    except TemporarilyUnverifiable as exc:
        raise ExchangeRefused(503, f"OIDC token exchange error - {exc}; try again shortly") from None
    return issuer, claims


def _match_and_mint(b: Broker, conn, issuer: TrustedIssuer, claims, package: str) -> tuple[Match, str]:
    relationships = trust_store.package_relationships(conn, package)
    if relationships is None:
        raise ExchangeRefused(404, "OIDC token exchange error - package not found")
    match = matching_relationships(issuer.provider, claims, relationships)
    if not match.granted:
        raise ExchangeRefused(403, _no_match_message(issuer, claims, package, match, bool(relationships)))
    if not trust_store.claim_jti(conn, issuer.issuer, claims.jti, float(claims.exp)):
        raise ExchangeRefused(401, "OIDC token exchange error - this OIDC token was already exchanged "
                                   "(replayed jti): request a fresh token in the job")
    ids = binding(issuer.provider, claims)
    for relationship in match.granted:
        if not relationship.bound and not trust_store.bind(conn, relationship.id, ids):
            raise ExchangeRefused(403, "OIDC token exchange error - the trust relationship was just bound "
                                       "to another repository id")
    if secrets.randbelow(64) == 0:  # now and then, not on every exchange
        trust_store.forget_expired_jtis(conn, LEEWAY)
    token = new_token()
    accounts.insert_token(conn, digest=token_digest(token), display=token_display_prefix(token), user_id=None,
                          kind=TokenKind.TRUST, name=f"oidc:{claims.repository}", trust_package=package,
                          trust_permissions=sorted(match.permissions),
                          trust_relationships=[r.id for r in match.granted],
                          origin=_origin(issuer.provider.seen(claims)),
                          expires_at=time.time() + b.settings.oidc_token_ttl)
    return match, token


def _origin(seen: dict) -> dict:
    """What a stage made with this token shows its approver about where it was built."""
    keys = ("repository", "workflow_ref", "ref", "sha", "run_id", "run_attempt", "actor", "environment")
    return {k: seen[k] for k in keys if seen.get(k)}


def _no_match_message(issuer: TrustedIssuer, claims, package: str, match: Match, any_relationships: bool) -> str:
    seen = issuer.provider.seen(claims)
    shown = ", ".join(f"{k}={seen[k]!r}" for k in ("repository", "workflow_ref", "environment"))
    if not any_relationships:
        return (f"OIDC token exchange error - {package} has no trust relationships; an owner can add one with "
                f"`npm trust {issuer.provider.type} {package} --repo <owner/repo> --file <workflow.yml> "
                f"--allow-stage-publish`. The token says: {shown}")
    return (f"OIDC token exchange error - no trust relationship of {package} matches this job. The token says: "
            f"{shown}. " + " | ".join(match.reasons))
