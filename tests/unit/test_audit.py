"""The audit log's rules (secrets kept out, filters, how an entry reads) and its store (record, page,
walk, prune) on a real SQLite database."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import insert, select

from broker.domain.audit import (REDACTED, AuditFilter, Entry, InvalidFilter, event_filter, instant, matches_event,
                                 may_read_history, scrubbed)
from broker.domain.credentials import Allowed, Credential, OtpRequired, Refused, TfaMode, TokenKind
from broker.store import audit, schema
from broker.store.db import Database
from broker.store.tables import audit_log

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"
TOKEN = "sg_" + "A" * 43


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    schema.upgrade(database)
    yield database
    database.dispose()


def stored(db: Database) -> list[tuple[str | None, dict]]:
    with db.read() as conn:
        return [(r.actor, json.loads(r.detail)) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]


# --- secrets ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["token", "id_token", "session-token", "jwt", "otp", "password", "tfa_secret",
                                 "client_secret", "authorization", "recovery_codes", "Password"])
def test_a_key_named_like_a_secret_is_redacted(key):
    clean, found = scrubbed({key: "value", "nested": {key: "value"}})
    assert clean == {key: REDACTED, "nested": {key: REDACTED}} and found == [key, f"nested.{key}"]


@pytest.mark.parametrize("key", ["token_id", "tokens_ended", "second_factor", "otp_failures", "auth", "secrets_count"])
def test_keys_that_name_ids_or_counts_are_kept(key):
    assert scrubbed({key: "kept"}) == ({key: "kept"}, [])


@pytest.mark.parametrize("value", [JWT, TOKEN, f"refused: Bearer {JWT}", f"token {TOKEN} was used", "npm_" + "a" * 36])
def test_a_value_shaped_like_a_token_or_jwt_is_redacted_wherever_it_is(value):
    clean, found = scrubbed({"outcome": value, "list": [{"deep": value}]})
    text = json.dumps(clean)
    assert "eyJ" not in text and "sg_A" not in text and "npm_a" not in text
    assert found == ["outcome", "list[0].deep"]


def test_record_stores_no_secret_and_says_which_key_slipped(db, caplog):
    with db.write() as conn:
        audit.record(conn, "oidc.exchange", actor=TOKEN, package="p", jwt=JWT, outcome=f"refused for {JWT}",
                     token_id="1234", claims={"repository": "acme/widget"})
    (actor, detail), = stored(db)
    assert actor == REDACTED
    assert detail == {"jwt": REDACTED, "outcome": f"refused for {REDACTED}", "token_id": "1234",
                      "claims": {"repository": "acme/widget"}}
    assert "redacted jwt, outcome, actor in a oidc.exchange event" in caplog.text
    assert JWT not in caplog.text and TOKEN not in caplog.text


# --- filters ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, kind", [("oidc", "oidc"), ("oidc.", "oidc."), ("oidc.*", "oidc."),
                                       ("Stage.Approved", "stage.approved"), ("", None), (None, None)])
def test_event_filters(raw, kind):
    assert event_filter(raw) == kind


@pytest.mark.parametrize("raw", ["%", "stage_approved", "a" * 65, ".oidc", "oidc%"])
def test_an_event_filter_with_other_characters_is_refused(raw):
    with pytest.raises(InvalidFilter):
        event_filter(raw)


@pytest.mark.parametrize("raw, expected", [
    ("2026-11-01", 1793491200.0), ("2026-11-01T00:00:00Z", 1793491200.0), ("2026-11-01T01:00:00+01:00", 1793491200.0),
    ("2026-11-01T00:00:00.500", 1793491200.5), (None, None), ("", None)])
def test_instants_are_iso_8601_and_utc_unless_they_say_otherwise(raw, expected):
    assert instant(raw, "since") == expected


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01", "1793491200", "2026/11/01"])
def test_an_instant_that_is_not_iso_8601_is_refused(raw):
    with pytest.raises(InvalidFilter, match="ISO 8601"):
        instant(raw, "since")


EVENTS = ["oidc.exchange", "oidc", "oidcx.exchange", "stage.created", "stage.approved", "stage.approved-later"]


@pytest.mark.parametrize("kind", ["oidc", "oidc.", "stage.", "stage.approved", "stage", "nothing"])
def test_the_store_filters_events_as_the_rule_says(db, kind):
    with db.write() as conn:
        for event in EVENTS:
            audit.record(conn, event, actor="a", package="p")
    with db.read() as conn:
        entries, total = audit.page(conn, AuditFilter(package="p", event=kind), 0, 100)
    assert sorted(e.event for e in entries) == sorted(e for e in EVENTS if matches_event(kind, e))
    assert total == len(entries)


def _old_rows(db: Database, count: int, at: float, package: str = "p") -> None:
    with db.write() as conn:
        conn.execute(insert(audit_log), [{"at": at, "event": "stage.created", "actor": "a", "package": package,
                                          "detail": "{}"} for _ in range(count)])


def test_pages_are_newest_first_and_time_filters_bound_them(db):
    _old_rows(db, 3, 1000.0)
    _old_rows(db, 2, 2000.0)
    _old_rows(db, 1, 2000.0, package="other")
    with db.read() as conn:
        first, total = audit.page(conn, AuditFilter(package="p"), 0, 2)
        second, _ = audit.page(conn, AuditFilter(package="p"), 2, 2)
        early, early_total = audit.page(conn, AuditFilter(package="p", until=2000.0), 0, 100)
        late, _ = audit.page(conn, AuditFilter(since=2000.0), 0, 100)
    assert total == 5 and [e.id for e in first + second] == [5, 4, 3, 2]
    assert early_total == 3 and {e.at for e in early} == {1000.0}
    assert [e.package for e in late] == ["other", "p", "p"]


def test_walk_reads_everything_oldest_first_in_batches(db):
    _old_rows(db, 25, 1000.0)
    with db.read() as conn:
        assert [e.id for e in audit.walk(conn, AuditFilter(), batch=10)] == list(range(1, 26))


def test_prune_deletes_only_expired_entries_in_batches(db):
    _old_rows(db, audit.PRUNE_BATCH * 2 + 7, 1000.0)
    _old_rows(db, 3, time.time())
    with db.write() as conn:
        assert [audit.prune(conn, 2000.0) for _ in range(4)] == [audit.PRUNE_BATCH, audit.PRUNE_BATCH, 7, 0]
    with db.read() as conn:
        assert [e.at > 2000.0 for e in audit.walk(conn, AuditFilter())] == [True] * 3


# --- how an entry reads -----------------------------------------------------------------------------------

def test_an_entry_splits_how_its_actor_authenticated_from_what_was_recorded():
    approved = Entry(1, 0.0, "stage.approved", "alice", "p", {"auth": "session", "token_id": "t1",
                                                               "second_factor": "otp", "version": "1.0.0"})
    assert approved.wire() == {"id": 1, "time": "1970-01-01T00:00:00.000Z", "event": "stage.approved", "package": "p",
                               "actor": "alice", "auth": {"kind": "session", "tokenId": "t1", "secondFactor": "otp"},
                               "detail": {"version": "1.0.0"}}
    staged = Entry(2, 0.0, "stage.created", "acme/w", "p", {"auth": "trust", "origin": {"repository": "acme/w"}})
    assert staged.wire()["auth"] == {"kind": "trust", "origin": {"repository": "acme/w"}}
    exchange = Entry(3, 0.0, "oidc.exchange", "acme/w", "p", {"claims": {"repository": "acme/w", "jti": "j"},
                                                              "outcome": "granted"})
    assert exchange.wire()["auth"] == {"kind": "oidc", "origin": {"repository": "acme/w"}}
    account = Entry(4, 0.0, "user.login", "alice", None, {})
    assert account.wire()["auth"] is None


def test_an_entry_reads_as_one_line():
    staged = Entry(2, 0.0, "stage.created", "acme/w", "p", {"auth": "trust", "version": "1.1.0", "tag": "next",
                                                            "origin": {"repository": "acme/w", "run_id": "9"},
                                                            "note": "two words", "none": None})
    assert staged.line() == ('1970-01-01T00:00:00.000Z  stage.created  p  acme/w (trust, repository=acme/w, run_id=9)'
                             '  version=1.1.0 tag=next note="two words"')


# --- who may read ----------------------------------------------------------------------------------------

SESSION = Credential(user_id=1, username="alice", kind=TokenKind.SESSION)
WRITE = Credential(user_id=1, username="alice", kind=TokenKind.GRANULAR, packages=("p",))
READ_ONLY = Credential(user_id=1, username="alice", kind=TokenKind.GRANULAR, read_only=True)
OTHER = Credential(user_id=1, username="alice", kind=TokenKind.GRANULAR, packages=("q",), bypass_2fa=True)


@pytest.mark.parametrize("cred, tfa, owner, expected", [
    (SESSION, TfaMode.AUTH_AND_WRITES, True, OtpRequired),
    (SESSION, TfaMode.AUTH_ONLY, True, OtpRequired),
    (WRITE, TfaMode.AUTH_AND_WRITES, True, OtpRequired),
    (SESSION, None, True, Refused),
    (SESSION, TfaMode.AUTH_AND_WRITES, False, Refused),
    (READ_ONLY, TfaMode.AUTH_AND_WRITES, True, Refused),
    (OTHER, TfaMode.AUTH_AND_WRITES, True, Refused),
])
def test_only_owners_with_2fa_and_write_access_read_a_history_and_always_with_an_otp(cred, tfa, owner, expected):
    decision = may_read_history(cred, tfa, "p", owner)
    assert isinstance(decision, expected) and not isinstance(decision, Allowed)
