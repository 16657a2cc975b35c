"""The OIDC token exchange: a CI job's JWT in, a short-lived single-package token out.

Four visible steps: verify the JWT → spend it → decide (match the package's relationships) → mint.
A refusal tells the caller only what its own token presents and which checks failed; the comparison
with what the relationships expect goes to the audit log, for the package's owners. The verify and
decide steps are shared with the dry run (api/verify.py), which spends and mints nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
import time
from collections import Counter
from dataclasses import asdict

from starlette.responses import Response

from .. import metrics
from ..domain.credentials import TokenKind
from ..domain.packument import iso
from ..domain.policy import policy_refusal
from ..domain.trust import Match, binding, matching_relationships, missing_required_claims, unknown_claims
from ..errors import RegistryError
from ..oidc.issuers import TrustedIssuer
from ..oidc.verify import (LEEWAY, TemporarilyUnverifiable, TokenRejected, issuer_key, peek, signing_key_id,
                           verify_signed)
from ..security.tokens import new_token, token_digest, token_display_prefix
from ..store import accounts, audit
from ..store import trust as trust_store
from ..store.trust import PackageTrust
from .context import Broker
from .http import Req, json_response
from .lookup import package_name

log = logging.getLogger("stagegate")

UNVERIFIED_FLUSH_SECONDS = 60.0


class ExchangeRefused(RegistryError):
    """A refusal of the exchange (its body has `message` too, which the CLI logs here)."""

    def __init__(self, status: int, error: str, *, code: str) -> None:
        super().__init__(status, f"OIDC token exchange error - {error}", code=code)


def _package_not_found() -> ExchangeRefused:
    # Also the answer for a restricted package that no relationship matches: a stranger cannot tell
    # a restricted package from a missing one.
    return ExchangeRefused(404, "package not found", code="package.not-found")


class RefusalTally:
    """Refusals before a signature verified, counted by (issuer, reason) and handed out for the audit
    log at most once per interval: anyone can send junk, nobody can make the broker write a row each."""

    def __init__(self, interval: float = UNVERIFIED_FLUSH_SECONDS) -> None:
        self.interval = interval
        self._counts: Counter[str] = Counter()
        self._flushed_at = float("-inf")
        self._lock = threading.Lock()

    def add(self, issuer: str, reason: str) -> dict[str, int] | None:
        """The counts to record now (this refusal included), or None until the interval has passed."""
        with self._lock:
            self._counts[f"{issuer} {reason}"] += 1
            now = time.monotonic()
            if now - self._flushed_at < self.interval:
                return None
            self._flushed_at = now
            counts, self._counts = dict(self._counts), Counter()
            return counts


_UNVERIFIED = RefusalTally()
_REPORTED_CLAIMS: set[str] = set()


async def exchange(b: Broker, req: Req) -> Response:
    """On the event loop: the verification is a few hundred microseconds of CPU, the writes go to the
    group-commit thread, and only a JWKS fetch (a key not cached yet) goes to the cache's own thread."""
    try:
        response = await _exchange(b, req)
    except RegistryError as exc:
        metrics.exchange_refused(exc.code)
        raise
    metrics.exchange_granted()
    return response


async def _exchange(b: Broker, req: Req) -> Response:
    name = package_name(req)
    issuer, claims = await verified_claims(b, bearer_jwt(req))
    report_unknown_claims(issuer, claims)
    # A refusal is returned, not raised: the transaction then commits, spending the token (see _spend).
    outcome = await asyncio.wrap_future(b.db.write_grouped(lambda conn: _spend(b, conn, issuer, claims, name.name)))
    if isinstance(outcome, ExchangeRefused):
        raise outcome
    return json_response({"token": outcome, "expires": iso(time.time() + b.settings.oidc_token_ttl)}, status=201)


def bearer_jwt(req: Req) -> str:
    scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ExchangeRefused(401, "send the CI job's OIDC token as `Authorization: Bearer <jwt>`",
                              code="oidc.missing-token")
    return token.strip()


