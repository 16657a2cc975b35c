"""The schema, portable between SQLite and PostgreSQL. Times are UTC epoch seconds (float)."""

from __future__ import annotations

from sqlalchemy import (Boolean, Column, Float, ForeignKey, ForeignKeyConstraint, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(214), nullable=False, unique=True),
    Column("email", String(320), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("tfa_mode", String(20)),  # None, auth-only, auth-and-writes
    Column("tfa_pending", Boolean, nullable=False, default=False),
    Column("tfa_secret", Text),  # sealed with the secret key
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

recovery_codes = Table(
    "recovery_codes", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("code_digest", String(64), primary_key=True),
)

# A TOTP step once accepted for an account: the primary key makes every code single-use.
otp_steps = Table(
    "otp_steps", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("step", Integer, primary_key=True, autoincrement=False),
    Column("used_at", Float, nullable=False),
)

otp_failures = Table(
    "otp_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_otp_failures_user_at", "user_id", "at"),
)

# Password checks that failed, or are running (a row is written before the hash is checked and
# deleted when it matches): per-account and per-address backoff count them. `account` is the name
# as given, known or not.
password_failures = Table(
    "password_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(214), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_password_failures_account_at", "account", "at"),
    Index("ix_password_failures_address_at", "address", "at"),
    Index("ix_password_failures_at", "at"),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(36), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("display", String(16), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("kind", String(16), nullable=False),
    Column("name", String(255)),
    Column("description", Text),
    Column("readonly", Boolean, nullable=False, default=False),
    Column("bypass_2fa", Boolean, nullable=False, default=False),
    Column("packages", Text, nullable=False, default="[]"),  # JSON lists
    Column("scopes", Text, nullable=False, default="[]"),
    Column("cidr_whitelist", Text, nullable=False, default="[]"),
    Column("trust_package", String(214)),
    Column("trust_permissions", Text, nullable=False, default="[]"),
    Column("trust_relationships", Text, nullable=False, default="[]"),
    Column("origin", Text, nullable=False, default="{}"),  # for trust tokens: where the job ran
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Index("ix_tokens_user", "user_id"),
)

