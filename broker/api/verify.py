"""The exchange's dry run: would this CI job's JWT get a token for the package, and with what rights?

`POST /-/npm/v1/oidc/token/verify/package/<name>` verifies and decides exactly as the exchange does
(api/oidc.py: `verified_claims`, `decide`) but spends no `jti`, binds no repository id, mints nothing.

- A CI job sends its JWT as `Authorization: Bearer <jwt>`, no body: it learns the permissions it
  would get, or the exchange's own refusal (same status, code and sentence: a restricted package
  answers like a missing one, and only the caller's own claims are quoted). Nothing is written. As
  the JWT stays valid, each one may be verified at most `MAX_VERIFICATIONS_PER_TOKEN` times.
- An owner of the package (a session token and an OTP, as for changing the relationships) posts a
  JWT in the body, `{"token": "<jwt>"}`, and gets the full comparison per relationship: each failed
  check with what the relationship expects and what the token shows. The comparison is audited.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import Any

from anyio import to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..domain.credentials import Action
from ..domain.names import PackageName
from ..domain.trust import Match, TrustRelationship, matching_relationships
from ..errors import RegistryError
from ..oidc.issuers import TrustedIssuer
from ..oidc.verify import MAX_TOKEN_BYTES
from ..store import audit
from ..store import trust as trust_store
from .bodies import body_as
from .context import Broker
from .http import KIB, Req, json_response
from .lookup import package_name, writable_package
from .oidc import ExchangeRefused, bearer_jwt, decide, report_unknown_claims, verified_claims
from .trust import describe

MAX_VERIFICATIONS_PER_TOKEN = 10
OWNER_BODY = MAX_TOKEN_BYTES + KIB  # one JWT and its JSON wrapping


class VerifyBudget:
    """How many times each verified JWT (issuer, jti) was dry-run. Counted only after the signature
    verified, so junk cannot fill it; bounded, forgetting the oldest first (pushing an entry out takes
    that many valid tokens of a trusted issuer: a CI job can ask for many, so the bound is on memory,
    not on how often one job may check)."""

    def __init__(self, per_token: int = MAX_VERIFICATIONS_PER_TOKEN, size: int = 10_000) -> None:
        self.per_token, self.size = per_token, size
        self._uses: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def spend(self, issuer: str, jti: str) -> bool:
        """False once this token has been verified `per_token` times."""
        key = (issuer, jti)
        with self._lock:
            uses = self._uses.get(key, 0)
            if uses >= self.per_token:
                return False
            self._uses[key] = uses + 1
            if len(self._uses) > self.size:
                self._uses.popitem(last=False)
            return True


_BUDGET = VerifyBudget()


class OwnerVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=MAX_TOKEN_BYTES)


async def verify(b: Broker, req: Req) -> Response:
    name = package_name(req)
    if req.body:  # the body gate let it through: a valid credential was shown (app.py, api/gate.py)
        return await _owner_comparison(b, req, name)
    issuer, claims = await verified_claims(b, bearer_jwt(req))
    if not _BUDGET.spend(issuer.issuer, claims.jti):
        raise RegistryError(429, f"this OIDC token was already verified {_BUDGET.per_token} times: request a fresh "
                                 "token in the job", code="oidc.verify-limit")
    report_unknown_claims(issuer, claims)

    def decided():
        with b.db.read() as conn:
            return decide(conn, issuer, claims, name.name)[0]
    outcome = await to_thread.run_sync(decided)
    if isinstance(outcome, ExchangeRefused):
        raise outcome
    return json_response({"ok": True, "package": name.name, "permissions": sorted(outcome.permissions)})


async def _owner_comparison(b: Broker, req: Req, name: PackageName) -> Response:
    jwt = body_as(OwnerVerify, req.json(), "verify request").token
    cred, user, _ = await to_thread.run_sync(writable_package, b, req, name, Action.TRUST_VERIFY)
    issuer, claims = await verified_claims(b, jwt)

    def compare(conn) -> dict[str, Any]:
        outcome, _ = decide(conn, issuer, claims, name.name)
        found = trust_store.trust_for(conn, name.name)
        relationships = found.relationships if found else []
        answer = comparison(issuer, claims, name.name, outcome,
                            matching_relationships(issuer.provider, claims, relationships), relationships)
        audit.record(conn, "oidc.verify", actor=user.name, package=name.name, auth=cred.kind.value,
                     claims=answer["claims"],
                     outcome="granted" if answer["ok"] else f"refused {outcome.status}: {outcome.error}",
                     mismatches=[m for r in answer["relationships"] for m in r["mismatches"]])
        return answer
    return json_response(await asyncio.wrap_future(b.db.write_grouped(compare)))


def comparison(issuer: TrustedIssuer, claims, package: str, outcome: Match | ExchangeRefused, match: Match,
               relationships: list[TrustRelationship]) -> dict[str, Any]:
    """For an owner: what the token shows, the exchange's answer, and each relationship's failed checks
    (expected vs seen). Relationships of another CI provider are listed as not tried."""
    granted = {r.id for r in match.granted} if isinstance(outcome, Match) else set()
    rows = []
    for relationship in relationships:
        rows.append({**describe(relationship), "tried": relationship.provider == issuer.provider.type,
                     "matches": relationship.id in granted,
                     "mismatches": [{"claim": m.claim, "presented": m.presented, "detail": m.detail}
                                    for m in match.mismatches if m.relationship == relationship.id]})
    answer: dict[str, Any] = {"ok": isinstance(outcome, Match), "package": package, "provider": issuer.provider.type,
                              "claims": issuer.provider.seen(claims), "relationships": rows}
    if isinstance(outcome, Match):
        answer["permissions"] = sorted(outcome.permissions)
    else:
        answer["refusal"] = {"status": outcome.status, "code": outcome.code, "error": outcome.error}
    return answer