async def verified_claims(b: Broker, token: str):
    """The issuer and the typed claims of a JWT whose signature, issuer, audience and times verify."""
    issuer: TrustedIssuer | None = None
    try:
        unverified = peek(token)
        issuer = await b.issuers.resolve(unverified.payload.get("iss"))
        if issuer is None:
            # Which ones it trusts is not said: STAGEGATE_OIDC_ISSUERS names the operator's own (a GitHub
            # Enterprise Server's, a self-managed GitLab's), often internal hosts, and anyone can ask.
            raise TokenRejected("the OIDC token's issuer is not one this registry trusts (its operator "
                                "decides which)", "untrusted-issuer")
        key = await issuer_key(issuer.jwks, signing_key_id(unverified))
        claims = verify_signed(token, key, issuer=issuer.issuer, audiences=b.audiences,
                               model=issuer.provider.claims_model)
    except TokenRejected as exc:
        await _count_unverified(b, issuer.issuer if issuer else "untrusted", exc.reason)
        code = "oidc.untrusted-issuer" if exc.reason == "untrusted-issuer" else "oidc.invalid-token"
        raise ExchangeRefused(401, str(exc), code=code) from None
    except TemporarilyUnverifiable as exc:
        raise ExchangeRefused(503, f"{exc}; try again shortly", code="oidc.unavailable") from None
    return issuer, claims


async def _count_unverified(b: Broker, issuer: str, reason: str) -> None:
    counts = _UNVERIFIED.add(issuer, reason)
    if counts is None:
        return

    def record(conn) -> None:
        audit.record(conn, "oidc.refused-unverified", actor=None, counts=counts,
                     since_seconds=_UNVERIFIED.interval)
    await asyncio.wrap_future(b.db.write_grouped(record))


def report_unknown_claims(issuer: TrustedIssuer, claims) -> None:
    """Claims the provider does not account for are logged, by name only and once per process."""
    new = [n for n in unknown_claims(issuer.provider, (claims.model_extra or {}).keys()) if n not in _REPORTED_CLAIMS]
    if new and len(_REPORTED_CLAIMS) < 1000:
        _REPORTED_CLAIMS.update(new)
        log.warning("OIDC tokens of %s carry claims that no trust check accounts for (not checked): %s",
                     issuer.issuer, ", ".join(sorted(n[:64] for n in new[:20])))


def _spend(b: Broker, conn, issuer: TrustedIssuer, claims, package: str) -> str | ExchangeRefused:
    """Spend the token, then decide; the audit row records the outcome in the same transaction.

    A token is exchanged at most once per package, and a refusal spends it for every package: a GitLab
    or CircleCI job hands npm one ID token for the whole job, which `npm publish --workspaces` exchanges
    once per package, while a stolen or misdirected token still cannot probe one package after another."""
    seen = issuer.provider.seen(claims)
    detail: dict = {}
    expires = float(claims.exp)
    if trust_store.jti_spent(conn, issuer.issuer, claims.jti) or \
            not trust_store.claim_jti(conn, issuer.issuer, per_package_jti(claims.jti, package), expires):
        outcome: str | ExchangeRefused = ExchangeRefused(
            401, "this OIDC token was already exchanged (replayed jti): request a fresh token in the job",
            code="oidc.replayed")
    else:
        decided, detail = decide(conn, issuer, claims, package)
        outcome = decided if isinstance(decided, ExchangeRefused) else _grant(b, conn, issuer, claims, package,
                                                                               decided, detail)
        if isinstance(outcome, ExchangeRefused):
            trust_store.claim_jti(conn, issuer.issuer, claims.jti, expires)  # spent for every package
    if secrets.randbelow(64) == 0:  # now and then, not on every exchange
        trust_store.forget_expired_jtis(conn, LEEWAY)
    result = "granted" if isinstance(outcome, str) else f"refused {outcome.status}: {outcome.error}"
    audit.record(conn, "oidc.exchange", actor=issuer.provider.subject(claims), package=package, claims=seen,
                 outcome=result, **detail)
    return outcome


def per_package_jti(jti: str, package: str) -> str:
    """The replay key of one package's exchange of a token (the token's own jti spends it everywhere)."""
    return "package:" + hashlib.sha256(f"{jti}\n{package}".encode()).hexdigest()


