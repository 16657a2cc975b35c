"""The OIDC issuers the broker trusts, each with its provider rules, key cache and options.

GitHub and GitLab issuers are fixed URLs (the defaults and STAGEGATE_OIDC_ISSUERS). CircleCI's are one
per organization: a configured prefix, then an organization id. Anyone can send a token naming any
organization, so an organization gets an issuer (and a key cache, and a key fetch) only when a trust
relationship names it: which ones do is read from the database, at most once per ORG_REFRESH_INTERVAL
whoever asks, on a shared thread. Between reads an unknown organization is refused at once: memory and
fetches stay bounded by what owners configured, not by what strangers send.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from ..domain.circleci import UUID, CircleCIProvider
from ..domain.providers import PROVIDERS
from ..domain.trust import Provider
from ..settings import IssuerSetting, Settings
from .jwks import TIMEOUT, JwksCache
from .verify import TemporarilyUnverifiable

log = logging.getLogger("stagegate")

ORG_REFRESH_INTERVAL = 5.0

InUse = Callable[[str], frozenset[str]]  # provider type → the issuers its relationships trust


@dataclass
class TrustedIssuer:
    provider: Provider
    issuer: str
    jwks: JwksCache | None
    allow_self_hosted_runners: bool = False  # the registry's policy options (broker/domain/policy.py)
    allow_workflow_run: bool = False


class UnknownIssuer(ValueError):
    pass


class OrgIssuers:
    """CircleCI's per-organization issuers under one prefix."""

    def __init__(self, setting: IssuerSetting, in_use: InUse | None, fetcher: ThreadPoolExecutor) -> None:
        self.setting = setting
        self.prefix = setting.issuer
        self._in_use = in_use
        self._fetcher = fetcher  # the organizations' key fetches
        # Which organizations relationships name is read on a thread of its own: key fetches that a
        # stranger can queue (a random kid per organization) never delay it.
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oidc-orgs")
        self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=False)  # one host: one pool for all
        self._known: frozenset[str] = frozenset()
        self._issuers: dict[str, TrustedIssuer] = {}
        self._checked_at = float("-inf")
        self._inflight: Future[None] | None = None
        self._lock = threading.Lock()

    def names(self, iss: str) -> bool:
        """Whether `iss` has this family's shape: the prefix, then an organization id (lower-case UUID)."""
        return iss.startswith(self.prefix) and bool(UUID.match(iss[len(self.prefix):]))

    def issuer_for_org(self, org_id: str) -> str:
        return self.prefix + org_id

    async def resolve(self, iss: str) -> TrustedIssuer | None:
        if iss not in self._known:
            pending = self._refresh_due()
            if pending is not None:
                try:
                    await asyncio.wrap_future(pending)
                except Exception as exc:  # the database: not the caller's fault, and retried next interval
                    log.warning("cannot read which CircleCI organizations relationships name: %s",
                                exc.__class__.__name__)
                    raise TemporarilyUnverifiable("cannot tell whether this registry trusts the token's "
                                                  "CircleCI organization") from None
        if iss not in self._known:
            return None
        return self._issuer(iss)

    def note(self, iss: str) -> None:
        """A relationship naming `iss` was just created here: no need to wait for the next read."""
        with self._lock:
            self._known = self._known | {iss}

    def _issuer(self, iss: str) -> TrustedIssuer:
        with self._lock:
            found = self._issuers.get(iss)
            if found is None:
                found = self._issuers[iss] = TrustedIssuer(
                    PROVIDERS[CircleCIProvider.type], iss, JwksCache(iss, client=self._client, fetcher=self._fetcher),
                    self.setting.allow_self_hosted_runners, self.setting.allow_workflow_run)
            return found

    def _refresh_due(self) -> Future[None] | None:
        with self._lock:
            if self._inflight is not None and not self._inflight.done():
                return self._inflight
            if self._in_use is None or time.monotonic() - self._checked_at < ORG_REFRESH_INTERVAL:
                return None
            self._checked_at = time.monotonic()
            self._inflight = self._refresher.submit(self._refresh)
            return self._inflight

    def _refresh(self) -> None:
        known = frozenset(i for i in self._in_use(CircleCIProvider.type) if self.names(i))
        with self._lock:
            self._known = known
            self._issuers = {i: found for i, found in self._issuers.items() if i in known}


class Issuers:
    """Every trusted issuer, by the `iss` a token names; and which issuer a new relationship records."""

    def __init__(self, settings: Settings, in_use: InUse | None = None) -> None:
        org_fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jwks-orgs")
        self.settings = settings.issuer_settings()
        self._fixed: dict[str, TrustedIssuer] = {}
        self._families: list[OrgIssuers] = []
        for setting in self.settings:
            if setting.kind == CircleCIProvider.type:
                self._families.append(OrgIssuers(setting, in_use, org_fetcher))
            else:
                self._fixed[setting.issuer] = TrustedIssuer(PROVIDERS[setting.kind], setting.issuer,
                                                            JwksCache(setting.issuer),
                                                            setting.allow_self_hosted_runners,
                                                            setting.allow_workflow_run)

    async def resolve(self, iss: Any) -> TrustedIssuer | None:
        """The trusted issuer a token's `iss` names, or None. Never fetches anything itself."""
        if not isinstance(iss, str):
            return None
        found = self._fixed.get(iss)
        if found is not None:
            return found
        for family in self._families:
            if family.names(iss):
                return await family.resolve(iss)
        return None

    def relationship_issuer(self, kind: str, config: Any, requested: str | None) -> str:
        """The issuer a new relationship of `kind` trusts: the one its creator names (which must be a
        configured issuer of that kind), else the deployment's default for the kind. CircleCI's is the
        prefix's issuer of the configured organization."""
        candidates = [s for s in self.settings if s.kind == kind]
        if requested is not None and kind != CircleCIProvider.type:
            requested = requested.rstrip("/")
        if kind == CircleCIProvider.type:
            org = config.org_id
            for setting in candidates:
                if requested in (None, setting.issuer, setting.issuer + org) and (requested or setting.default):
                    return setting.issuer + org
        else:
            for setting in candidates:
                if requested == setting.issuer or (requested is None and setting.default):
                    return setting.issuer
        configured = ", ".join(s.issuer + ("<org-id>" if s.kind == CircleCIProvider.type else "") for s in candidates)
        raise UnknownIssuer(f"{requested!r} is not a {kind} issuer this registry trusts; configured: {configured}")

    def note(self, kind: str, issuer: str) -> None:
        """A relationship trusting `issuer` was created (CircleCI organizations become known at once)."""
        for family in self._families:
            if kind == CircleCIProvider.type and family.names(issuer):
                family.note(issuer)


def trusted_issuers(settings: Settings, in_use: InUse | None = None) -> Issuers:
    return Issuers(settings, in_use)


def providers() -> dict[str, Provider]:
    return dict(PROVIDERS)
