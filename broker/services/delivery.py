"""Delivering the webhook outbox: every instance leases due events and POSTs them, signed, to their hooks.

At least once, in order per (hook, package): an event is leased (a conditional update decides which
instance), sent, then marked delivered; a failure is retried with exponential backoff, and the next
event of the same package waits for it. A broker killed mid-delivery leaves a lease that runs out,
and another try follows: receivers deduplicate by the event `id` (also `X-Stagegate-Delivery`).

Targets are checked at connect time against server-side request forgery: the host is resolved here,
every address it resolves to must be public (unless STAGEGATE_WEBHOOK_ALLOW_PRIVATE), and the
request goes to that checked address (Host header and TLS server name stay the hook's host), so a
DNS answer that changes between check and connect (rebinding) cannot redirect it. No redirects are
followed, no proxy from the environment is used, the response body is never read, and once the address
is resolved a try ends after DEADLINE seconds however slowly the receiver answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
from anyio import to_thread

from ..api.context import Broker
from ..domain.webhooks import (DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, address_allowed, next_try,
                               signature)
from ..store import webhooks as hook_store

log = logging.getLogger("stagegate")

INSTANCE = str(uuid.uuid4())  # this process, as the owner of the leases it takes
LEASE = 60.0  # seconds a leased delivery is this instance's; far beyond one try's timeout
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEADLINE = 20.0  # seconds for one whole try once the address is resolved: well within LEASE
BATCH = 8
POLL = 1.0
KEEP_SETTLED = 7 * 86400  # delivered or given-up rows are kept a week (for `hooks` listings), then pruned


class TargetRefused(Exception):
    """The hook's host resolves to an address it may not reach."""


def checked_address(url: str, allow_private: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address to connect to: every address the host resolves to must be allowed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    refused = [str(a) for a in addresses if not address_allowed(a, allow_private)]
    if not addresses or refused:
        raise TargetRefused(f"{host} resolves to a non-public address ({', '.join(refused) or 'none'})")
    if parts.scheme == "http" and not all(a.is_loopback for a in addresses):
        raise TargetRefused(f"http:// is only for loopback hosts; {host} is not one")
    return addresses[0]


def send(url: str, body: bytes, secret: str, event: str, event_id: str, allow_private: bool) -> int:
    """POST the body to the checked address of the hook's host; the response status."""
    address = checked_address(url, allow_private)
    original = httpx.URL(url)
    target = original.copy_with(host=str(address))
    headers = {"host": original.netloc.decode("ascii"), "content-type": "application/json",
               "user-agent": "stagegate-webhooks/1", SIGNATURE_HEADER: signature(secret, body),
               EVENT_HEADER: event, DELIVERY_HEADER: event_id}
    extensions = {"sni_hostname": original.host} if original.scheme == "https" else {}

    async def post() -> int:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
            async with client.stream("POST", target, content=body, headers=headers,
                                     extensions=extensions) as response:
                return response.status_code  # the body is never read: leaving the block closes the connection
    # httpx's timeouts bound each read and write, not the exchange: a receiver sending its status line and
    # headers a byte at a time held this thread (and the round, and every other hook's deliveries) for days.
    return asyncio.run(asyncio.wait_for(post(), DEADLINE))


def _attempt(b: Broker, delivery: hook_store.Delivery) -> bool:
    url = b.box.open(delivery.hook.sealed_url).decode()
    host = urlsplit(url).hostname  # never the whole URL in a log: a path may be a credential (Slack)
    event_id = json.loads(delivery.body)["id"]
    error: str | None
    try:
        secret = b.box.open(delivery.hook.sealed_secret).decode()
        status = send(url, delivery.body, secret, delivery.event, event_id,
                      b.settings.webhook_allow_private)
        error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
    except TargetRefused as exc:
        error = str(exc)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:  # a try that failed, not a crash:
        error = f"{type(exc).__name__}: {exc}"  # it is recorded and retried, and the stream is not wedged
    attempts = delivery.attempts + 1
    with b.db.write() as conn:
        if error is None:
            hook_store.delivered(conn, delivery.id, INSTANCE)
        else:
            retry_at = next_try(attempts, delivery.created_at, time.time(), b.settings.webhook_retry_max)
            hook_store.failed_attempt(conn, delivery.id, INSTANCE, error, retry_at)
    if error is None:
        log.info("webhook %s: delivered %s %s to %s", delivery.hook.id, delivery.event, event_id, host)
    else:
        log.warning("webhook %s: %s %s to %s failed (try %d): %s", delivery.hook.id, delivery.event, event_id,
                    host, attempts, error)
    return error is None


def deliver_due(b: Broker) -> int:
    """One round: lease what is due (nothing written when nothing is), send it; how many were tried."""
    now = time.time()
    with b.db.read() as conn:
        if not hook_store.anything_due(conn, now):
            return 0
    with b.db.write() as conn:
        batch = hook_store.claim(conn, INSTANCE, now, LEASE, BATCH)
    if not batch:
        return 0
    # One thread per leased delivery: a round lasts one try (its DNS lookup, then at most DEADLINE), well
    # inside the lease, however slow the receivers.
    with ThreadPoolExecutor(len(batch), thread_name_prefix="stagegate-webhook") as pool:
        list(pool.map(lambda d: _attempt(b, d), batch))
    return len(batch)


async def keep_delivering(b: Broker) -> None:
    """Every instance delivers; a round that tried something is followed by the next at once."""
    pruned_at = 0.0
    while True:
        tried = 0
        try:
            tried = await to_thread.run_sync(deliver_due, b)
            if time.monotonic() - pruned_at > 3600:
                pruned_at = time.monotonic()
                await to_thread.run_sync(_prune, b)
        except Exception:  # the database may be away for a while: try again next round, say so now
            log.exception("webhooks: a delivery round failed; trying again shortly")
        if not tried:
            await asyncio.sleep(POLL * random.uniform(0.8, 1.2))


def _prune(b: Broker) -> None:
    with b.db.write() as conn:
        hook_store.prune_settled(conn, time.time() - KEEP_SETTLED)
