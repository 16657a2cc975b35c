"""Fixtures shared by all tests: a broker process, fake GitHub, GitLab and CircleCI issuers, the npm CLI runner,
accounts with 2FA."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.accounts import Accounts
from tests.support.backends import Backends
from tests.support.broker import BrokerProcess
from tests.support.issuer import FakeIssuer


@pytest.fixture(scope="session")
def issuer() -> FakeIssuer:
    fake = FakeIssuer().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gitlab_issuer() -> FakeIssuer:
    fake = FakeIssuer("gitlab").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def circleci_issuer() -> FakeIssuer:
    fake = FakeIssuer("circleci").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def ghes_issuer() -> FakeIssuer:
    """A second GitHub issuer (as GitHub Enterprise Server's), in STAGEGATE_OIDC_ISSUERS."""
    fake = FakeIssuer().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def self_managed_gitlab() -> FakeIssuer:
    """A second GitLab issuer (a self-managed instance) whose self-hosted runners are allowed."""
    fake = FakeIssuer("gitlab").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def backends(tmp_path_factory) -> Backends:
    made = Backends(tmp_path_factory.mktemp("stores"))
    yield made
    made.close()


@pytest.fixture(scope="session")
def broker_env(issuer, gitlab_issuer, circleci_issuer, ghes_issuer, self_managed_gitlab) -> dict[str, str]:
    more = [{"kind": "github", "issuer": ghes_issuer.url},
            {"kind": "gitlab", "issuer": self_managed_gitlab.url, "allow_self_hosted_runners": True}]
    return {"STAGEGATE_OPEN_SIGNUP": "true", "STAGEGATE_OIDC_GITHUB_ISSUER": issuer.url,
            "STAGEGATE_OIDC_GITLAB_ISSUER": gitlab_issuer.url,
            "STAGEGATE_OIDC_CIRCLECI_ISSUER_PREFIX": circleci_issuer.circleci_prefix,
            "STAGEGATE_OIDC_ISSUERS": json.dumps(more)}


@pytest.fixture(scope="session")
def broker(backends, broker_env) -> BrokerProcess:
    """One broker with open signup for the whole run; every test makes its own accounts."""
    process = backends.broker(env=broker_env)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def npm_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("npm-cache")


@pytest.fixture
def accounts(broker, npm_cache, tmp_path) -> Accounts:
    return Accounts(broker.url, tmp_path, npm_cache)


def pytest_terminal_summary(terminalreporter):
    from tests.unit.test_pack_equality import RESULTS

    if RESULTS:
        total = len(RESULTS)
        line = (f"pack equality over {total} fixtures: tar bytes identical {sum(r['tar'] for r in RESULTS.values())}"
                f"/{total}, integrity identical {sum(r['integrity'] for r in RESULTS.values())}/{total}, "
                f"listing order identical {sum(r['order'] for r in RESULTS.values())}/{total}")
        terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when any broker log of it shows a token, JWT or password (issue 14 item 11)."""
    from tests.support.logscan import broker_logs, leaks

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    root = factory.getbasetemp()
    found = leaks(root)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line(f"secret scan: {len(broker_logs(root))} broker logs, {len(found)} secrets found")
        for line in found[:20]:
            reporter.write_line(f"  secret in a log: {line}", red=True)
    if found:
        session.exitstatus = 1


def pytest_collection_modifyitems(config, items):
    """Each pass runs the tests of its own backend, and a test that does not depend on one runs once.

    A test marked `backend(kind)` runs in that backend's pass only (several instances over one
    PostgreSQL database, say). Of the rest, the SQLite pass (the default) runs every test, and the
    PostgreSQL pass (STAGEGATE_TEST_BACKEND=postgres) those that use the backend under test: a test
    that never touches the `backends` fixture (directly or through a broker, an account or a store)
    runs the same code in both, so only the SQLite pass runs it."""
    current = os.environ.get("STAGEGATE_TEST_BACKEND", "sqlite")
    kept, elsewhere = [], []
    for item in items:
        marker = item.get_closest_marker("backend")
        if marker is not None:
            runs = marker.args[0] == current
        else:
            runs = current == "sqlite" or "backends" in getattr(item, "fixturenames", ())
        (kept if runs else elsewhere).append(item)
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = kept
