"""GitLab CI/CD as a trust provider: its ID token's claims, the relationship's configuration
(`npm trust gitlab --project group[/sub]/project --file .gitlab-ci.yml [--env X]`), and the claim
table that matches one against the other."""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .trust import Check, InvalidConfig

_PROJECT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")  # group[/subgroup…]/project
_PIPELINE_FILE = re.compile(r"^[A-Za-z0-9_.\-]+\.ya?ml$")  # a file name, as `npm trust gitlab` insists


class GitLabClaims(BaseModel):
    """The claims of a GitLab CI/CD ID token that stagegate reads; the others stay in `model_extra`."""

    model_config = ConfigDict(extra="allow")
    iss: str
    jti: str
    exp: int
    iat: int
    sub: str
    project_path: str
    project_id: str
    namespace_id: str
    namespace_path: str | None = None
    # Null unless the pipeline definition is in the project's own repository (GitLab ≥ 16.2).
    ci_config_ref_uri: str | None = None
    ci_config_sha: str | None = None
    ref: str | None = None
    ref_type: str | None = None
    ref_path: str | None = None
    ref_protected: str | None = None
    sha: str | None = None
    pipeline_id: str | None = None
    pipeline_source: str | None = None
    job_id: str | None = None
    user_login: str | None = None
    environment: str | None = None
    runner_environment: str | None = None


class CiConfigRefUri(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=_PIPELINE_FILE.pattern, max_length=255)


class GitLabConfig(BaseModel):
    """What `npm trust gitlab` sends as `claims`: the relationship's configuration."""

    model_config = ConfigDict(extra="forbid")
    project_path: str = Field(pattern=_PROJECT_PATH.pattern, max_length=255)
    ci_config_ref_uri: CiConfigRefUri
    environment: str | None = Field(default=None, min_length=1, max_length=255)


def check_project_path(config: GitLabConfig, claims: GitLabClaims) -> str | None:
    # GitLab project paths are case-insensitive (a path differing only in case is the same project).
    if claims.project_path.lower() != config.project_path.lower():
        return f"project_path is {claims.project_path!r} but the relationship expects {config.project_path!r}"
    return None


def _instance_hosts(issuer: str) -> set[str]:
    parts = urlsplit(issuer)
    return {h.lower() for h in (parts.hostname, parts.netloc) if h}


def check_ci_config_ref_uri(config: GitLabConfig, claims: GitLabClaims) -> str | None:
    """GitLab writes `<host>/<project_path>//<file>@<ref_path>`. The host must be the issuing instance's,
    the project part the token's own project (a pipeline file of another project is not this
    project's), the file exactly the configured one (not a file in a subdirectory), the ref a full
    `refs/…` name."""
    seen, file = claims.ci_config_ref_uri or "", config.ci_config_ref_uri.file
    location, separator, rest = seen.partition("//")
    host, _, project = location.partition("/")
    if not separator or host.lower() not in _instance_hosts(claims.iss):
        return f"ci_config_ref_uri is {seen!r}, not a pipeline file of this GitLab instance"
    if project.lower() != claims.project_path.lower():
        return f"the pipeline file {seen!r} belongs to another project than {claims.project_path!r}"
    seen_file, at, ref = rest.partition("@")
    if seen_file != file or not at or not ref.startswith("refs/"):
        return f"ci_config_ref_uri is {seen!r} but the relationship expects the pipeline file {file!r} ({file}@refs/…)"
    return None


def check_environment(config: GitLabConfig, claims: GitLabClaims) -> str | None:
    expected = config.environment
    if expected is None:
        return None
    if not claims.environment:
        return f"the job runs in no environment but the relationship expects environment {expected!r}"
    if claims.environment != expected:  # GitLab environment names are case-sensitive
        return f"environment is {claims.environment!r} but the relationship expects {expected!r}"
    return None


class GitLabProvider:
    type: ClassVar[str] = "gitlab"
    claims_model: ClassVar[type[BaseModel]] = GitLabClaims
    config_model: ClassVar[type[BaseModel]] = GitLabConfig
    required_claims: ClassVar[dict[str, Check]] = {"project_path": check_project_path,
                                                   "ci_config_ref_uri": check_ci_config_ref_uri}
    optional_claims: ClassVar[dict[str, Check]] = {"environment": check_environment}
    # Pinned at the first successful exchange: a project deleted and created again under the same
    # path (or a group renamed and its name taken) gets new ids.
    bound_claims: ClassVar[tuple[str, ...]] = ("project_id", "namespace_id")
    # Documented by GitLab ("OpenID Connect (OIDC) Authentication Using ID Tokens"), deliberately
    # matched by nothing: the relationship names a project, a pipeline file and an environment.
    # Some are shown in the audit log and to the approver of a stage; runner_environment is the
    # registry's policy (broker/domain/policy.py: self-hosted runners unless the issuer allows them).
    unchecked_claims: ClassVar[frozenset[str]] = frozenset({
        "sub", "namespace_path", "user_id", "user_login", "user_email", "user_access_level", "user_identities",
        "groups_direct", "pipeline_id", "pipeline_source", "job_id", "ref", "ref_type", "ref_path",
        "ref_protected", "environment_protected", "deployment_tier", "environment_action", "runner_id",
        "runner_environment", "sha",
        "ci_config_sha", "project_visibility", "job_project_id", "job_project_path", "job_namespace_id",
        "job_namespace_path"})
    shown_claims: ClassVar[tuple[str, ...]] = ("project_path", "ci_config_ref_uri", "environment")
    create_hint: ClassVar[str] = "--project <group/project> --file <.gitlab-ci.yml>"

    def config_from_request(self, raw: Any) -> GitLabConfig:
        try:
            return GitLabConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidConfig(f"claims.{'.'.join(map(str, first['loc']))}: {first['msg']} "
                                "(expected --project group[/subgroup]/project and --file <pipeline>.yml)") from None

    def subject(self, claims: GitLabClaims) -> str:
        return claims.project_path

    def origin(self, claims: GitLabClaims) -> dict[str, str]:
        """Where the job ran, in the keys a stage shows its approver."""
        values = {"provider": self.type, "repository": claims.project_path, "workflow_ref": claims.ci_config_ref_uri,
                  "ref": claims.ref_path or claims.ref, "sha": claims.sha, "run_id": claims.pipeline_id,
                  "job_id": claims.job_id, "actor": claims.user_login, "environment": claims.environment}
        return {k: v for k, v in values.items() if v}

    def seen(self, claims: GitLabClaims) -> dict[str, Any]:
        return {"project_path": claims.project_path, "ci_config_ref_uri": claims.ci_config_ref_uri,
                "environment": claims.environment, "ref": claims.ref_path or claims.ref, "sha": claims.sha,
                "pipeline_id": claims.pipeline_id, "job_id": claims.job_id, "user_login": claims.user_login,
                "pipeline_source": claims.pipeline_source, "runner_environment": claims.runner_environment,
                "project_id": claims.project_id, "namespace_id": claims.namespace_id, "jti": claims.jti}
