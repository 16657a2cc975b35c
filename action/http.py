"""HTTP for the action: httpx with timeouts, and bounded retries with tenacity that honour Retry-After."""

from __future__ import annotations

import email.utils
import time

import httpx
from tenacity import (RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay,
                      wait_exponential, wait_random)

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
MAX_ATTEMPTS = 5
MAX_SECONDS = 180
MAX_RETRY_AFTER = 60.0


class RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (httpx.TransportError, RetryableStatus))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value) if value else None
    return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class _Wait:
    """Retry-After when the server sends one (capped), else exponential backoff with jitter."""

    def __init__(self, initial: float) -> None:
        # (not wait_exponential_jitter: its `initial` is deprecated in tenacity 9.2, `multiplier` new there)
        self._backoff = wait_exponential(multiplier=initial, max=20.0) + wait_random(0, initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus):
            after = _retry_after(exc.response)
            if after is not None:
                return min(after, MAX_RETRY_AFTER)
        return self._backoff(state)


def retrying(initial_wait: float = 1.0, on_retry=None) -> Retrying:
    return Retrying(retry=retry_if_exception(_retryable), stop=stop_after_attempt(MAX_ATTEMPTS) | stop_after_delay(MAX_SECONDS),
                    wait=_Wait(initial_wait), reraise=True, before_sleep=on_retry)


def send(client: httpx.Client, method: str, url: str, *, initial_wait: float = 1.0, on_retry=None,
         **kwargs) -> httpx.Response:
    """One request, retried on connection errors, 5xx and 429; other answers are returned."""
    for attempt in retrying(initial_wait, on_retry):
        with attempt:
            response = client.request(method, url, **kwargs)
            if response.status_code >= 500 or response.status_code == 429:
                raise RetryableStatus(response)
            return response
    raise AssertionError("unreachable")  # pragma: no cover
