"""Scope-wide trust in the store: the `@scope/*` name, who owns a scope, and which relationships the
exchange matches for a package (its own, then its scope's that cover it)."""

from __future__ import annotations

import pytest

from broker.domain.github import GitHubConfig
from broker.domain.names import parse_scope_wildcard
from broker.store import accounts, registry, schema
from broker.store import trust as trust_store
from broker.store.db import Database


@pytest.mark.parametrize("raw, scope", [
    ("@acme/*", "@acme"),
    ("@a-b.c_d/*", "@a-b.c_d"),
    ("@acme/widget", None),
    ("@acme/**", None),
    ("@Acme/*", None),
    ("@/*", None),
    ("@.acme/*", None),
    ("acme/*", None),
    ("*", None),
    ("@ac/me/*", None),
    (None, None),
])
def test_parse_scope_wildcard(raw, scope):
    assert parse_scope_wildcard(raw) == scope


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'scope.db'}")
    schema.upgrade(database)
    with database.write() as conn:
        alice = accounts.create_user(conn, "alice", "a@example.com", "x")
        bob = accounts.create_user(conn, "bob", "b@example.com", "x")
        for name in ("@acme/one", "@acme/two", "@acme_x/other"):  # _ is a LIKE wildcard: it must not leak
            registry.create_package(conn, name, alice.id, "public")
        registry.set_owners(conn, "@acme/two", [alice.id, bob.id])
        trust_store.add_scope_relationship(conn, "@acme", "github", GitHubConfig.model_validate(
            {"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}}), ["createStagedPackage"], "alice",
            issuer="https://token.actions.githubusercontent.com")
    yield database
    database.dispose()


def test_the_scopes_owners_own_every_one_of_its_packages(db):
    with db.read() as conn:
        alice = accounts.user_by_name(conn, "alice")
        assert registry.scope_owner_ids(conn, "@acme") == [alice.id]
        assert registry.scope_owner_ids(conn, "@acm") == []
        assert registry.scope_owner_ids(conn, "@nobody") == []


def test_a_package_gets_its_scopes_relationships_when_their_creator_owns_it(db):
    with db.read() as conn:
        assert [r.package for r in trust_store.trust_for(conn, "@acme/one").relationships] == ["@acme/*"]
        assert trust_store.trust_for(conn, "@acme_x/other").relationships == []


def test_a_free_name_of_the_scope_gets_them_and_answers_strangers_as_restricted(db):
    with db.read() as conn:
        found = trust_store.trust_for(conn, "@acme/new")
        assert found.access == "restricted" and len(found.relationships) == 1
        assert trust_store.trust_for(conn, "@other/new") is None
        assert trust_store.trust_for(conn, "unscoped") is None


def test_a_package_someone_else_published_in_the_scope_is_not_covered(db):
    with db.write() as conn:
        carol = accounts.create_user(conn, "carol", "c@example.com", "x")
        registry.create_package(conn, "@acme/carols", carol.id, "public")
    with db.read() as conn:
        assert trust_store.trust_for(conn, "@acme/carols").relationships == []


def test_a_free_name_gets_only_the_relationships_of_the_accounts_its_first_stage_makes_its_owners(db):
    """A first stage creates the package owned by the scope's owners: a relationship whose creator is not
    one of them (it gave its packages away, or someone else's package made it not own them all) must not
    create packages for them."""
    with db.write() as conn:
        carol = accounts.create_user(conn, "carol", "c@example.com", "x")
        alice = accounts.user_by_name(conn, "alice")
        for name in ("@acme/one", "@acme/two"):  # alice handed the scope's packages to carol
            registry.set_owners(conn, name, [carol.id])
    with db.read() as conn:
        assert trust_store.trust_for(conn, "@acme/new") is None
    with db.write() as conn:
        registry.set_owners(conn, "@acme/two", [alice.id, carol.id])  # carol owns every package: hers count
        trust_store.add_scope_relationship(conn, "@acme", "github", GitHubConfig.model_validate(
            {"repository": "acme/carol", "workflow_ref": {"file": "release.yml"}}), ["createStagedPackage"], "carol",
            issuer="https://token.actions.githubusercontent.com")
    with db.read() as conn:
        assert [r.created_by for r in trust_store.trust_for(conn, "@acme/new").relationships] == ["carol"]


def test_a_free_name_of_a_scope_without_packages_gets_its_namesakes_relationships_only(db):
    config = GitHubConfig.model_validate({"repository": "bob/widget", "workflow_ref": {"file": "release.yml"}})
    with db.write() as conn:
        for creator in ("bob", "alice"):  # alice's: made when she owned @bob's packages, since deleted
            trust_store.add_scope_relationship(conn, "@bob", "github", config, ["createStagedPackage"], creator,
                                               issuer=f"https://issuer.example/{creator}")
    with db.read() as conn:
        assert [r.created_by for r in trust_store.trust_for(conn, "@bob/new").relationships] == ["bob"]


def test_a_free_name_of_a_scope_whose_packages_no_one_account_owns_is_covered_by_nothing(db):
    with db.write() as conn:
        carol = accounts.create_user(conn, "carol", "c@example.com", "x")
        registry.create_package(conn, "@acme/carols", carol.id, "public")
        trust_store.add_scope_relationship(conn, "@acme", "github", GitHubConfig.model_validate(
            {"repository": "acme/x", "workflow_ref": {"file": "release.yml"}}), ["createStagedPackage"], "acme",
            issuer="https://token.actions.githubusercontent.com")  # as the namesake "acme" might have made it
    with db.read() as conn:
        assert trust_store.first_owner_names(conn, "@acme") == []
        assert trust_store.trust_for(conn, "@acme/new") is None
        assert trust_store.first_owner_names(conn, "@empty") == ["empty"]
