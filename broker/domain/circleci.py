"""CircleCI as a trust provider: its OIDC token's claims (all namespaced `oidc.circleci.com/…`), the
relationship's configuration (`npm trust circleci --org-id --project-id --pipeline-definition-id
--vcs-origin [--context-id …]`), and the claim table that matches one against the other.

CircleCI's issuer is per organization (`https://oidc.circleci.com/org/<org-id>`): the relationship's
org id picks it (broker/oidc/issuers.py), so a token of organization X only ever meets relationships
of X. Its tokens carry no `jti`: the replay key is derived from the signed claims (see `CircleCIClaims`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .trust import Check, InvalidConfig

NS = "oidc.circleci.com/"
ORG_ID, PROJECT_ID, PIPELINE_DEFINITION_ID = f"{NS}org-id", f"{NS}project-id", f"{NS}pipeline-definition-id"
VCS_ORIGIN, VCS_REF, CONTEXT_IDS, SSH_RERUN = f"{NS}vcs-origin", f"{NS}vcs-ref", f"{NS}context-ids", f"{NS}ssh-rerun"
PIPELINE_ID, WORKFLOW_ID, JOB_ID = f"{NS}pipeline-id", f"{NS}workflow-id", f"{NS}job-id"

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UUID_ANY_CASE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# `host/owner/repo` as `npm trust circleci --vcs-origin` insists (no scheme), e.g. github.com/acme/widget.
_VCS_ORIGIN = r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9_.~-]+){2,}$"
MAX_CONTEXTS = 10


class CircleCIClaims(BaseModel):
    """The claims of a CircleCI OIDC token that stagegate reads (by their `oidc.circleci.com/…` names,
    through `getattr` too); the others stay in `model_extra`."""

    model_config = ConfigDict(extra="allow")
    iss: str
    jti: str
    exp: int
    iat: int
    sub: str | None = None
    org_id: str | None = Field(default=None, alias=ORG_ID)
    project_id: str | None = Field(default=None, alias=PROJECT_ID)
    pipeline_definition_id: str | None = Field(default=None, alias=PIPELINE_DEFINITION_ID)
    vcs_origin: str | None = Field(default=None, alias=VCS_ORIGIN)
    vcs_ref: str | None = Field(default=None, alias=VCS_REF)
    context_ids: list[str] = Field(default_factory=list, alias=CONTEXT_IDS, max_length=100)
    ssh_rerun: bool | None = Field(default=None, alias=SSH_RERUN)
    pipeline_id: str | None = Field(default=None, alias=PIPELINE_ID)
    workflow_id: str | None = Field(default=None, alias=WORKFLOW_ID)
    job_id: str | None = Field(default=None, alias=JOB_ID)

    # The JWT layer requires no `jti` of this model: CircleCI does not put one in its tokens.
    derives_jti: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _replay_key(cls, data: Any) -> Any:
        """No jti: the token's own claims name it. A signed payload is only ever this job's token of
        this second (iat), with its job, workflow and pipeline ids: a digest of all of it is as unique
        as the token (RS256 signatures are deterministic, so equal claims are the same token)."""
        if isinstance(data, dict) and "jti" not in data:
            canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
            data = {**data, "jti": "claims-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()}
        return data

    @field_validator("context_ids", mode="before")
    @classmethod
    def _no_contexts(cls, value: Any) -> Any:
        return [] if value is None else value  # a job that uses no context

    def __getattr__(self, name: str) -> Any:
        # The claim table and the refusal messages read claims by their names, which are not identifiers.
        field = _FIELD_OF_CLAIM.get(name)
        if field is not None:
            return getattr(self, field)
        return super().__getattr__(name)


_FIELD_OF_CLAIM = {f.alias: n for n, f in CircleCIClaims.model_fields.items() if f.alias}


class CircleCIConfig(BaseModel):
    """What `npm trust circleci` sends as `claims`, keyed by the claim names (as stored and listed)."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=False)
    org_id: str = Field(alias=ORG_ID, pattern=_UUID_ANY_CASE)
    project_id: str = Field(alias=PROJECT_ID, pattern=_UUID_ANY_CASE)
    pipeline_definition_id: str = Field(alias=PIPELINE_DEFINITION_ID, pattern=_UUID_ANY_CASE)
    vcs_origin: str = Field(alias=VCS_ORIGIN, pattern=_VCS_ORIGIN, max_length=255)
    context_ids: list[str] | None = Field(default=None, alias=CONTEXT_IDS, max_length=MAX_CONTEXTS)

    @field_validator("org_id", "project_id", "pipeline_definition_id")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()  # CircleCI writes its UUIDs in lower case; npm accepts either

    @field_validator("context_ids")
    @classmethod
    def _contexts(cls, value: list[str] | None) -> list[str] | None:
        if not value:
            return None
        if not all(isinstance(v, str) and re.match(_UUID_ANY_CASE, v) for v in value):
            raise ValueError("every context id must be a UUID")
        return sorted({v.lower() for v in value})  # canonical: the same set stores the same way


def _org_of_issuer(iss: str) -> str:
    return iss.rstrip("/").rsplit("/", 1)[-1].lower()


def check_org_id(config: CircleCIConfig, claims: CircleCIClaims) -> str | None:
    """The claim and the issuer both name the organization (the issuer is per organization)."""
    seen = (claims.org_id or "").lower()
    if seen != config.org_id:
        return f"{ORG_ID} is {claims.org_id!r} but the relationship expects {config.org_id!r}"
    if _org_of_issuer(claims.iss) != config.org_id:
        return f"the token's issuer {claims.iss!r} is not organization {config.org_id!r}'s"
    return None


