"""GitHub Actions as a trust provider: its OIDC claims, the relationship's configuration, and the
claim table that matches one against the other."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .trust import Check, InvalidConfig

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_WORKFLOW_FILE = re.compile(r"^[A-Za-z0-9_.\-]+\.ya?ml$")


class GitHubClaims(BaseModel):
    """The claims of a GitHub Actions OIDC token that stagegate reads; the others stay in `model_extra`
    so that the provider can tell documented claims from new ones."""

    model_config = ConfigDict(extra="allow")
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
    event_name: str | None = None  # read by the registry's policy (broker/domain/policy.py)
    runner_environment: str | None = None  # likewise
    repository_visibility: str | None = None


class WorkflowRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=_WORKFLOW_FILE.pattern, max_length=255)


class GitHubConfig(BaseModel):
    """What `npm trust github` sends as `claims`: the relationship's configuration."""

    model_config = ConfigDict(extra="forbid")
    repository: str = Field(pattern=_REPOSITORY.pattern, max_length=200)
    workflow_ref: WorkflowRef
    environment: str | None = Field(default=None, min_length=1, max_length=255)


def check_repository(config: GitHubConfig, claims: GitHubClaims) -> str | None:
    if claims.repository.lower() != config.repository.lower():
        return f"repository is {claims.repository!r} but the relationship expects {config.repository!r}"
    return None


def check_workflow_ref(config: GitHubConfig, claims: GitHubClaims) -> str | None:
    """GitHub builds the claim as `<repository>/.github/workflows/<file>@<ref>`, and the ref is a full
    `refs/…` name: anything else (a file in a subdirectory, `release.yml@x.yml` posing as
    `release.yml`, another repository's workflow) is not the configured workflow."""
    seen, owner_repo = claims.workflow_ref, f"{claims.repository}/"
    if seen[:len(owner_repo)].lower() != owner_repo.lower():
        return f"the workflow {seen!r} belongs to another repository than {claims.repository!r}"
    if not seen[len(owner_repo):].startswith(f".github/workflows/{config.workflow_ref.file}@refs/"):
        return (f"workflow_ref is {seen!r} but the relationship expects the workflow file "
                f"{config.workflow_ref.file!r} (.github/workflows/{config.workflow_ref.file}@refs/…)")
    return None


def check_environment(config: GitHubConfig, claims: GitHubClaims) -> str | None:
    expected = config.environment
    if expected is None:
        return None
    if not claims.environment:
        return f"the job runs in no environment but the relationship expects environment {expected!r}"
    if claims.environment.lower() != expected.lower():
        return f"environment is {claims.environment!r} but the relationship expects {expected!r}"
    return None


class GitHubProvider:
    type: ClassVar[str] = "github"
    claims_model: ClassVar[type[BaseModel]] = GitHubClaims
    config_model: ClassVar[type[BaseModel]] = GitHubConfig
    required_claims: ClassVar[dict[str, Check]] = {"repository": check_repository,
                                                   "workflow_ref": check_workflow_ref}
    optional_claims: ClassVar[dict[str, Check]] = {"environment": check_environment}
    # Pinned at the first successful exchange: a repository deleted and created again under the same
    # name (or a renamed owner whose name was taken) gets new ids.
    bound_claims: ClassVar[tuple[str, ...]] = ("repository_id", "repository_owner_id")
    # Documented by GitHub, deliberately matched by nothing (some are shown in the audit log and to
    # the approver of a stage): the relationship names a repository, a workflow and an environment.
    # event_name and runner_environment are the registry's policy (broker/domain/policy.py).
    unchecked_claims: ClassVar[frozenset[str]] = frozenset({
        "sub", "ref", "ref_type", "ref_protected", "sha", "head_ref", "base_ref", "event_name",
        "run_id", "run_number", "run_attempt", "runner_environment", "actor", "actor_id",
        "workflow", "workflow_sha", "job_workflow_ref", "job_workflow_sha", "repository_owner",
        "repository_visibility", "enterprise", "enterprise_id", "check_run_id"})
    shown_claims: ClassVar[tuple[str, ...]] = ("repository", "workflow_ref", "environment")
    create_hint: ClassVar[str] = "--repo <owner/repo> --file <workflow.yml>"

    def config_from_request(self, raw: Any) -> GitHubConfig:
        try:
            return GitHubConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidConfig(f"claims.{'.'.join(map(str, first['loc']))}: {first['msg']} "
                                "(expected --repo owner/repo and --file <workflow>.yml)") from None

    def subject(self, claims: GitHubClaims) -> str:
        return claims.repository

    def origin(self, claims: GitHubClaims) -> dict[str, str]:
        """Where the job ran, in the keys a stage shows its approver."""
        values = {"repository": claims.repository, "workflow_ref": claims.workflow_ref, "ref": claims.ref,
                  "sha": claims.sha, "run_id": claims.run_id, "run_attempt": claims.run_attempt,
                  "actor": claims.actor, "environment": claims.environment}
        return {k: v for k, v in values.items() if v}

    def seen(self, claims: GitHubClaims) -> dict[str, Any]:
        return {"repository": claims.repository, "workflow_ref": claims.workflow_ref,
                "environment": claims.environment, "ref": claims.ref, "sha": claims.sha,
                "run_id": claims.run_id, "run_attempt": claims.run_attempt, "actor": claims.actor,
                "event_name": claims.event_name, "repository_id": claims.repository_id,
                "repository_owner_id": claims.repository_owner_id, "jti": claims.jti}
