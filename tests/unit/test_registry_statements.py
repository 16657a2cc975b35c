"""The publish path's statements, built once and run with parameters (store/registry.py, store/webhooks.py),
on the backend under test: what they change, and what a taken version number answers."""

from __future__ import annotations

from broker.store import accounts, registry
from broker.store import webhooks as hook_store


def _package(b, name: str = "stmt-pkg") -> int:
    with b.db.write() as conn:
        user = accounts.create_user(conn, f"owner-of-{name}", f"{name}@example.com", "x")
        assert registry.create_package(conn, name, user.id, "public")
    return user.id


def test_a_version_number_is_claimed_once(b):
    _package(b)
    with b.db.write() as conn:
        assert registry.claim_version(conn, "stmt-pkg", "1.0.0", "published", {"name": "stmt-pkg"}, None)
        assert not registry.claim_version(conn, "stmt-pkg", "1.0.0", "staged", {"name": "other"}, None)
        assert registry.claim_version(conn, "stmt-pkg", "1.0.1", "staged", {}, None)
    with b.db.read() as conn:
        row = registry.version_row(conn, "stmt-pkg", "1.0.0")
        assert (row.state, row.manifest) == ("published", {"name": "stmt-pkg"})  # the first claim stands
        assert registry.version_row(conn, "stmt-pkg", "1.0.1").state == "staged"
        assert registry.version_row(conn, "stmt-pkg", "2.0.0") is None


def test_touch_bumps_the_revision_and_sets_only_what_it_is_given(b):
    _package(b)
    with b.db.read() as conn:
        before = registry.package(conn, "stmt-pkg")
    with b.db.write() as conn:
        registry.touch(conn, "stmt-pkg", readme="# hello")
        registry.touch(conn, "stmt-pkg")
        registry.touch(conn, "stmt-pkg", access="restricted", readme="# again")
    with b.db.read() as conn:
        after = registry.package(conn, "stmt-pkg")
    assert after.rev == before.rev + 3
    assert (after.readme, after.access) == ("# again", "restricted")
    assert after.modified_at >= before.modified_at


def test_a_tag_is_set_then_moved(b):
    _package(b)
    with b.db.write() as conn:
        registry.set_tag(conn, "stmt-pkg", "latest", "1.0.0")
        registry.set_tag(conn, "stmt-pkg", "next", "2.0.0-rc.1")
        registry.set_tag(conn, "stmt-pkg", "latest", "1.1.0")
    with b.db.read() as conn:
        assert registry.tags(conn, "stmt-pkg") == {"latest": "1.1.0", "next": "2.0.0-rc.1"}


def test_ownership_is_per_package_and_account(b):
    owner = _package(b)
    _package(b, "stmt-other")
    with b.db.read() as conn:
        assert registry.is_owner(conn, "stmt-pkg", owner)
        assert not registry.is_owner(conn, "stmt-other", owner)


def test_an_event_body_is_made_only_when_a_hook_wants_the_event(b):
    _package(b)
    made = []

    def body() -> bytes:
        made.append(1)
        return b'{"event":"package.published"}'

    with b.db.write() as conn:
        assert hook_store.enqueue(conn, "stmt-pkg", "package.published", body) == 0
    assert made == []
    with b.db.write() as conn:
        hook_store.add_hook(conn, "stmt-pkg", "sealed-url", ["package.published"], "sealed-secret", "owner")
        assert hook_store.enqueue(conn, "stmt-pkg", "stage.created", body) == 0
        assert hook_store.enqueue(conn, "stmt-pkg", "package.published", body) == 1
    assert made == [1]
