"""Which stages `npm stage list` shows: a token narrowed to scopes sees those scopes' stages only."""

from __future__ import annotations

import time

import pytest

from broker.store import accounts, registry, schema
from broker.store import staging as stage_store
from broker.store.db import Database
from broker.store.staging import StageRow, Visible


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'stages.db'}")
    schema.upgrade(database)
    with database.write() as conn:
        owner = accounts.create_user(conn, "owner", "o@example.com", "x")
        for n, name in enumerate(("@a_c/one", "@abc/two", "@a%c/three")):
            registry.create_package(conn, name, owner.id, "restricted")
            registry.claim_version(conn, name, "1.0.0", "staged", {}, None)
            assert stage_store.insert_stage(conn, StageRow(
                id=f"00000000-0000-4000-8000-00000000000{n}", package=name, version="1.0.0", tag="latest", readme="",
                integrity="sha512-x", shasum="x", size=1, actor="owner", actor_type="user", origin={},
                idempotency_key=None, created_at=time.time() + n))
    yield database, owner.id
    database.dispose()


def test_a_scope_selection_is_matched_literally_not_as_a_like_pattern(db):
    database, owner_id = db
    with database.read() as conn:
        rows, total = stage_store.list_stages(conn, Visible(owner_id=owner_id, scopes=("@a_c",)), 0, 10)
        assert [r.package for r in rows] == ["@a_c/one"] and total == 1
        rows, _ = stage_store.list_stages(conn, Visible(owner_id=owner_id, scopes=("@a%c",)), 0, 10)
        assert [r.package for r in rows] == ["@a%c/three"]
