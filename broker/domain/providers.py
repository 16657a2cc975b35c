"""Every trust provider the broker knows, keyed by the relationship type `npm trust <type>` names."""

from __future__ import annotations

from .circleci import CircleCIProvider
from .github import GitHubProvider
from .gitlab import GitLabProvider
from .trust import Provider

PROVIDERS: dict[str, Provider] = {p.type: p for p in (GitHubProvider(), GitLabProvider(), CircleCIProvider())}
