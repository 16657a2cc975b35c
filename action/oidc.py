"""The job's OIDC token: requested from the Actions runtime, exchanged at the broker."""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import quote

import httpx

from .http import RetryableStatus, send

PERMISSIONS_HINT = """Add this to the job (or workflow) that runs the action:

permissions:
  id-token: write   # lets the job request its OIDC token
  contents: read"""

SHOWN_CLAIMS = ("repository", "workflow_ref", "ref", "environment", "event_name")


class OidcError(Exception):
    pass


def request_id_token(client: httpx.Client, audience: str) -> str:
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not request_token:
        raise OidcError("this job cannot request an OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL is not set).\n"
                        + PERMISSIONS_HINT)
    separator = "&" if "?" in url else "?"
    try:
        response = send(client, "GET", f"{url}{separator}audience={quote(audience, safe='')}",
                        headers={"authorization": f"Bearer {request_token}", "accept": "application/json"})
    except (httpx.HTTPError, RetryableStatus) as exc:
        raise OidcError(f"could not get the job's OIDC token from the Actions runtime: {exc}") from None
    if response.status_code != 200:
        raise OidcError(f"the Actions runtime refused the OIDC token request ({response.status_code}).\n"
                        + PERMISSIONS_HINT)
    try:
        value = response.json()["value"]
    except (ValueError, KeyError, TypeError):
        raise OidcError("the Actions runtime answered without a token value") from None
    if not isinstance(value, str) or not value:
        raise OidcError("the Actions runtime answered without a token value")
    return value


def visible_claims(id_token: str) -> dict[str, str]:
    """The non-secret claims of the job's token, for messages (the signature is not checked here)."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return {k: str(claims[k]) for k in SHOWN_CLAIMS if claims.get(k) is not None}


def exchange(client: httpx.Client, registry_origin: str, escaped_name: str, id_token: str) -> str:
    url = f"{registry_origin}-/npm/v1/oidc/token/exchange/package/{escaped_name}"
    try:
        response = send(client, "POST", url, headers={"authorization": f"Bearer {id_token}"})
    except RetryableStatus as exc:
        raise OidcError(f"the registry failed the token exchange ({exc.response.status_code}) after retries") from None
    except httpx.HTTPError as exc:
        raise OidcError(f"cannot reach the registry at {registry_origin}: {exc}") from None
    if response.status_code not in (200, 201):
        try:
            message = response.json().get("message") or response.json().get("error")
        except ValueError:
            message = response.text[:500]
        claims = visible_claims(id_token)
        shown = "\n".join(f"  {k}: {v}" for k, v in claims.items())
        raise OidcError(f"the registry refused the OIDC token exchange ({response.status_code}): {message}\n"
                        f"This job's token says:\n{shown}\n"
                        "An owner can allow it with: npm trust github <package> --repo <repository> "
                        "--file <workflow file> [--env <environment>] --allow-stage-publish")
    try:
        token = response.json()["token"]
    except (ValueError, KeyError, TypeError):
        raise OidcError("the registry's exchange answer has no token") from None
    if not isinstance(token, str) or not token:
        raise OidcError("the registry's exchange answer has no token")
    return token
