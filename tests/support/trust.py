"""Trust relationships as `npm trust github` sends them, and the OIDC exchange a CI job makes."""

from __future__ import annotations

import httpx

GITHUB_REPOSITORY = "acme/widget"
GITHUB_WORKFLOW = "release.yml"


def github_relationship(permissions=("createStagedPackage",), repository: str = GITHUB_REPOSITORY,
                        workflow: str = GITHUB_WORKFLOW, **claims) -> dict:
    """One GitHub Actions relationship (the fake issuer's default job matches it)."""
    return {"type": "github",
            "claims": {"repository": repository, "workflow_ref": {"file": workflow}, **claims},
            "permissions": list(permissions)}


def exchange(registry: str, package: str, token: str | None) -> httpx.Response:
    """POST the job's OIDC JWT to the exchange for `package`, as npm does in a CI job."""
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{registry}-/npm/v1/oidc/token/exchange/package/{package.replace('/', '%2f')}",
                      headers=headers, timeout=30)


def trust_token(registry: str, package: str, issuer, **claims) -> str:
    """A trust token for `package` from a job of the fake issuer (the package must trust that job)."""
    response = exchange(registry, package, issuer.token(**claims))
    assert response.status_code == 201, response.text
    return response.json()["token"]
