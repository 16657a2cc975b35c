"""The OIDC issuers the broker trusts, each with its provider rules and key cache."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.github import GitHubProvider
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
    github = TrustedIssuer(GitHubProvider(), settings.oidc_github_issuer, JwksCache(settings.oidc_github_issuer))
    return {github.issuer: github}


def providers() -> dict[str, Provider]:
    return {GitHubProvider.type: GitHubProvider()}
