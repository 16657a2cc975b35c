"""The issuer's signing keys, fetched through its discovery document and cached.

An unknown `kid` refreshes the cache at most once per REFRESH_INTERVAL, whoever asks and however
many random kids an attacker sends: one fetch, on the cache's own thread, serves every waiting
request (single flight), and an unknown kid between fetches is refused at once, with no thread.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError
from tenacity import (retry, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential,
                      wait_random)

CACHE_TTL = 600.0
REFRESH_INTERVAL = 30.0
TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class JwksUnavailable(Exception):
    pass


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (exc.response.status_code >= 500
                                                       or exc.response.status_code == 429)


class JwksCache:
    def __init__(self, issuer: str, client: httpx.Client | None = None,
                 fetcher: ThreadPoolExecutor | None = None) -> None:
        self.issuer = issuer
        self._client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -CACHE_TTL  # never fetched
        self._lock = threading.Lock()
        self._inflight: Future[None] | None = None
        # Caches of many issuers (CircleCI: one per organization) may share one fetching thread.
        self._fetcher = fetcher or ThreadPoolExecutor(max_workers=1, thread_name_prefix="jwks")

    def cached(self, kid: str) -> PyJWK | None:
        """The key if it is cached and fresh: never fetches, so an event loop may call it."""
        if time.monotonic() - self._fetched_at < CACHE_TTL:
            return self._keys.get(kid)
        return None

    def fetch_for(self, kid: str) -> Future[None] | None:
        """The fetch to wait for before looking `kid` up: the one in flight, or a new one when the cache
        is stale or `kid` is new and the last fetch is older than REFRESH_INTERVAL. None when the cache
        already has the answer (the key, or that there is no such key). Never blocks."""
        with self._lock:
            if self._inflight is not None and not self._inflight.done():
                return self._inflight
            age = time.monotonic() - self._fetched_at
            if age >= CACHE_TTL or (kid not in self._keys and age >= REFRESH_INTERVAL):
                self._fetched_at = time.monotonic()  # even a failed fetch counts: no retry storm
                self._inflight = self._fetcher.submit(self._refresh)
                return self._inflight
            return None

    def known(self, kid: str) -> PyJWK | None:
        """The key as of the last fetch (call after `fetch_for` said there is nothing to wait for)."""
        return self._keys.get(kid)

    def key(self, kid: str) -> PyJWK | None:
        """Blocking lookup for callers without an event loop: waits for the fetch `kid` needs, if any."""
        found = self.cached(kid)
        if found is not None:
            return found
        pending = self.fetch_for(kid)
        if pending is not None:
            pending.result()
        return self.known(kid)

    def _refresh(self) -> None:
        try:
            document = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            jwks_uri = _jwks_uri(self.issuer, document)
            keys = {}
            for entry in self._get_json(jwks_uri).get("keys", []):
                key = _usable_key(entry)
                if key is not None:
                    keys[entry["kid"]] = key
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailable(f"cannot fetch the issuer's keys: {exc.__class__.__name__}") from None
        self._keys = keys

    @retry(retry=retry_if_exception(_retryable), stop=(stop_after_attempt(3) | stop_after_delay(10)),
           wait=wait_exponential(multiplier=0.2, max=2) + wait_random(0, 0.2), reraise=True)
    def _get_json(self, url: str) -> dict:
        response = self._client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body


def _jwks_uri(issuer: str, document: dict) -> str:
    """The discovery document's jwks_uri: https, unless the issuer itself is plain http (which the
    settings allow only on a loopback host), so that nobody on the path can swap the keys."""
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("https", "http"):
        raise JwksUnavailable("the issuer's discovery document has no jwks_uri")
    if urlsplit(jwks_uri).scheme != "https" and urlsplit(issuer).scheme == "https":
        raise JwksUnavailable("the issuer's discovery document names a jwks_uri that is not https")
    return jwks_uri


def _usable_key(entry: object) -> PyJWK | None:
    """Only RSA signing keys with a kid; anything else in the set is ignored."""
    if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not isinstance(entry.get("kid"), str):
        return None
    if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
        return None
    try:
        return PyJWK({**entry, "alg": "RS256"})
    except PyJWKError:
        return None
