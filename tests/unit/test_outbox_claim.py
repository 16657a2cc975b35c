"""Leasing webhook deliveries: which due deliveries a round takes first."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert

from broker.store import schema
from broker.store import webhooks as hook_store
from broker.store.db import Database
from broker.store.tables import webhook_outbox


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'outbox.db'}")
    schema.upgrade(database)
    yield database
    database.dispose()


def test_a_round_takes_what_has_waited_longest_not_the_oldest_events_that_keep_failing(db):
    """Deliveries to a receiver that never answers come due again and again; ordered by event, they kept
    taking every round's slots ahead of an event that has been due for longer."""
    now = time.time()
    with db.write() as conn:
        failing = hook_store.add_hook(conn, None, "sealed", None, "sealed", "admin")
        working = hook_store.add_hook(conn, None, "sealed", None, "sealed", "admin")
        conn.execute(insert(webhook_outbox), [  # older events, each of its own stream, retried: due just now
            {"hook_id": failing.id, "package": f"p{n}", "event": "stage.created", "body": "{}",
             "created_at": now - 600, "attempts": 5, "next_attempt_at": now - 1} for n in range(8)])
        conn.execute(insert(webhook_outbox).values(hook_id=working.id, package="q", event="stage.created", body="{}",
                                                   created_at=now - 60, attempts=0, next_attempt_at=now - 60))
        batch = hook_store.claim(conn, "me", now, 60.0, 8)
    assert working.id in [d.hook.id for d in batch]
