"""How guessing is bounded: exponential backoff schedules, client-address keys, and a cap on
concurrent password hashing. Pure rules; the failures they count live in the database.

A `Backoff` lets `free` failures through back to back; after that each further attempt waits
`base * 2**(failures - free)` seconds after the last failure, never more than `cap`. Failures are
forgotten after `window` seconds. An attempt that comes too early is refused without being
checked, so a right guess made while locked out teaches the guesser nothing.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    free: int
    base: float
    cap: float
    window: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after the last of `failures` failures before the next attempt is checked."""
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** (failures - self.free))

    def wait(self, failures: int, last_failure: float | None, now: float) -> float:
        """Seconds until the next attempt may be checked; 0 when it may be checked now."""
        delay = self.delay(failures)
        if last_failure is None or failures == 0 or delay == 0:
            # No wait while failures are free, even if a concurrent request recorded one after `now`.
            return 0.0
        return max(0.0, last_failure + delay - now)

    def most_attempts(self, seconds: float) -> int:
        """The most attempts a guesser who always comes back exactly when allowed gets checked in
        `seconds`, every one of them wrong, starting with none on record (for the odds we publish)."""
        failures: list[float] = []
        now = 0.0
        while True:
            recent = [t for t in failures if t > now - self.window]
            allowed = recent[-1] + self.delay(len(recent)) if recent else now
            if allowed > now:
                now = allowed  # failures may have aged out meanwhile: look again
                continue
            if now >= seconds:
                return len(failures)
            failures.append(now)


# 6-digit TOTP codes: after 5 wrong codes in a day, 30 s, 1 min, 2 min … up to 1 h between guesses.
OTP = Backoff(free=5, base=30.0, cap=3600.0, window=86400.0)
# Passwords, per account: 10 mistakes for free, then 5 s, 10 s … up to 15 min between guesses.
PASSWORD_ACCOUNT = Backoff(free=10, base=5.0, cap=900.0, window=86400.0)
# Passwords, per client address (any account, known or not): spraying many accounts from one place.
PASSWORD_ADDRESS = Backoff(free=30, base=5.0, cap=300.0, window=3600.0)


def address_key(address: str | None) -> str:
    """The bucket of a client address: the address itself for IPv4, its /64 for IPv6 (one host
    usually holds a whole /64, so single IPv6 addresses would be free to rotate)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


T = TypeVar("T")


class Busy(Exception):
    """Every hashing slot stayed taken for the whole wait."""


class Slots:
    """At most `size` password hashes at once in this process, on `size` threads of their own.

    A caller waits at most `wait` seconds for a slot and is turned away otherwise, so a flood of
    logins queues briefly and then gets a clear 503 instead of piling up threads. The hashes run on
    the slots' own threads, not on whichever request thread asked: each thread's allocator keeps the
    KDF's 19 MiB buffer, and 40 request threads would keep 40 of them."""

    def __init__(self, size: int, wait: float) -> None:
        self._semaphore = threading.BoundedSemaphore(size)
        self._wait = wait
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="kdf")

    def acquire(self) -> bool:
        return self._semaphore.acquire(timeout=self._wait)

    def release(self) -> None:
        self._semaphore.release()

    def run(self, work: Callable[..., T], *args) -> T:
        """`work(*args)` on a slot's thread; Busy when no slot frees up in time."""
        if not self.acquire():
            raise Busy
        try:
            return self._threads.submit(work, *args).result()
        finally:
            self.release()
