"""Every STAGEGATE_* variable the broker reads, in one pydantic-settings model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .domain.approvals import duration_seconds

MIB = 1024 * 1024

IssuerKind = Literal["github", "gitlab", "circleci"]


def _checked_issuer_url(value: str) -> str:
    parts = urlsplit(value)
    loopback = parts.hostname in ("localhost", "::1") or (parts.hostname or "").startswith("127.")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("an OIDC issuer must be an https URL (http only for a loopback host)")
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError("an OIDC issuer is a URL with a host and no query or fragment")
    return value


class IssuerSetting(BaseModel):
    """One issuer of a known kind. For CircleCI, `issuer` is the prefix its per-organization issuers
    start with (the organization id follows it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: IssuerKind
    issuer: str = Field(max_length=200)
    allow_self_hosted_runners: bool = False  # see broker/domain/policy.py
    allow_workflow_run: bool = False  # GitHub: a workflow_run job's token cannot tell a fork's trigger
    default: bool = Field(default=False, exclude=True)  # the kind's STAGEGATE_OIDC_<KIND>_ISSUER[_PREFIX]

    @field_validator("issuer")
    @classmethod
    def _url(cls, value: str) -> str:
        return _checked_issuer_url(value)

    @model_validator(mode="after")
    def _normalized(self) -> "IssuerSetting":
        # CircleCI's prefix ends with "/" (the org id is the last path segment); the others never do.
        url = self.issuer.rstrip("/") + ("/" if self.kind == "circleci" else "")
        object.__setattr__(self, "issuer", url)
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEGATE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./.stagegate"),
        description="Where the embedded SQLite database, the secret key and tarball blobs live.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite inside data_dir."
    )
    blob_url: str | None = Field(
        default=None,
        description="Where tarballs live: unset means DATA_DIR/blobs; s3://bucket/prefix for S3-compatible storage.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint override (MinIO, SeaweedFS, R2 …); AWS_* variables give credentials."
    )
    public_url: str | None = Field(
        default=None,
        description="The URL clients use; tarball URLs are built from it. Default http://HOST:PORT/.",
    )
    open_signup: bool = Field(default=False, description="Whether `npm adduser` may create accounts.")
    secret_key: str | None = Field(
        default=None,
        description="Key that encrypts TOTP secrets at rest; generated into data_dir when unset.",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="PEM keyring that signs published versions (npm registry signatures); give every instance "
                    "the same file. Unset means DATA_DIR/signing-key.pem, generated on first start.",
    )
    max_tarball_bytes: int = Field(default=100 * MIB, gt=0, description="Upload limit for one tarball.")
    uploads_in_flight_bytes: int | None = Field(
        default=None, gt=0,
        description="The request-body bytes all requests in flight may hold at once (on disk while they arrive, in "
                    "memory while they are parsed); beyond it a request gets 503 server.busy with Retry-After. "
                    "Default: three of the largest publish bodies.",
    )
    body_idle_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a request body may pause before the client is dropped (408)."
    )
    body_total_timeout: float = Field(
        default=900.0, gt=0, description="Seconds a whole request body may take to arrive (408 beyond it)."
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a connection has to send a complete request line and headers."
    )
    keep_alive_timeout: int = Field(
        default=5, gt=0, description="Seconds an idle keep-alive connection stays open between requests."
    )
    log_format: Literal["json", "plain"] = Field(
        default="json", description="Log lines as JSON objects (one per line) or plain text for local runs."
    )
    workers: int | None = Field(
        default=None, ge=1, le=64,
        description="Server processes sharing the port (`serve --workers`); unset: one per CPU core.",
    )
    access_log: bool = Field(
        default=False,
        description="One structured line per request (logger stagegate.access, at info level). Off by default: "
                    "it costs ~12% of a cached read's CPU (bench/), over the 10% a default may cost.",
    )
    read_revalidate_seconds: float | None = Field(
        default=None, ge=0,
        description="How long an anonymous GET may be answered from memory without asking the database, besides "
                    "the write-generation file every process on one host shares (a write seen there retires every "
                    "kept answer at once). Unset: no bound with the embedded SQLite (one host by nature), 1 s with "
                    "PostgreSQL, whose instances may run on hosts that cannot share that file: the longest a read "
                    "there may lag a write made elsewhere. 0: never answered from memory.",
    )
    session_token_days: int = Field(default=30, gt=0, description="Lifetime of login tokens.")
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token a scraper of /-/metrics must send. Unset: /-/metrics answers loopback clients only.",
    )
    oidc_github_issuer: str = Field(
        default="https://token.actions.githubusercontent.com",
        description="The GitHub Actions OIDC issuer; its JWKS comes from its discovery document.",
    )
    oidc_gitlab_issuer: str = Field(
        default="https://gitlab.com",
        description="The GitLab instance whose CI/CD ID tokens `npm trust gitlab` relationships accept.",
    )
    oidc_circleci_issuer_prefix: str = Field(
        default="https://oidc.circleci.com/org/",
        description="CircleCI's issuers are per organization: this prefix, then the organization id that a "
                    "`npm trust circleci --org-id` relationship names.",
    )
    oidc_issuers: list[IssuerSetting] = Field(
        default_factory=list,
        description='More issuers of a known kind, as a JSON list of {"kind": "github"|"gitlab"|"circleci", '
                    '"issuer": URL, "allow_self_hosted_runners": false, "allow_workflow_run": false} (GitHub '
                    "Enterprise Server, self-managed GitLab, CircleCI server: for CircleCI the URL is the prefix "
                    "before the organization id). "
                    "An entry naming a default issuer only sets its options.",
    )
    oidc_extra_audiences: list[str] = Field(
        default_factory=list, description="Audiences accepted besides npm:<public hostname> (JSON list)."
    )
    oidc_token_ttl: int = Field(
        default=900, gt=0, le=3600, description="Seconds a token minted by the OIDC exchange lives (max 1 h)."
    )
    audit_retention_days: int | None = Field(
        default=None, gt=0,
        description="Days audit-log entries are kept; unset keeps them forever. The broker prunes at start, then hourly.",
    )
    stage_ttl: int = Field(
        default=30 * 86400,
        description="How long a stage waits for its approvals: seconds, or a duration such as 30d, 12h, 90m, 2w. "
                    "An older stage is rejected automatically (its version number is freed) and cannot be approved.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback, private and link-local addresses (and http:// on loopback); "
                    "for tests and closed networks only: it opens the broker to SSRF by any package owner.",
    )
    webhook_retry_max: float = Field(
        default=3600.0, gt=0, le=86400,
        description="Longest wait in seconds between two tries of a failed webhook delivery (the waits double "
                    "from 2 s up to it); a delivery is retried for 36 hours, then marked failed.",
    )

    @field_validator("stage_ttl", mode="before")
    @classmethod
    def _stage_ttl_is_a_duration(cls, value: object) -> int:
        return duration_seconds(value)  # type: ignore[arg-type]

    @field_validator("oidc_github_issuer", "oidc_gitlab_issuer", "oidc_circleci_issuer_prefix")
    @classmethod
    def _issuer_is_https(cls, value: str, info) -> str:
        url = _checked_issuer_url(value).rstrip("/")
        return url + "/" if info.field_name == "oidc_circleci_issuer_prefix" else url

    @field_validator("oidc_issuers")
    @classmethod
    def _no_default_among_more(cls, value: list[IssuerSetting]) -> list[IssuerSetting]:
        if any(entry.default for entry in value):
            raise ValueError("an issuer of STAGEGATE_OIDC_ISSUERS has no 'default' option: the default of a kind "
                             "is STAGEGATE_OIDC_GITHUB_ISSUER, STAGEGATE_OIDC_GITLAB_ISSUER or "
                             "STAGEGATE_OIDC_CIRCLECI_ISSUER_PREFIX")
        return value

    @model_validator(mode="after")
    def _issuers_differ(self) -> "Settings":
        self.issuer_settings()  # raises when two kinds share an issuer
        return self

    def issuer_settings(self) -> list[IssuerSetting]:
        """Every trusted issuer: the default of each kind, then STAGEGATE_OIDC_ISSUERS. A token is matched
        against the relationships of its issuer only, so one URL is one issuer of one kind."""
        defaults = [IssuerSetting(kind="github", issuer=self.oidc_github_issuer, default=True),
                    IssuerSetting(kind="gitlab", issuer=self.oidc_gitlab_issuer, default=True),
                    IssuerSetting(kind="circleci", issuer=self.oidc_circleci_issuer_prefix, default=True)]
        found: dict[str, IssuerSetting] = {}
        for entry in [*defaults, *self.oidc_issuers]:
            same = found.get(entry.issuer)
            if same is not None and (same.kind != entry.kind or not same.default):
                raise ValueError(f"the OIDC issuer {entry.issuer} is configured twice"
                                 + (f" (as {same.kind} and {entry.kind})" if same.kind != entry.kind else ""))
            found[entry.issuer] = entry.model_copy(update={"default": same is not None or entry.default})
        prefixes = [e.issuer for e in found.values() if e.kind == "circleci"]
        for url in found:
            clash = [p for p in prefixes if url != p and url.startswith(p)]
            if clash:
                raise ValueError(f"the OIDC issuer {url} starts with the CircleCI issuer prefix {clash[0]}")
        return list(found.values())

    def default_issuer(self, kind: str) -> str:
        """The issuer a relationship of `kind` trusts when its creator names none (`npm trust <kind>`)."""
        return next(e.issuer for e in self.issuer_settings() if e.kind == kind and e.default)

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("STAGEGATE_PUBLIC_URL must be an http(s) URL with a host")
        return value if value.endswith("/") else value + "/"

    def resolved_public_url(self, host: str, port: int) -> str:
        if self.public_url:
            return self.public_url
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}/"

    def resolved_read_revalidate_seconds(self) -> float | None:
        if self.read_revalidate_seconds is not None:
            return self.read_revalidate_seconds
        return None if self.embedded else 1.0

    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "signing-key.pem"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def generation_file(self) -> Path:
        """The write-generation counter (store/generation.py): next to an SQLite database, which every
        process that writes it must reach on one host anyway; in the data dir otherwise."""
        url = self.resolved_database_url()
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            return Path(url[len("sqlite:///"):].split("?")[0] + "-generation")
        return self.data_dir / "write-generation"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stagegate.db').resolve()}"

    @property
    def max_body_bytes(self) -> int:
        """A publish document carries the tarball in base64 (4/3 larger) plus metadata."""
        return self.max_tarball_bytes * 4 // 3 + 8 * MIB

    @property
    def upload_budget_bytes(self) -> int:
        return self.uploads_in_flight_bytes or 3 * self.max_body_bytes

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def upload_budget_per_worker(self) -> int:
        """Each worker holds its share of the budget (so the processes together hold no more than it),
        but never less than one body of the largest size allowed (unless the whole budget is smaller)."""
        budget = self.upload_budget_bytes
        return max(budget // self.resolved_workers(), min(budget, self.max_body_bytes))
