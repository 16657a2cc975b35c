"""Fixtures shared by all tests: a broker process, the npm CLI runner, accounts with 2FA."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.accounts import Accounts
from tests.support.broker import BrokerProcess


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> BrokerProcess:
    """One broker with open signup for the whole run; every test makes its own accounts."""
    process = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", env={"STAGEGATE_OPEN_SIGNUP": "true"})
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def npm_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("npm-cache")


@pytest.fixture
def accounts(broker, npm_cache, tmp_path) -> Accounts:
    return Accounts(broker.url, tmp_path, npm_cache)
