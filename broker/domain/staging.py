"""Staged publishing rules: who may stage, how a stage item looks on the wire, paging."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .credentials import Allowed, Credential, Decision, Refused, TokenKind
from .trust import CREATE_STAGED_PACKAGE

MAX_PER_PAGE = 100
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def may_stage(cred: Credential, package: str) -> Decision:
    """Staging never asks for 2FA; it only needs write access, or a trust token that allows it."""
    if cred.kind is TokenKind.TRUST:
        if cred.trust_package != package:
            return Refused(f"a trust-issued token may only publish or stage-publish its package; "
                           f"this one was minted for {cred.trust_package}", code="trust.wrong-package")
        if CREATE_STAGED_PACKAGE not in cred.trust_permissions:
            return Refused(f"OIDC permission denied for this action: the trust relationship of {package} does "
                           "not allow npm stage publish (createStagedPackage): an owner can add a relationship "
                           "with --allow-stage-publish", code="trust.permission-denied")
        return Allowed()
    if not cred.may_write(package):
        return Refused(f"this token cannot stage {package}: its packages, scopes or read-only permission exclude it")
    return Allowed()


def actor_type(cred: Credential) -> str:
    return {TokenKind.SESSION: "user", TokenKind.GRANULAR: "token", TokenKind.TRUST: "trust"}[cred.kind]


def parse_stage_id(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def valid_idempotency_key(raw: str | None) -> bool:
    return raw is None or bool(_IDEMPOTENCY_KEY.match(raw))


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return self.number * self.size


MAX_PAGE = 1_000_000  # far past any real list; keeps an offset inside the database's integers


def page_of(page: str | None, per_page: str | None) -> Page:
    """Page numbers from 0 to MAX_PAGE, at most MAX_PER_PAGE a page; nonsense falls back to the defaults."""
    try:
        number = min(MAX_PAGE, max(0, int(page or 0)))
    except ValueError:
        number = 0
    try:
        size = min(MAX_PER_PAGE, max(1, int(per_page or MAX_PER_PAGE)))
    except ValueError:
        size = MAX_PER_PAGE
    return Page(number, size)


class StageItem(BaseModel):
    """A staged version as `npm stage list|view` shows it: extra keys print as `key: value`."""

    model_config = ConfigDict(populate_by_name=True)
    id: str
    package_name: str = Field(serialization_alias="packageName")
    version: str
    tag: str
    created_at: str = Field(serialization_alias="createdAt")
    actor: str
    actor_type: str = Field(serialization_alias="actorType")
    shasum: str
    integrity: str
    size: int
    repository: str | None = None
    workflow: str | None = None
    ref: str | None = None
    sha: str | None = None
    run_id: str | None = Field(default=None, serialization_alias="runId")
    approvals: list[str] | None = None  # the maintainers who approved it so far
    required_approvals: int | None = Field(default=None, serialization_alias="requiredApprovals")
    expires_at: str | None = Field(default=None, serialization_alias="expiresAt")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)