packages = Table(
    "packages", metadata,
    Column("name", String(214), primary_key=True),
    Column("access", String(16), nullable=False, default="public"),
    Column("mfa", String(16), nullable=False, default="none"),
    Column("rev", Integer, nullable=False, default=1),
    Column("readme", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("modified_at", Float, nullable=False),
    # How many distinct maintainers must approve a stage before it is published (1 to 10).
    Column("required_approvals", Integer, nullable=False, default=1, server_default="1"),
)

owners = Table(
    "owners", metadata,
    Column("package", String(214), ForeignKey("packages.name", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

# One row per version number ever used: the primary key is the one version-number space of
# published, unpublished and staged versions.
versions = Table(
    "versions", metadata,
    Column("package", String(214), ForeignKey("packages.name", ondelete="CASCADE"), primary_key=True),
    Column("version", String(256), primary_key=True),
    Column("state", String(16), nullable=False),  # published, unpublished, staged
    Column("manifest", Text, nullable=False),  # JSON, dist without tarball URL
    Column("blob", String(128)),  # sha512 hex of the tarball; None once unpublished
    Column("created_at", Float, nullable=False),
)

# A staged version: its number, manifest and blob live in `versions` (state "staged"), so that
# published and staged versions share one version-number space.
stages = Table(
    "stages", metadata,
    Column("id", String(36), primary_key=True),
    Column("package", String(214), nullable=False),
    Column("version", String(256), nullable=False),
    Column("tag", String(128), nullable=False),
    Column("readme", Text, nullable=False, default=""),
    Column("integrity", String(255), nullable=False),
    Column("shasum", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("actor_type", String(16), nullable=False),
    Column("origin", Text, nullable=False, default="{}"),
    Column("idempotency_key", String(255)),
    Column("created_at", Float, nullable=False),
    ForeignKeyConstraint(["package", "version"], ["versions.package", "versions.version"], ondelete="CASCADE"),
    UniqueConstraint("package", "version", name="uq_stage_version"),
    UniqueConstraint("package", "idempotency_key", name="uq_stage_idempotency"),
    Index("ix_stages_created", "created_at"),
)

# One maintainer's approval of one stage: the primary key makes approvals distinct, and the rows go
# with the stage (published, rejected or expired).
stage_approvals = Table(
    "stage_approvals", metadata,
    Column("stage_id", String(36), ForeignKey("stages.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("user_name", String(214), nullable=False),
    Column("at", Float, nullable=False),
)

dist_tags = Table(
    "dist_tags", metadata,
    Column("package", String(214), ForeignKey("packages.name", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("version", String(256), nullable=False),
)

trust_relationships = Table(
    "trust_relationships", metadata,
    Column("id", String(36), primary_key=True),
    Column("package", String(214), ForeignKey("packages.name", ondelete="CASCADE"), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("issuer", String(255), nullable=False),  # the OIDC issuer whose tokens it accepts (CircleCI: per org)
    Column("claims", Text, nullable=False),  # canonical JSON of the provider's configuration
    Column("permissions", Text, nullable=False),
    Column("bound", Text, nullable=False, default="{}"),
    Column("created_by", String(214)),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("package", "provider", "issuer", "claims", name="uq_trust_same_config"),
    Index("ix_trust_provider_issuer", "provider", "issuer"),
)

# Relationships an owner of every package of a scope made for `@scope/*`: they apply to the scope's
# packages their creator owns, and to names of the scope that do not exist yet (a first stage).
scope_trust_relationships = Table(
    "scope_trust_relationships", metadata,
    Column("id", String(36), primary_key=True),
    Column("scope", String(214), nullable=False),  # "@scope"
    Column("provider", String(32), nullable=False),
    Column("issuer", String(255), nullable=False),  # as trust_relationships.issuer
    Column("claims", Text, nullable=False),
    Column("permissions", Text, nullable=False),
    Column("bound", Text, nullable=False, default="{}"),
    Column("created_by", String(214), nullable=False),  # the account name: it must own what it covers
    Column("created_at", Float, nullable=False),
    UniqueConstraint("scope", "provider", "issuer", "claims", name="uq_scope_trust_same_config"),
)

# Every OIDC JWT id ever exchanged, kept until the JWT expires: the primary key refuses replays.
oidc_jtis = Table(
    "oidc_jtis", metadata,
    Column("issuer", String(255), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_oidc_jtis_expires", "expires_at"),
)

# Where events are sent: a package's hooks (set by its owners) or the registry's (package None, set by
# the operator). The secret signs each delivery; it is sealed with the secret key, like TOTP secrets.
webhooks = Table(
    "webhooks", metadata,
    Column("id", String(36), primary_key=True),
    Column("package", String(214), ForeignKey("packages.name", ondelete="CASCADE")),
    Column("url", Text, nullable=False),  # sealed: a hook URL may hold a credential (Slack's path does)
    Column("events", Text, nullable=False, default="[]"),  # JSON list; empty means every event
    Column("secret", Text, nullable=False),
    Column("created_by", String(214)),
    Column("created_at", Float, nullable=False),
    Index("ix_webhooks_package", "package"),
)

# The durable outbox: one row per event and hook, written in the transaction of the event itself and
# delivered in id order per (hook, package) by whichever instance leases it.
webhook_outbox = Table(
    "webhook_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook_id", String(36), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("package", String(214), nullable=False),
    Column("event", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the exact bytes that are signed and sent (UTF-8 JSON)
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(36)),
    Column("lease_until", Float),
    Column("delivered_at", Float),
    Column("failed_at", Float),
    Column("last_error", Text),
    Index("ix_webhook_outbox_stream", "hook_id", "package", "id"),
    Index("ix_webhook_outbox_pending", "delivered_at", "next_attempt_at"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("event", String(64), nullable=False),
    Column("actor", String(255)),
    Column("package", String(214)),
    Column("detail", Text, nullable=False, default="{}"),
    Index("ix_audit_log_package_id", "package", "id"),  # a package's history, newest first
    Index("ix_audit_log_at", "at"),  # time filters and retention pruning
)

__all__ = ["metadata", "users", "recovery_codes", "otp_steps", "otp_failures", "password_failures", "tokens", "packages",
           "owners", "versions", "stages", "stage_approvals", "dist_tags", "trust_relationships",
           "scope_trust_relationships", "oidc_jtis", "webhooks", "webhook_outbox", "audit_log", "UniqueConstraint"]