def decide(conn, issuer: TrustedIssuer, claims, package: str) -> tuple[Match | ExchangeRefused, dict]:
    """The relationships that grant this token the package, or the refusal; and what the audit row says
    about it (owners only). Reads only: the dry run (api/verify.py) decides exactly as the exchange."""
    missing = missing_required_claims(issuer.provider, claims)
    if missing:
        return ExchangeRefused(401, f"the OIDC token has no {', '.join(missing)} claim",
                               code="oidc.invalid-token"), {}
    refused = policy_refusal(issuer.provider.type, claims, issuer)  # the registry's policy, before any package's
    if refused is not None:
        return ExchangeRefused(403, refused.message, code=refused.code), {"policy": refused.code}
    trust = trust_store.trust_for(conn, package)  # the package's relationships, then its scope's
    if trust is None:
        return _package_not_found(), {}
    match = matching_relationships(issuer.provider, claims, trust.relationships)
    detail = {"mismatches": [asdict(m) for m in match.mismatches]}
    if not match.granted:
        return _no_match(issuer, claims, package, match, trust), detail
    return match, detail


def _grant(b: Broker, conn, issuer: TrustedIssuer, claims, package: str, match: Match,
           detail: dict) -> str | ExchangeRefused:
    """Bind the relationships used for the first time, then mint; `detail` gains what was granted."""
    if not _bound(conn, issuer, claims, match):
        return ExchangeRefused(403, "the trust relationship was just bound to another repository id",
                               code="oidc.no-match")
    detail.update(relationships=[r.id for r in match.granted], permissions=sorted(match.permissions))
    return _mint(b, conn, issuer, claims, package, match)


def _bound(conn, issuer: TrustedIssuer, claims, match: Match) -> bool:
    """Pin the repository ids of relationships used for the first time; all or none (a savepoint)."""
    unbound = [r for r in match.granted if not r.bound]
    if not unbound:
        return True
    ids = binding(issuer.provider, claims)
    with conn.begin_nested() as savepoint:
        if all(trust_store.bind_relationship(conn, r, ids) for r in unbound):
            return True
        savepoint.rollback()
    return False


def _mint(b: Broker, conn, issuer: TrustedIssuer, claims, package: str, match: Match) -> str:
    token = new_token()
    accounts.insert_token(conn, digest=token_digest(token), display=token_display_prefix(token), user_id=None,
                          kind=TokenKind.TRUST, name=f"oidc:{issuer.provider.subject(claims)}", trust_package=package,
                          trust_permissions=sorted(match.permissions),
                          trust_relationships=[r.id for r in match.granted],
                          origin=issuer.provider.origin(claims),
                          expires_at=time.time() + b.settings.oidc_token_ttl)
    return token


def _no_match(issuer: TrustedIssuer, claims, package: str, match: Match, trust: PackageTrust) -> ExchangeRefused:
    """Names what the caller's own token presents and which checks failed; never what is expected."""
    if trust.access != "public":
        return _package_not_found()
    failed = match.failed_claims
    shown = dict.fromkeys([*issuer.provider.shown_claims, *failed])
    presented = ", ".join(f"{k}={getattr(claims, k, None)!r}" for k in shown)
    if not failed:  # no relationship of this provider and issuer
        kind = issuer.provider.type
        other_issuers = any(r.provider == kind for r in trust.relationships)
        jobs = f"{kind} jobs of {issuer.issuer}" if other_issuers else f"{kind} jobs"
        return ExchangeRefused(403, f"{package} has no trust relationships for {jobs}; an owner can add one "
                               f"with `npm trust {kind} {package} {issuer.provider.create_hint} "
                               f"--allow-stage-publish`. The token presents: {presented}",
                               code="oidc.no-relationships")
    return ExchangeRefused(403, f"no trust relationship of {package} matches this token: the "
                           f"{', '.join(failed)} check{'s' if len(failed) > 1 else ''} failed. The token "
                           f"presents: {presented}. The package's owners can see the full comparison in the "
                           "registry's audit log.", code="oidc.no-match")
