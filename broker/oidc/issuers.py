"""The OIDC issuers the broker trusts, each with its provider rules and key cache."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.github import GitHubProvider
from ..domain.providers import PROVIDERS
from ..domain.trust import Provider
from ..settings import Settings
from .jwks import JwksCache


@dataclass
class TrustedIssuer:
    provider: Provider
    issuer: str
    jwks: JwksCache


def trusted_issuers(settings: Settings) -> dict[str, TrustedIssuer]:
    """Keyed by issuer URL. GitLab and CircleCI join here with their own provider classes."""
    url = settings.oidc_github_issuer
    github = TrustedIssuer(PROVIDERS[GitHubProvider.type], url, JwksCache(url))
    return {github.issuer: github}


def providers() -> dict[str, Provider]:
    return dict(PROVIDERS)
