"""Verifying an OIDC JWT: allow-listed algorithm, the issuer's key, iss, aud, times, jti.

The result is a typed claims object; nothing downstream touches the raw JWT.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
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
    """The JWT is not acceptable; the message says why, without echoing the token."""


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
        raise TokenRejected("the OIDC token is not a JWT")
    header, payload, _ = token.split(".")
    try:
        parts = [json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in (header, payload)]
    except (ValueError, binascii.Error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TokenRejected("the OIDC token is not a JWT") from None
    if not all(isinstance(part, dict) for part in parts):
        raise TokenRejected("the OIDC token is not a JWT")
    return Unverified(*parts)


def signing_key_id(unverified: Unverified) -> str:
    """The kid of an acceptable algorithm's key, before any key is touched."""
    alg, kid = unverified.header.get("alg"), unverified.header.get("kid")
    if alg not in ALGORITHMS:
        raise TokenRejected(f"the OIDC token is signed with {alg!r}; only {', '.join(ALGORITHMS)} is accepted")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("the OIDC token names no signing key (kid)")
    return kid


def issuer_key(jwks: JwksCache, kid: str) -> PyJWK:
    """The issuer's key `kid`, fetching the issuer's keys when needed (blocking)."""
    try:
        key = jwks.key(kid)
    except JwksUnavailable as exc:
        raise TemporarilyUnverifiable(str(exc)) from None
    if key is None:
        raise TokenRejected(f"the OIDC token is signed with a key ({kid}) the issuer does not publish")
    return key


def verify_signed(token: str, key: PyJWK, *, issuer: str, audiences: list[str], model: type[Claims]) -> Claims:
    """PyJWT checks the signature with `key`, then iss, aud and the times; the claims become `model`."""
    try:
        payload = jwt.decode(
            token, key.key, algorithms=list(ALGORITHMS), audience=audiences, issuer=issuer, leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "jti"], "verify_signature": True})
    except jwt.ExpiredSignatureError:
        raise TokenRejected("the OIDC token has expired: request a fresh one in the job") from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected("the OIDC token is not valid yet (nbf or iat in the future)") from None
    except jwt.InvalidAudienceError:
        raise TokenRejected(f"the OIDC token's audience is not {' or '.join(audiences)}") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected(f"the OIDC token was not issued by {issuer}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(f"the OIDC token has no {exc.claim} claim") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("the OIDC token's signature does not verify") from None
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(f"the OIDC token is invalid ({exc.__class__.__name__})") from None
    if payload["iat"] > time.time() + LEEWAY:
        raise TokenRejected("the OIDC token was issued in the future")
    if not isinstance(payload["jti"], str) or not payload["jti"]:
        raise TokenRejected("the OIDC token's jti must be a non-empty string")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TokenRejected(f"the OIDC token's {'.'.join(map(str, first['loc']))} claim is "
                            f"{first['msg'].lower()}") from None
