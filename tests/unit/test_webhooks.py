"""Webhook rules: targets and the addresses they may reach (SSRF), the signature, the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json

import pytest
from pydantic import ValidationError

from broker.domain.webhooks import (EVENTS, GIVE_UP_AFTER, HookRequest, InvalidTarget, address_allowed, backoff,
                                    check_target, event_text, next_try, signature)
from broker.services.delivery import TargetRefused, checked_address
from broker.services.outbox import event_body


@pytest.mark.parametrize("address, allowed", [
    ("93.184.216.34", True), ("2606:4700::1111", True),
    ("127.0.0.1", False), ("::1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False),  # cloud metadata
    ("fe80::1", False), ("fd00:ec2::254", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False), ("224.0.0.1", False), ("192.0.2.1", False),
    # IPv6 forms that carry an IPv4 address a gateway or the host may reach: judged as that address
    ("64:ff9b::7f00:1", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::a00:1", False),  # NAT64 (RFC 6052)
    ("64:ff9b::5db8:d822", True),  # NAT64 of a public address
    ("64:ff9b:1::a00:1", False),  # local-use NAT64 prefix (RFC 8215)
    ("2002:7f00:1::1", False), ("2002:a9fe:a9fe::1", False), ("2002:5db8:d822::1", True),  # 6to4
    ("::7f00:1", False), ("::a9fe:a9fe", False),  # IPv4-compatible (deprecated)
    ("::ffff:0:7f00:1", False), ("::ffff:0:a9fe:a9fe", False),  # IPv4-translated (RFC 2765)
    ("fec0::1", False),  # site-local (deprecated, still routed inside some networks)
    ("192.0.0.8", False),  # IETF protocol assignments
])
def test_only_public_unicast_addresses_are_reachable(address, allowed):
    assert address_allowed(ipaddress.ip_address(address), allow_private=False) == allowed
    assert address_allowed(ipaddress.ip_address(address), allow_private=True)


@pytest.mark.parametrize("url", ["https://hooks.example.com/x", "https://93.184.216.34:8443/hook"])
def test_an_https_url_with_a_public_or_named_host_is_a_target(url):
    assert check_target(url, allow_private=False) == url


@pytest.mark.parametrize("url", ["http://hooks.example.com/x", "ftp://example.com/", "https:///nohost",
                                 "https://user:pw@example.com/", "https://127.0.0.1/", "https://[::1]/",
                                 "https://169.254.169.254/latest", "https://10.0.0.1/", "http://127.0.0.1:9/",
                                 "https://example.com:99999/", "javascript:alert(1)", "https://[::1", "https://exa mple.com/",
                                 "https://example.com/\n", "https://bücher.example/"])
def test_other_targets_are_refused(url):
    with pytest.raises(InvalidTarget):
        check_target(url, allow_private=False)


def test_http_is_only_for_loopback_when_the_operator_allows_private_targets():
    assert check_target("http://127.0.0.1:9/hook", allow_private=True)
    assert check_target("http://localhost:9/hook", allow_private=True)
    with pytest.raises(InvalidTarget):
        check_target("http://hooks.example.com/", allow_private=True)


def test_a_name_resolving_to_loopback_is_refused_at_connect_time():
    with pytest.raises(TargetRefused, match="non-public"):
        checked_address("https://localhost/hook", allow_private=False)
    assert checked_address("http://localhost:9/hook", allow_private=True).is_loopback


def test_an_unresolvable_host_is_refused():
    with pytest.raises(TargetRefused, match="cannot resolve"):
        checked_address("https://no-such-host.invalid/hook", allow_private=False)


def test_the_signature_is_hmac_sha256_over_the_raw_body():
    body = event_body("stage.created", "pkg", "alice", {"version": "1.0.0", "tag": "latest", "stage_id": "s1"})
    expected = hmac.new(b"whsec_x", body, hashlib.sha256).hexdigest()
    assert signature("whsec_x", body) == "sha256=" + expected


def test_an_event_body_has_an_id_the_event_and_a_slack_text():
    document = json.loads(event_body("stage.approved", "pkg", "bob",
                                     {"version": "1.2.0", "stage_id": "s1", "approvals": 1, "required": 2,
                                      "nothing": None}))
    assert document["event"] == "stage.approved" and document["package"] == "pkg" and document["actor"] == "bob"
    assert document["text"] == "bob approved pkg@1.2.0 (stage s1): 1 of 2 required approvals"
    assert "nothing" not in document["data"] and len(document["id"]) == 36


def test_every_event_has_its_own_text_and_slack_markup_is_escaped():
    for event in EVENTS:
        assert not event_text(event, "pkg", "a", {}).startswith(event)
    assert event_text("trust.created", "p<x>&", "a", {"provider": "github"}).endswith("p&lt;x&gt;&amp;")


def test_retries_back_off_exponentially_up_to_the_longest_wait():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff(30) == backoff(10_000) == 3600
    assert backoff(5, longest=10) == 10


def test_a_delivery_is_given_up_36_hours_after_its_event():
    assert next_try(3, created_at=0.0, now=100.0) == 108.0
    assert next_try(3, created_at=0.0, now=GIVE_UP_AFTER) is None


@pytest.mark.parametrize("body", [{"url": "https://x.example/", "events": ["nope"]}, {"url": ""},
                                  {"url": "https://x.example/", "events": []}, {"url": "https://x/", "secret": "s"},
                                  {"url": "https://x.example/" + "a" * 2048}])
def test_a_hook_request_names_known_events_and_nothing_else(body):
    with pytest.raises(ValidationError):
        HookRequest.model_validate(body)


def test_a_receiver_that_trickles_its_answer_cannot_hold_a_delivery_past_its_deadline(monkeypatch):
    """Each read waits at most the read timeout; a byte every few seconds used to keep one delivery (and
    the round, and every other package's deliveries waiting for it) forever."""
    import socket
    import threading
    import time

    from broker.services import delivery

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.wait(0.2):
                try:
                    conn.sendall(b"a")
                except OSError:
                    return
    threading.Thread(target=trickle, daemon=True).start()
    monkeypatch.setattr(delivery, "DEADLINE", 1.0)
    outcome: list[object] = []

    def post() -> None:
        try:
            outcome.append(delivery.send(f"http://127.0.0.1:{server.getsockname()[1]}/hook", b"{}", "s",
                                         "stage.created", "id", allow_private=True))
        except Exception as exc:  # noqa: BLE001 - the test wants to see what it was
            outcome.append(exc)
    started = time.monotonic()
    sender = threading.Thread(target=post, daemon=True)
    sender.start()
    sender.join(5.0)
    stop.set()
    server.close()
    assert not sender.is_alive(), "the delivery was still waiting for the trickled answer after 5 s"
    assert isinstance(outcome[0], OSError) and time.monotonic() - started < 3.0, outcome
