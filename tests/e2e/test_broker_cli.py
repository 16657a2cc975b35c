"""The stagegate-broker command: the README's serve command, `user add`, the embedded defaults."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.broker import ROOT, free_port
from tests.support.npm import Npm
from tests.support.trust import github_relationship


def test_the_readme_serve_command_starts_a_broker_that_npm_ping_answers(tmp_path, npm_cache):
    port = free_port()
    env = {**os.environ, "STAGEGATE_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen([str(ROOT / "scripts" / "serve"), "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/-/ping", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        (tmp_path / ".npmrc").write_text("")
        npm = Npm(f"http://127.0.0.1:{port}/", tmp_path / ".npmrc", tmp_path, npm_cache)
        result = npm("ping", "--loglevel=notice")
        assert result.returncode == 0 and "PONG" in result.output, result
        key = tmp_path / "data" / "secret.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (tmp_path / "data" / "stagegate.db").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def test_user_add_reads_the_password_from_stdin_and_the_account_can_log_in(backends):
    storage = backends.storage()
    backends.upgrade(storage)
    env = {**os.environ, **storage}
    added = subprocess.run([sys.executable, "-m", "broker.cli", "user", "add", "maintainer",
                            "--email", "m@example.test"], input="a long password\n", text=True,
                           capture_output=True, env=env, cwd=ROOT)
    assert added.returncode == 0, added.stderr
    again = subprocess.run([sys.executable, "-m", "broker.cli", "user", "add", "maintainer",
                            "--email", "m@example.test"], input="a long password\n", text=True,
                           capture_output=True, env=env, cwd=ROOT)
    assert again.returncode != 0 and "exists already" in again.stderr
    broker = backends.broker(storage)
    try:
        login = httpx.put(broker.url + "-/user/org.couchdb.user:maintainer",
                          json={"name": "maintainer", "password": "a long password"})
        assert login.status_code == 201, login.text
        wrong = httpx.put(broker.url + "-/user/org.couchdb.user:maintainer",
                          json={"name": "maintainer", "password": "a wrong password"})
        assert wrong.status_code == 401
    finally:
        broker.stop()


def test_user_add_refuses_a_short_password(tmp_path):
    env = {**os.environ, "STAGEGATE_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "broker.cli", "user", "add", "x", "--email", "x@example.test"],
                            input="short\n", text=True, capture_output=True, env=env, cwd=ROOT)
    assert result.returncode != 0 and "at least 8" in result.stderr


def test_a_replayed_jwt_is_refused_across_a_broker_restart(backends, broker_env, issuer):
    from tests.support.packages import publish_document

    storage = backends.storage()
    broker = backends.broker(storage, broker_env)
    token = httpx.put(broker.url + "-/user/org.couchdb.user:owner", json={
        "name": "owner", "password": "long enough", "email": "o@example.test"}).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.put(broker.url + "pkg", json=publish_document("pkg", "1.0.0"), headers=auth).status_code == 200
    # 2FA is needed to add trust: enable it through the profile routes.
    from tests.support.otp import Authenticator
    started = httpx.post(broker.url + "-/npm/v1/user", headers=auth,
                         json={"tfa": {"mode": "auth-and-writes", "password": "long enough"}})
    authenticator = Authenticator.from_otpauth(started.json()["tfa"])
    httpx.post(broker.url + "-/npm/v1/user", headers=auth, json={"tfa": [authenticator.code()]})
    created = httpx.post(broker.url + "-/package/pkg/trust", headers={**auth, "npm-otp": authenticator.code()},
                         json=[github_relationship()])
    assert created.status_code == 201, created.text
    jwt = issuer.token()
    url = "-/npm/v1/oidc/token/exchange/package/pkg"
    assert httpx.post(broker.url + url, headers={"authorization": f"Bearer {jwt}"}).status_code == 201
    broker.stop()
    broker = backends.broker(storage, broker_env, port=broker.port)
    try:
        replay = httpx.post(broker.url + url, headers={"authorization": f"Bearer {jwt}"})
        assert replay.status_code == 401 and "already exchanged" in replay.json()["error"]
    finally:
        broker.stop()


@pytest.mark.backend("postgres")
def test_serve_refuses_an_out_of_date_schema_and_db_upgrade_fixes_it(backends):
    from broker.store import schema

    storage = backends.storage("postgres")
    env = {**os.environ, **storage}
    refused = subprocess.run([sys.executable, "-m", "broker.cli", "serve", "--port", str(free_port())], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "run `stagegate-broker db upgrade` first" in refused.stderr
    upgraded = subprocess.run([sys.executable, "-m", "broker.cli", "db", "upgrade"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    assert upgraded.returncode == 0 and f"empty → {schema.head(storage['STAGEGATE_DATABASE_URL'])}" in upgraded.stdout, \
        upgraded.stderr
    again = subprocess.run([sys.executable, "-m", "broker.cli", "db", "upgrade"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert "is current" in again.stdout
    broker = backends.broker(storage)
    try:
        assert httpx.get(broker.url + "-/healthz").json()["database"] == "ok"
    finally:
        broker.stop()


def test_healthz_checks_the_database_and_ping_stays_cheap(broker):
    assert httpx.get(broker.url + "-/healthz").json() == {"ok": True, "database": "ok", "blobs": "ok"}
    assert httpx.get(broker.url + "-/ping").json() == {}
