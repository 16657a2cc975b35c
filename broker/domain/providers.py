"""Every trust provider the broker knows, keyed by the relationship type `npm trust <type>` names."""

from __future__ import annotations

from .github import GitHubProvider
from .gitlab import GitLabProvider
from .trust import Provider

PROVIDERS: dict[str, Provider] = {GitHubProvider.type: GitHubProvider(), GitLabProvider.type: GitLabProvider()}
