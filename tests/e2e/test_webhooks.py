"""Webhooks end to end: owners add them (2FA), events go to an outbox in the event's own transaction,
and a receiver that was down while the broker was killed (SIGKILL) and restarted still gets every
event once, in order per package, signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.accounts import Account, Accounts
from tests.support.broker import ROOT, free_port
from tests.support.packages import publish_document, unique_name
from tests.support.trust import github_relationship


class Receiver:
    """A webhook receiver on loopback that records every delivery (headers and raw body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict[str, str], bytes]] = []  # (path, headers, body)
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/registry"

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def hooked_package(owner: Account, receiver: Receiver) -> tuple[str, str]:
    """A package of `owner` (2FA for logins and account changes only: publishes need no OTP, so the test
    spends few codes) with a webhook to the receiver; its name and the hook's secret."""
    name = unique_name()
    published = owner.http("PUT", name, json=publish_document(name, "1.0.0"))
    assert published.status_code == 200, published.text
    owner.enable_2fa("auth-only")
    created = owner.http("POST", f"-/package/{name}/hooks", otp=True, json={"url": receiver.url})
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    return name, created.json()["secret"]


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return condition()


def operator(storage: dict[str, str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`stagegate-broker hooks …` as the operator runs it, with the brokers' own configuration."""
    result = subprocess.run([sys.executable, "-m", "broker.cli", "hooks", *args], cwd=ROOT,
                            env={**os.environ, **storage, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def receiver():
    receiver = Receiver(free_port())
    yield receiver
    receiver.stop()


def test_every_event_arrives_once_in_order_after_the_receiver_was_down_and_the_broker_killed(
        backends, broker_env, npm_cache, tmp_path, receiver):
    storage = backends.storage()
    # Waits between tries of at most 2 s: once the receiver is back, the next try is near.
    env = {**broker_env, "STAGEGATE_WEBHOOK_ALLOW_PRIVATE": "true", "STAGEGATE_WEBHOOK_RETRY_MAX": "2"}
    broker = backends.broker(storage, env)
    registry_hook = json.loads(operator(storage, env, "add", receiver.registry_url).stdout)
    try:
        accounts = Accounts(broker.url, tmp_path, npm_cache)
        alice, bob, carol = accounts.create("alice"), accounts.create("bob"), accounts.create("carol")
        # Three OTPs an account at most, so that no test waits for its authenticator's next step.
        first, first_secret = hooked_package(alice, receiver)
        second, second_secret = hooked_package(bob, receiver)
        third = unique_name()  # carol's package has no hook of its own: the registry's sees its events
        assert carol.http("PUT", third, json=publish_document(third, "1.0.0")).status_code == 200
        carol.enable_2fa("auth-only")
        staged = alice.http("POST", f"-/stage/package/{first}", json=publish_document(first, "1.1.0")).json()
        assert alice.http("POST", f"-/stage/{staged['stageId']}/approve", otp=True).status_code == 200
        rejected = bob.http("POST", f"-/stage/package/{second}", json=publish_document(second, "1.1.0")).json()
        assert bob.http("DELETE", f"-/stage/{rejected['stageId']}", otp=True).status_code == 200
        assert alice.http("PUT", first, json=publish_document(first, "1.2.0")).status_code == 200
        assert carol.http("POST", f"-/package/{third}/trust", otp=True, json=[github_relationship()]).status_code == 201
        relationship = carol.http("GET", f"-/package/{third}/trust").json()[0]["id"]
        assert carol.http("DELETE", f"-/package/{third}/trust/{relationship}", otp=True).status_code == 200
        pending = alice.http("GET", f"-/package/{first}/hooks").json()
        assert pending[0]["pending"] == 4 and "secret" not in pending[0]
        # a hook's path may be a credential (Slack's is): the listing, open to any token that may write the
        # package, names the target's origin only
        assert pending[0]["url"] == f"http://127.0.0.1:{receiver.port}/…", pending[0]
        time.sleep(3)  # a few failed tries against the receiver that is down
        broker.process.kill()  # SIGKILL: no shutdown, leases and retries left as they were
        broker.process.wait(10)
    finally:
        broker.stop()
    assert receiver.received == []
    receiver.start()
    # Two instances over one PostgreSQL database deliver together: leases keep each event to one of them.
    restarted = [backends.broker(storage, env) for _ in range(2 if backends.kind == "postgres" else 1)]
    try:
        assert wait_for(lambda: len(receiver.received) >= 17, 90), [b for _, _, b in receiver.received]
        time.sleep(1.5)  # and nothing more comes
    finally:
        for broker in restarted:
            broker.stop()
    secrets = {(first, "/hook"): first_secret, (second, "/hook"): second_secret,
               **{(name, "/registry"): registry_hook["secret"] for name in (first, second, third)}}
    for path in ("/hook", "/registry"):
        # The registry's hook was there before the packages: it also saw their first publishes.
        first_publish = ["package.published"] if path == "/registry" else []
        documents = [json.loads(body) for at, _, body in receiver.received if at == path]
        assert len({d["id"] for d in documents}) == len(documents), "each event once"
        of = lambda name: [d["event"] for d in documents if d["package"] == name]  # noqa: E731
        assert of(first) == first_publish + ["stage.created", "stage.approved", "package.published",
                                             "package.published"]
        assert of(second) == first_publish + ["stage.created", "stage.rejected"]
        assert of(third) == (first_publish + ["trust.created", "trust.revoked"] if path == "/registry" else [])
        published = [d["data"]["version"] for d in documents if d["event"] == "package.published"
                     and d["package"] == first]
        assert published == ["1.0.0"] * len(first_publish) + ["1.1.0", "1.2.0"]
    for path, headers, body in receiver.received:
        document = json.loads(body)
        secret = secrets[(document["package"], path)]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-stagegate-signature"], expected)
        assert headers["x-stagegate-event"] == document["event"] and headers["x-stagegate-delivery"] == document["id"]
        assert document["text"] and document["package"] in document["text"]
    listed = [json.loads(line) for line in operator(storage, env, "list").stdout.splitlines()]
    assert [(h["id"], h["url"], h["pending"]) for h in listed] == [(registry_hook["id"], receiver.registry_url, 0)]
    operator(storage, env, "rm", registry_hook["id"])
    assert operator(storage, env, "list").stdout == ""


def test_hooks_are_managed_by_owners_with_an_otp_and_private_targets_are_refused(accounts, broker):
    owner, stranger = accounts.create(), accounts.create()
    name = unique_name()
    assert owner.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    owner.enable_2fa()
    stranger.enable_2fa()
    path = f"-/package/{name}/hooks"
    target = {"url": "https://hooks.example.com/services/T0/B0/x"}
    assert owner.http("POST", path, json=target).status_code == 401  # an OTP every time
    assert stranger.http("POST", path, otp=True, json=target).status_code == 403
    for url in ("http://127.0.0.1:9/hook", "https://169.254.169.254/latest/meta-data", "https://10.0.0.1/"):
        refused = owner.http("POST", path, json={"url": url})  # a bad URL costs no OTP
        assert refused.status_code == 400 and refused.json()["code"] == "hook.invalid-url", refused.text
    created = owner.http("POST", path, otp=True, json={**target, "events": ["stage.created"]})
    assert created.status_code == 201, created.text
    hook = created.json()
    listed = owner.http("GET", path).json()
    assert [h["id"] for h in listed] == [hook["id"]] and listed[0]["events"] == ["stage.created"]
    assert stranger.http("GET", path).status_code == 403
    assert owner.http("DELETE", f"{path}/{hook['id']}", otp=True).status_code == 200
    assert owner.http("GET", path).json() == []
    events = [event for event, _, _ in broker.audit("webhook.%", name)]
    assert events == ["webhook.created", "webhook.deleted"]
    assert hook["secret"] not in broker.log()
