"""Migration 0004: relationships stored before it trust their kind's default issuer as the deployment
configures it, and the migrated schema is the one broker/store/tables.py declares."""

from __future__ import annotations

import json
import time
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from broker.settings import Settings
from broker.store import schema, tables
from broker.store.db import Database

GHES = "https://ghe.example.com/_services/token"


def _database(backends) -> Database:
    storage = backends.storage()
    Path(storage["STAGEGATE_DATA_DIR"]).mkdir(parents=True)
    settings = Settings(data_dir=storage["STAGEGATE_DATA_DIR"], database_url=storage.get("STAGEGATE_DATABASE_URL"))
    return Database(settings.resolved_database_url())


def test_existing_relationships_get_the_configured_default_issuer_of_their_kind(backends, monkeypatch):
    db = _database(backends)
    config = schema._config(db.url)
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003_audit")
        # Raw SQL: the tables as 0003 made them, not as tables.py declares them now.
        conn.exec_driver_sql("INSERT INTO packages (name, access, mfa, rev, readme, created_at, modified_at) "
                             f"VALUES ('widget', 'public', 'none', 1, '', {time.time()}, {time.time()})")
        for rid, provider in (("r-github", "github"), ("r-gitlab", "gitlab")):
            conn.exec_driver_sql(
                "INSERT INTO trust_relationships (id, package, provider, claims, permissions, bound, created_at) "
                f"VALUES ('{rid}', 'widget', '{provider}', '{{}}', '[]', '{{}}', 0)")
    monkeypatch.setenv("STAGEGATE_OIDC_GITHUB_ISSUER", GHES)
    monkeypatch.delenv("STAGEGATE_OIDC_GITLAB_ISSUER", raising=False)
    schema.upgrade(db)
    with db.read() as conn:
        issuers = dict(conn.execute(select(tables.trust_relationships.c.id, tables.trust_relationships.c.issuer)).all())
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    db.dispose()
    assert issuers == {"r-github": GHES, "r-gitlab": "https://gitlab.com"}
    assert [d for d in diff if "trust_relationships" in json.dumps(d, default=str)] == []
