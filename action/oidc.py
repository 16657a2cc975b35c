"""The job's OIDC token: requested from the Actions runtime, read for messages, exchanged at the broker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import httpx

from .errors import ActionError
from .http import RetryableStatus, send
from .refusals import EXCHANGE_FALLBACK, Job, Unreachable, refusal

PERMISSIONS_HINT = """Add this to the job (or workflow) that runs the action:

permissions:
  id-token: write   # lets the job request its OIDC token
  contents: read"""


class OidcError(ActionError):
    title = "OIDC token request failed"


class MissingIdTokenPermission(OidcError):
    title = "Missing the id-token permission"

    def hint(self) -> str:
        return PERMISSIONS_HINT


class ForkPullRequest(OidcError):
    title = "No OIDC token for a pull request from a fork"

    def hint(self) -> str:
        return ("GitHub gives no OIDC token to a workflow run by a pull request from a fork, even with "
                "`id-token: write`: a fork must not be able to stage your package. Stage from an event that "
                "forks cannot trigger (a tag push, a release, workflow_dispatch), or skip this step on pull "
                "requests (`if: github.event_name != 'pull_request'`).")


def fork_pull_request() -> bool:
    """A `pull_request` run whose head repository is not the base repository (GitHub withholds OIDC)."""
    if os.environ.get("GITHUB_EVENT_NAME") != "pull_request" or not os.environ.get("GITHUB_EVENT_PATH"):
        return False
    try:
        pull = json.loads(Path(os.environ["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))["pull_request"]
        head = (pull["head"] or {}).get("repo") or {}  # null when the fork was deleted
        # not head.repo.fork: a pull request inside a repository that is itself a fork has OIDC
        return head.get("full_name") != pull["base"]["repo"]["full_name"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def request_id_token(client: httpx.Client, audience: str) -> str:
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not request_token:
        if fork_pull_request():
            raise ForkPullRequest("this job runs for a pull request from a fork, and has no OIDC token")
        raise MissingIdTokenPermission("this job cannot request an OIDC token "
                                       "(ACTIONS_ID_TOKEN_REQUEST_URL is not set)")
    separator = "&" if "?" in url else "?"
    try:
        response = send(client, "GET", f"{url}{separator}audience={quote(audience, safe='')}",
                        headers={"authorization": f"Bearer {request_token}", "accept": "application/json"})
    except (httpx.HTTPError, RetryableStatus) as exc:
        raise OidcError(f"could not get the job's OIDC token from the Actions runtime: {exc}") from None
    if response.status_code != 200:
        raise MissingIdTokenPermission(f"the Actions runtime refused the OIDC token request ({response.status_code})")
    try:
        value = response.json()["value"]
    except (ValueError, KeyError, TypeError):
        raise OidcError("the Actions runtime answered without a token value") from None
    if not isinstance(value, str) or not value:
        raise OidcError("the Actions runtime answered without a token value")
    return value


def _post_job_token(client: httpx.Client, url: str, id_token: str, job: Job, what: str,
                    accepted: tuple[int, ...]) -> httpx.Response:
    """POST the job's ID token to one of the broker's OIDC routes; a refusal explained by its code."""
    try:
        response = send(client, "POST", url, headers={"authorization": f"Bearer {id_token}"})
    except RetryableStatus as exc:
        raise refusal(exc.response, what, job, EXCHANGE_FALLBACK) from None
    except httpx.HTTPError as exc:
        origin = url.split("-/npm/v1/", 1)[0]
        raise Unreachable(f"cannot reach the registry at {origin}: {exc.__class__.__name__}") from None
    if response.status_code not in accepted:
        raise refusal(response, what, job, EXCHANGE_FALLBACK)
    return response


def exchange(client: httpx.Client, registry_origin: str, escaped_name: str, id_token: str, job: Job) -> str:
    """The broker's short-lived token for this package, or a refusal explained by its code."""
    response = _post_job_token(client, f"{registry_origin}-/npm/v1/oidc/token/exchange/package/{escaped_name}",
                               id_token, job, "the OIDC token exchange", (200, 201))
    try:
        token = response.json()["token"]
    except (ValueError, KeyError, TypeError):
        raise OidcError("the registry's exchange answer has no token") from None
    if not isinstance(token, str) or not token:
        raise OidcError("the registry's exchange answer has no token")
    return token


def verify(client: httpx.Client, registry_origin: str, escaped_name: str, id_token: str, job: Job) -> list[str]:
    """The permissions an exchange would grant this job (the broker's dry run: nothing is spent), or the
    refusal the exchange would give, explained by its code."""
    response = _post_job_token(client, f"{registry_origin}-/npm/v1/oidc/token/verify/package/{escaped_name}",
                               id_token, job, "the OIDC token check (dry run)", (200,))
    try:
        permissions = response.json()["permissions"]
    except (ValueError, KeyError, TypeError):
        raise OidcError("the registry's dry-run answer has no permissions") from None
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise OidcError("the registry's dry-run answer has no permissions")
    return permissions
