"""Fixtures for unit tests that need the store itself (no HTTP): a broker object on the test backend."""

from __future__ import annotations

import pytest

from broker.runtime import build_broker
from broker.settings import Settings


@pytest.fixture
def b(backends, monkeypatch):
    """A Broker built in-process on a fresh database of the backend under test (SQLite or PostgreSQL + S3)."""
    storage = backends.storage()
    backends.upgrade(storage)
    for key, value in storage.items():
        monkeypatch.setenv(key, value)
    broker = build_broker(Settings())
    yield broker
    broker.db.dispose()
