"""The commit-time check that a token is still granted, on the backend under test (SQLite, or
PostgreSQL where it share-locks the rows a revoke deletes)."""

from __future__ import annotations

import uuid

from broker.domain.credentials import TokenKind
from broker.domain.github import GitHubConfig
from broker.store import accounts, registry
from broker.store import trust as trust_store
from broker.store.revocation import token_still_granted
from tests.support.packages import unique_name


def token(conn, kind: TokenKind, **fields) -> str:
    return accounts.insert_token(conn, digest=uuid.uuid4().hex, display="sg_test", kind=kind, **fields).id


def _config(repository: str) -> GitHubConfig:
    return GitHubConfig.model_validate({"repository": repository, "workflow_ref": {"file": "release.yml"}})


def test_a_trust_token_is_granted_until_one_of_its_relationships_goes(b):
    name = unique_name("revoked")
    with b.db.write() as conn:
        user = accounts.create_user(conn, name, f"{name}@example.com", "not a real hash")
        assert registry.create_package(conn, name, user.id, "public")
        kept = trust_store.add_relationship(conn, name, "github", _config("a/b"), ["createPackage"], name, issuer="i")
        gone = trust_store.add_relationship(conn, name, "github", _config("a/c"), ["createPackage"], name, issuer="i")
        minted = token(conn, TokenKind.TRUST, user_id=None, trust_package=name,
                       trust_relationships=[kept.id, gone.id])
    with b.db.write() as conn:
        assert token_still_granted(conn, minted)
        assert trust_store.remove_relationship(conn, name, gone.id)
    with b.db.write() as conn:
        assert not token_still_granted(conn, minted)


def test_an_account_token_is_granted_until_it_is_deleted(b):
    name = unique_name("revoked")
    with b.db.write() as conn:
        user = accounts.create_user(conn, name, f"{name}@example.com", "not a real hash")
        granular = token(conn, TokenKind.GRANULAR, user_id=user.id)
    with b.db.write() as conn:
        assert token_still_granted(conn, granular)
        assert accounts.delete_token(conn, granular)
    with b.db.write() as conn:
        assert not token_still_granted(conn, granular)
