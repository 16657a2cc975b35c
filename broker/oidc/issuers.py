"""The OIDC issuers the broker trusts, each with its provider rules and key cache."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.github import GitHubProvider
from ..domain.gitlab import GitLabProvider
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
    """Keyed by issuer URL; the settings make sure two providers never share one."""
    configured = {settings.oidc_github_issuer: GitHubProvider.type, settings.oidc_gitlab_issuer: GitLabProvider.type}
    return {url: TrustedIssuer(PROVIDERS[kind], url, JwksCache(url)) for url, kind in configured.items()}


def providers() -> dict[str, Provider]:
    return dict(PROVIDERS)