def _exact(claim: str, field: str) -> Check:
    def check(config: CircleCIConfig, claims: CircleCIClaims) -> str | None:
        expected, seen = getattr(config, field), getattr(claims, field)
        if (seen or "").lower() != expected:
            return f"{claim} is {seen!r} but the relationship expects {expected!r}"
        return None
    check.__name__ = f"check_{field}"
    return check


check_project_id = _exact(PROJECT_ID, "project_id")
check_pipeline_definition_id = _exact(PIPELINE_DEFINITION_ID, "pipeline_definition_id")


def check_vcs_origin(config: CircleCIConfig, claims: CircleCIClaims) -> str | None:
    """The repository the pipeline ran for (CircleCI: a fork's build must be told apart by it).
    Repository hosts and paths ignore case."""
    if (claims.vcs_origin or "").lower() != config.vcs_origin.lower():
        return f"{VCS_ORIGIN} is {claims.vcs_origin!r} but the relationship expects {config.vcs_origin!r}"
    return None


def check_context_ids(config: CircleCIConfig, claims: CircleCIClaims) -> str | None:
    """Every context the relationship names must be one the job used: a restricted context is CircleCI's
    way to say who may run the job (as a protected environment is GitHub's). All of them, not any: a
    relationship naming a strict and a loose context must not be as weak as the loose one."""
    if not config.context_ids:
        return None
    used = {c.lower() for c in claims.context_ids}
    missing = [c for c in config.context_ids if c not in used]
    if missing:
        return (f"{CONTEXT_IDS} is {claims.context_ids!r} but the relationship expects the job to use the "
                f"context{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return None


def check_ssh_rerun(config: CircleCIConfig, claims: CircleCIClaims) -> str | None:
    """A job rerun with SSH lets a person run anything in it: never trusted. A token that does not say
    (no claim) is refused too: CircleCI always writes it."""
    if claims.ssh_rerun is not False:
        return ("the job was rerun with SSH: a person may have run anything in it" if claims.ssh_rerun else
                f"the token does not say whether the job is an SSH rerun ({SSH_RERUN})")
    return None


class CircleCIProvider:
    type: ClassVar[str] = "circleci"
    claims_model: ClassVar[type[BaseModel]] = CircleCIClaims
    config_model: ClassVar[type[BaseModel]] = CircleCIConfig
    required_claims: ClassVar[dict[str, Check]] = {ORG_ID: check_org_id, PROJECT_ID: check_project_id,
                                                   PIPELINE_DEFINITION_ID: check_pipeline_definition_id,
                                                   VCS_ORIGIN: check_vcs_origin}
    # Checked on every token; context-ids only when the relationship names contexts.
    optional_claims: ClassVar[dict[str, Check]] = {CONTEXT_IDS: check_context_ids, SSH_RERUN: check_ssh_rerun}
    # Nothing to pin: CircleCI's ids are UUIDs a re-created project or organization does not get again.
    bound_claims: ClassVar[tuple[str, ...]] = ()
    # Documented by CircleCI ("Using OpenID Connect tokens in jobs", and the ids its tokens carry),
    # deliberately matched by nothing: the ref and the per-run ids are shown in the audit log and to a
    # stage's approver.
    unchecked_claims: ClassVar[frozenset[str]] = frozenset({"sub", VCS_REF, PIPELINE_ID, WORKFLOW_ID, JOB_ID})
    shown_claims: ClassVar[tuple[str, ...]] = (ORG_ID, PROJECT_ID, PIPELINE_DEFINITION_ID, VCS_ORIGIN)
    create_hint: ClassVar[str] = ("--org-id <uuid> --project-id <uuid> --pipeline-definition-id <uuid> "
                                  "--vcs-origin <host/owner/repo>")

    def config_from_request(self, raw: Any) -> CircleCIConfig:
        try:
            return CircleCIConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidConfig(f"claims.{'.'.join(map(str, first['loc']))}: {first['msg']} (expected --org-id, "
                                "--project-id and --pipeline-definition-id UUIDs and --vcs-origin host/owner/repo)"
                                ) from None

    def subject(self, claims: CircleCIClaims) -> str:
        return claims.vcs_origin or f"circleci project {claims.project_id}"

    def origin(self, claims: CircleCIClaims) -> dict[str, str]:
        """Where the job ran, in the keys a stage shows its approver."""
        values = {"provider": self.type, "repository": claims.vcs_origin,
                  "workflow_ref": f"pipeline definition {claims.pipeline_definition_id}", "ref": claims.vcs_ref,
                  "run_id": claims.pipeline_id, "job_id": claims.job_id}
        return {k: v for k, v in values.items() if v}

    def seen(self, claims: CircleCIClaims) -> dict[str, Any]:
        return {"org_id": claims.org_id, "project_id": claims.project_id,
                "pipeline_definition_id": claims.pipeline_definition_id, "vcs_origin": claims.vcs_origin,
                "vcs_ref": claims.vcs_ref, "context_ids": claims.context_ids, "ssh_rerun": claims.ssh_rerun,
                "pipeline_id": claims.pipeline_id, "workflow_id": claims.workflow_id, "job_id": claims.job_id,
                "jti": claims.jti}
