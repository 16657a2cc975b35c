"""GitHub Actions as a trust provider: its OIDC claims and how a relationship matches them."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .trust import Check, InvalidConfig

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_WORKFLOW_FILE = re.compile(r"^[A-Za-z0-9_.\-]+\.ya?ml$")
_WORKFLOW_REF = re.compile(r"^(?P<repository>[^/]+/[^/]+)/\.github/workflows/(?P<file>[^@/]+)@(?P<ref>.+)$")


class GitHubClaims(BaseModel):
    """The claims of a GitHub Actions OIDC token that stagegate reads."""

    model_config = ConfigDict(extra="ignore")
    iss: str
    jti: str
    exp: int
    iat: int
    sub: str
    repository: str
    repository_id: str
    repository_owner: str
    repository_owner_id: str
    workflow_ref: str
    job_workflow_ref: str | None = None
    ref: str | None = None
    sha: str | None = None
    run_id: str | None = None
    run_attempt: str | None = None
    actor: str | None = None
    environment: str | None = None
    event_name: str | None = None
    repository_visibility: str | None = None

    @property
    def workflow_file(self) -> str | None:
        match = _WORKFLOW_REF.match(self.workflow_ref)
        return match.group("file") if match else None

    @property
    def workflow_repository(self) -> str | None:
        match = _WORKFLOW_REF.match(self.workflow_ref)
        return match.group("repository") if match else None


class _WorkflowRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=_WORKFLOW_FILE.pattern, max_length=255)


class GitHubConfig(BaseModel):
    """What `npm trust github` sends as `claims`."""

    model_config = ConfigDict(extra="forbid")
    repository: str = Field(pattern=_REPOSITORY.pattern, max_length=200)
    workflow_ref: _WorkflowRef
    environment: str | None = Field(default=None, min_length=1, max_length=255)


def _repository(config: dict[str, Any], claims: GitHubClaims) -> str | None:
    if claims.repository.lower() != config["repository"].lower():
        return f"repository is {claims.repository!r} but the relationship expects {config['repository']!r}"
    return None


def _workflow(config: dict[str, Any], claims: GitHubClaims) -> str | None:
    expected = config["workflow_ref"]["file"]
    if claims.workflow_repository is None:
        return f"workflow_ref {claims.workflow_ref!r} does not name a workflow file"
    if claims.workflow_repository.lower() != claims.repository.lower():
        return (f"the workflow {claims.workflow_ref!r} belongs to another repository than "
                f"{claims.repository!r}")
    if claims.workflow_file != expected:
        return f"workflow file is {claims.workflow_file!r} but the relationship expects {expected!r}"
    return None


def _environment(config: dict[str, Any], claims: GitHubClaims) -> str | None:
    expected = config.get("environment")
    if expected is None:
        return None
    if claims.environment is None:
        return f"the job runs in no environment but the relationship expects environment {expected!r}"
    if claims.environment.lower() != expected.lower():
        return f"environment is {claims.environment!r} but the relationship expects {expected!r}"
    return None


class GitHubProvider:
    type: ClassVar[str] = "github"
    claims_model: ClassVar[type[BaseModel]] = GitHubClaims
    required_checks: ClassVar[dict[str, Check]] = {"repository": _repository, "workflow_ref": _workflow}
    optional_checks: ClassVar[dict[str, Check]] = {"environment": _environment}
    bound_claims: ClassVar[tuple[str, ...]] = ("repository_id", "repository_owner_id")
    # Read for the audit log and messages, deliberately not matched:
    unchecked_claims: ClassVar[frozenset[str]] = frozenset({
        "sub", "ref", "sha", "run_id", "run_attempt", "actor", "event_name", "job_workflow_ref",
        "repository_owner", "repository_visibility"})

    def config_from_request(self, raw: Any) -> dict[str, Any]:
        try:
            config = GitHubConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidConfig(f"claims.{'.'.join(map(str, first['loc']))}: {first['msg']} "
                                "(expected --repo owner/repo and --file <workflow>.yml)") from None
        return config.model_dump(exclude_none=True)

    def seen(self, claims: GitHubClaims) -> dict[str, Any]:
        return {"repository": claims.repository, "workflow_ref": claims.workflow_ref,
                "environment": claims.environment, "ref": claims.ref, "sha": claims.sha,
                "run_id": claims.run_id, "run_attempt": claims.run_attempt, "actor": claims.actor,
                "event_name": claims.event_name, "repository_id": claims.repository_id,
                "repository_owner_id": claims.repository_owner_id, "jti": claims.jti}
