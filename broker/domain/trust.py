"""Trust relationships: which CI identities may publish or stage a package, and the matching rules.

A provider (GitHub Actions now; GitLab and CircleCI later) declares its typed claims, how a
relationship's configuration is validated, and its claim checks as data: adding a claim check is
one line, and every claim it ignores is listed on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

CREATE_PACKAGE = "createPackage"  # npm publish (--allow-publish)
CREATE_STAGED_PACKAGE = "createStagedPackage"  # npm stage publish (--allow-stage-publish)
PERMISSIONS = {CREATE_PACKAGE: "--allow-publish (npm publish)",
               CREATE_STAGED_PACKAGE: "--allow-stage-publish (npm stage publish)"}


class InvalidConfig(ValueError):
    pass


@dataclass(frozen=True)
class TrustRelationship:
    id: str
    package: str
    provider: str
    claims: dict[str, Any]  # the provider's validated configuration
    permissions: frozenset[str]
    bound: dict[str, str] = field(default_factory=dict)  # ids pinned at the first successful exchange


Check = Callable[[dict[str, Any], Any], "str | None"]  # (configuration, claims) → why it does not match


class Provider(Protocol):
    type: ClassVar[str]
    claims_model: ClassVar[type[BaseModel]]
    required_checks: ClassVar[dict[str, Check]]
    optional_checks: ClassVar[dict[str, Check]]
    unchecked_claims: ClassVar[frozenset[str]]
    bound_claims: ClassVar[tuple[str, ...]]

    def config_from_request(self, raw: Any) -> dict[str, Any]: ...
    def seen(self, claims: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Match:
    granted: list[TrustRelationship]
    reasons: list[str]  # one line per relationship that did not match

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset().union(*(r.permissions for r in self.granted)) if self.granted else frozenset()


def mismatches(provider: Provider, relationship: TrustRelationship, claims: Any) -> list[str]:
    reasons = []
    for check in {**provider.required_checks, **provider.optional_checks}.values():
        reason = check(relationship.claims, claims)
        if reason:
            reasons.append(reason)
    for name in provider.bound_claims:
        pinned, seen = relationship.bound.get(name), getattr(claims, name, None)
        if pinned is not None and pinned != seen:
            reasons.append(f"{name} is {seen} but this relationship was bound to {pinned} on its first use "
                           "(was the repository deleted and created again?)")
    return reasons


def matching_relationships(provider: Provider, claims: Any, relationships: list[TrustRelationship]) -> Match:
    granted, reasons = [], []
    for relationship in relationships:
        if relationship.provider != provider.type:
            continue
        failed = mismatches(provider, relationship, claims)
        if failed:
            reasons.append(f"relationship {relationship.id}: " + "; ".join(failed))
        else:
            granted.append(relationship)
    return Match(granted, reasons)


def binding(provider: Provider, claims: Any) -> dict[str, str]:
    return {name: getattr(claims, name) for name in provider.bound_claims}
