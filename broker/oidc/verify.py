"""Verifying an OIDC JWT: allow-listed algorithm, the issuer's key, iss, aud, times, jti.

The result is a typed claims object; nothing downstream touches the raw JWT.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from jwt import PyJWK
from pydantic import BaseModel, ValidationError

from .jwks import JwksCache, JwksUnavailable

ALGORITHMS = ("RS256",)  # asymmetric only: none, HS* and friends never reach a key
LEEWAY = 60
MAX_TOKEN_BYTES = 16 * 1024

Claims = TypeVar("Claims", bound=BaseModel)


class TokenRejected(Exception):
    """The JWT is not acceptable; the message says why, without echoing the token. `reason` is a
    short stable name of the cause (for counting refusals without storing attacker-chosen text)."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class TemporarilyUnverifiable(Exception):
    """The issuer's keys could not be fetched: not the caller's fault."""


@dataclass(frozen=True)
class Unverified:
    """A JWT's header and claims before any check: only for choosing the issuer and its key."""

    header: dict[str, Any]
    payload: dict[str, Any]


def peek(token: str) -> Unverified:
    """Read a JWT's header and claims without trusting them: enough to pick the issuer and its key.

    Plain base64 and JSON (PyJWT's own parse checks every character in Python and would run twice
    per exchange); `verify_signed` then has PyJWT parse and check the whole token strictly."""
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise TokenRejected("the OIDC token is not a JWT", "not-a-jwt")
    header, payload, _ = token.split(".")
    try:
        parts = [json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in (header, payload)]
    except (ValueError, binascii.Error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TokenRejected("the OIDC token is not a JWT", "not-a-jwt") from None
    if not all(isinstance(part, dict) for part in parts):
        raise TokenRejected("the OIDC token is not a JWT", "not-a-jwt")
    return Unverified(*parts)


def signing_key_id(unverified: Unverified) -> str:
    """The kid of an acceptable algorithm's key, before any key is touched."""
    alg, kid = unverified.header.get("alg"), unverified.header.get("kid")
    if alg not in ALGORITHMS:
        raise TokenRejected(f"the OIDC token is signed with {alg!r}; only {', '.join(ALGORITHMS)} is accepted",
                            "algorithm")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("the OIDC token names no signing key (kid)", "no-kid")
    return kid


async def issuer_key(jwks: JwksCache, kid: str) -> PyJWK:
    """The issuer's key `kid`. Waits (without a thread of its own) for the one fetch of the issuer's
    keys that `kid` needs, if any: a kid unknown since a recent fetch is refused at once."""
    key = jwks.cached(kid)
    if key is not None:
        return key
    pending = jwks.fetch_for(kid)
    if pending is not None:
        try:
            await asyncio.wrap_future(pending)
        except JwksUnavailable as exc:
            raise TemporarilyUnverifiable(str(exc)) from None
    key = jwks.known(kid)
    if key is None:
        raise TokenRejected(f"the OIDC token is signed with a key ({kid}) the issuer does not publish",
                            "unknown-key")
    return key


def verify_signed(token: str, key: PyJWK, *, issuer: str, audiences: list[str], model: type[Claims]) -> Claims:
    """PyJWT checks the signature with `key`, then iss, aud and the times; the claims become `model`.
    A jti is required unless the model derives its own (`derives_jti`: CircleCI writes none)."""
    derives_jti = getattr(model, "derives_jti", False)
    required = ["exp", "iat", "iss", "aud"] + ([] if derives_jti else ["jti"])
    try:
        payload = jwt.decode(
            token, key.key, algorithms=list(ALGORITHMS), audience=audiences, issuer=issuer, leeway=LEEWAY,
            options={"require": required, "verify_signature": True})
    except jwt.ExpiredSignatureError:
        raise TokenRejected("the OIDC token has expired: request a fresh one in the job", "expired") from None
    except jwt.ImmatureSignatureError:  # PyJWT ≥ 2.6 checks iat too: "issued in the future"
        raise TokenRejected("the OIDC token is not valid yet (nbf or iat in the future)", "not-yet-valid") from None
    except jwt.InvalidAudienceError:
        raise TokenRejected(f"the OIDC token's audience is not {' or '.join(audiences)}", "audience") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected(f"the OIDC token was not issued by {issuer}", "issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(f"the OIDC token has no {exc.claim} claim", "missing-claim") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("the OIDC token's signature does not verify", "signature") from None
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(f"the OIDC token is invalid ({exc.__class__.__name__})") from None
    if (not derives_jti or "jti" in payload) and (not isinstance(payload.get("jti"), str) or not payload["jti"]):
        raise TokenRejected("the OIDC token's jti must be a non-empty string", "claims")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TokenRejected(f"the OIDC token's {'.'.join(map(str, first['loc']))} claim is "
                            f"{first['msg'].lower()}", "claims") from None
