"""Trust relationships in the database: configs load back into their model, the package's access
comes with them, and the first-use binding of the exchange is all or nothing."""

from __future__ import annotations

import pytest

from broker.api.oidc import _bound
from broker.domain.github import GitHubClaims, GitHubConfig
from broker.domain.providers import PROVIDERS
from broker.domain.trust import matching_relationships
from broker.oidc.issuers import TrustedIssuer
from broker.store import accounts, registry, schema
from broker.store import trust as trust_store
from broker.store.db import Database


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'trust.db'}")
    schema.upgrade(database)
    with database.write() as conn:
        owner = accounts.create_user(conn, "owner", "o@example.com", "x")
        registry.create_package(conn, "widget", owner.id, "restricted")
    yield database
    database.dispose()


def config(file: str, repository: str = "acme/widget") -> GitHubConfig:
    return GitHubConfig.model_validate({"repository": repository, "workflow_ref": {"file": file}})


def claims(repository_id: str = "1001") -> GitHubClaims:
    return GitHubClaims.model_validate({
        "iss": "i", "jti": "j", "exp": 2, "iat": 1, "sub": "s", "repository": "acme/widget",
        "repository_id": repository_id, "repository_owner": "acme", "repository_owner_id": "2002",
        "workflow_ref": "acme/widget/.github/workflows/release.yml@refs/heads/main"})


def test_a_stored_configuration_loads_back_as_its_model_with_the_packages_access(db):
    with db.write() as conn:
        trust_store.add_relationship(conn, "widget", "github", config("release.yml"), ["createPackage"], "owner",
                                     issuer="i")
    with db.read() as conn:
        found = trust_store.package_trust(conn, "widget")
    assert found.access == "restricted"
    (relationship,) = found.relationships
    assert isinstance(relationship.config, GitHubConfig) and relationship.config.workflow_ref.file == "release.yml"


def test_the_same_configuration_twice_is_refused_by_the_database(db):
    with db.write() as conn:
        assert trust_store.add_relationship(conn, "widget", "github", config("a.yml"), ["createPackage"], "o",
                                            issuer="i")
        assert trust_store.add_relationship(conn, "widget", "github", config("a.yml"), ["createPackage"], "o",
                                            issuer="i") is None


def test_a_missing_package_has_no_trust(db):
    with db.read() as conn:
        assert trust_store.package_trust(conn, "nothing") is None


def test_first_use_binds_every_matching_relationship_or_none(db):
    with db.write() as conn:
        trust_store.add_relationship(conn, "widget", "github", config("release.yml"), ["createPackage"], "o",
                                     issuer="i")
        trust_store.add_relationship(conn, "widget", "github", config("release.yml", "ACME/widget"),
                                              ["createStagedPackage"], "o", issuer="i")
    with db.read() as conn:
        relationships = trust_store.package_relationships(conn, "widget")
    first, last = relationships
    with db.write() as conn:  # meanwhile, another exchange bound the one matched last to other ids
        assert trust_store.bind(conn, last.id, {"repository_id": "9", "repository_owner_id": "9"})
    issuer = TrustedIssuer(PROVIDERS["github"], "i", jwks=None)
    match = matching_relationships(issuer.provider, claims(), relationships)
    assert len(match.granted) == 2
    with db.write() as conn:
        assert _bound(conn, issuer, claims(), match) is False
    with db.read() as conn:
        bound = {r.id: r.bound for r in trust_store.package_relationships(conn, "widget")}
    assert bound[first.id] == {}  # undone with the savepoint
