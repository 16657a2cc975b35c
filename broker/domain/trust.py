"""Trust relationships: which CI identities may publish or stage a package, and the matching rules.

A provider (GitHub Actions, GitLab CI/CD, CircleCI) declares, as in pypi/warehouse, a table
of its token's claims: the claim name keys the check that reads it. Required claims must be present
before any check runs; optional claims are checked only when the relationship configures them;
bound claims are pinned at the first successful exchange; unchecked claims are read on purpose and
matched by nothing. `all_known_claims()` joins them, and a claim outside all of them is reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from . import constraints as constraint_rules
from .constraints import Constraints

CREATE_PACKAGE = "createPackage"  # npm publish (--allow-publish)
CREATE_STAGED_PACKAGE = "createStagedPackage"  # npm stage publish (--allow-stage-publish)
PERMISSIONS = {CREATE_PACKAGE: "--allow-publish (npm publish)",
               CREATE_STAGED_PACKAGE: "--allow-stage-publish (npm stage publish)"}

# Checked by the JWT layer (signature, issuer, audience, times) and the replay guard (jti).
PREVERIFIED_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti"})


class InvalidConfig(ValueError):
    pass


@dataclass(frozen=True)
class TrustRelationship:
    id: str
    package: str
    provider: str
    config: BaseModel  # the provider's validated configuration model
    permissions: frozenset[str]
    bound: dict[str, str] = field(default_factory=dict)  # ids pinned at the first successful exchange
    issuer: str = ""  # the OIDC issuer whose tokens it accepts; "" accepts none
    constraints: Constraints | None = None  # an admin's narrowing beyond the CLI's flags (constraints.py)
    created_by: str | None = None  # the account that made it (scope relationships cover what it owns)


Check = Callable[[Any, Any], "str | None"]  # (configuration, claims) → why it does not match, for owners


@dataclass(frozen=True)
class Mismatch:
    """One failed check. `claim` and `presented` may be told to the caller (they are the caller's own
    token); `detail` compares with what the relationship expects and is for the package's owners only."""

    relationship: str
    claim: str
    presented: str | None
    detail: str


class Provider(Protocol):
    type: ClassVar[str]
    claims_model: ClassVar[type[BaseModel]]
    config_model: ClassVar[type[BaseModel]]
    required_claims: ClassVar[dict[str, Check]]
    optional_claims: ClassVar[dict[str, Check]]
    bound_claims: ClassVar[tuple[str, ...]]
    unchecked_claims: ClassVar[frozenset[str]]
    shown_claims: ClassVar[tuple[str, ...]]  # what a refusal quotes of the caller's token
    create_hint: ClassVar[str]  # the `npm trust <type>` flags that name the identity

    def config_from_request(self, raw: Any) -> BaseModel: ...
    def subject(self, claims: Any) -> str: ...  # who the job is, for the audit log and the token's name
    def origin(self, claims: Any) -> dict[str, str]: ...  # where the job ran, shown to a stage's approver
    def seen(self, claims: Any) -> dict[str, Any]: ...


def all_known_claims(provider: Provider) -> frozenset[str]:
    return (PREVERIFIED_CLAIMS | provider.required_claims.keys() | provider.optional_claims.keys()
            | set(provider.bound_claims) | provider.unchecked_claims)


def unknown_claims(provider: Provider, names: Iterable[str]) -> list[str]:
    """Claim names a token carries that the provider does not account for (to be logged, not refused)."""
    return sorted(set(names) - all_known_claims(provider))


def missing_required_claims(provider: Provider, claims: Any) -> list[str]:
    """Required and bound claims that are absent or empty: checked before any check runs."""
    return [name for name in (*provider.required_claims, *provider.bound_claims) if not getattr(claims, name, None)]


def config_json(config: BaseModel) -> str:
    """The stored form of a configuration: canonical, so equal configurations compare equal in SQL."""
    return json.dumps(config.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))


def config_document(config: BaseModel) -> dict[str, Any]:
    """The configuration as `npm trust list` shows it (keys sorted, as they always were)."""
    return json.loads(config_json(config))


def claims_document(config: BaseModel, constraints: Constraints | None) -> dict[str, Any]:
    """The relationship's `claims` as sent and shown: the CLI's configuration and any constraints."""
    document = config_document(config)
    return dict(sorted({**document, **constraints.document()}.items())) if constraints else document


def claims_json(config: BaseModel, constraints: Constraints | None) -> str:
    """The stored form of a relationship's claims: canonical, so equal ones compare equal in SQL."""
    return json.dumps(claims_document(config, constraints), sort_keys=True, separators=(",", ":"))


def stored_config(provider: Provider, stored: str) -> tuple[BaseModel, Constraints | None]:
    """A stored `claims_json` validated again: the provider's configuration and the constraints."""
    raw, constraints = constraint_rules.split(provider.type, json.loads(stored))
    return provider.config_model.model_validate(raw), constraints


def config_from_request(provider: Provider, raw: Any) -> tuple[BaseModel, Constraints | None]:
    """A `claims` object of `POST /-/package/<name>/trust`: InvalidConfig says what is wrong."""
    try:
        raw, constraints = constraint_rules.split(provider.type, raw)
    except constraint_rules.InvalidConstraint as exc:
        raise InvalidConfig(str(exc)) from None
    return provider.config_from_request(raw), constraints


@dataclass(frozen=True)
class Match:
    granted: list[TrustRelationship]
    mismatches: list[Mismatch]  # every failed check of every relationship that did not match

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset().union(*(r.permissions for r in self.granted)) if self.granted else frozenset()

    @property
    def failed_claims(self) -> list[str]:
        """The checks that failed, each named once by its claim, in the order they were met."""
        return list(dict.fromkeys(m.claim for m in self.mismatches))


def _presented(claims: Any, name: str) -> str | None:
    value = getattr(claims, name, None)
    return None if value is None else str(value)


def mismatches(provider: Provider, relationship: TrustRelationship, claims: Any) -> list[Mismatch]:
    found = []
    for name, check in {**provider.required_claims, **provider.optional_claims}.items():
        detail = check(relationship.config, claims)
        if detail:
            found.append(Mismatch(relationship.id, name, _presented(claims, name), detail))
    for name in provider.bound_claims:
        pinned, seen = relationship.bound.get(name), _presented(claims, name)
        if pinned is not None and pinned != seen:
            found.append(Mismatch(relationship.id, name, seen,
                                  f"{name} is {seen} but this relationship was bound to {pinned} on its first use "
                                  "(was the repository deleted and created again?)"))
    for name, detail in constraint_rules.failures(provider.type, relationship.constraints, claims):
        found.append(Mismatch(relationship.id, name, _presented(claims, name), detail))
    return found


def matching_relationships(provider: Provider, claims: Any, relationships: list[TrustRelationship]) -> Match:
    granted, failed = [], []
    for relationship in relationships:
        if relationship.provider != provider.type or relationship.issuer != claims.iss:
            continue  # a token of one issuer never meets another's relationships, whatever its claims
        found = mismatches(provider, relationship, claims)
        if found:
            failed.extend(found)
        else:
            granted.append(relationship)
    return Match(granted, failed)


def binding(provider: Provider, claims: Any) -> dict[str, str]:
    return {name: getattr(claims, name) for name in provider.bound_claims}
