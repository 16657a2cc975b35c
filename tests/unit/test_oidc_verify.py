"""JWT verification and the issuer's key cache, with a locally generated RSA key: no network, no broker."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK
from jwt.algorithms import RSAAlgorithm

from broker.api.oidc import RefusalTally
from broker.domain.github import GitHubClaims
from broker.oidc import jwks as jwks_module
from broker.oidc.jwks import JwksCache, JwksUnavailable
from broker.oidc.verify import (TemporarilyUnverifiable, TokenRejected, issuer_key, peek, signing_key_id,
                                verify_signed)

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "npm:registry.example"


@pytest.fixture(scope="module")
def keys():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private, kid: str = "k1") -> dict:
    return {**json.loads(RSAAlgorithm.to_jwk(private.public_key())), "kid": kid, "alg": "RS256", "use": "sig"}


def payload(**overrides) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "jti": "j-1", "iat": now, "nbf": now, "exp": now + 300,
              "sub": "repo:acme/widget:ref:refs/heads/main", "repository": "acme/widget", "repository_id": "1",
              "repository_owner": "acme", "repository_owner_id": "2",
              "workflow_ref": "acme/widget/.github/workflows/release.yml@refs/heads/main"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def signed(private, **overrides) -> str:
    return jwt.encode(payload(**overrides), private, algorithm="RS256", headers={"kid": "k1"})


def verify(token: str, private) -> GitHubClaims:
    return verify_signed(token, PyJWK(public_jwk(private)), issuer=ISSUER, audiences=[AUDIENCE], model=GitHubClaims)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- peek and signing_key_id ---------------------------------------------------------------------
def test_peek_reads_header_and_claims_without_checking_them(keys):
    unverified = peek(signed(keys[0], repository="anything/at-all"))
    assert unverified.header["kid"] == "k1" and unverified.payload["repository"] == "anything/at-all"


@pytest.mark.parametrize("token", [
    "", "x", "a.b", "..", "x.y.z", "a.b.c.d", b64(b"[1]") + "." + b64(b"{}") + ".s",
    b64(b"{}") + "." + b64(b'"claims"') + ".s", b64(b"{}") + "." + b64(bytes([0xFF, 0xFE])) + ".s",
    b64(b"{}") + "." + b64(b"{}" + b" " * 20000) + ".s"])
def test_peek_refuses_what_is_not_a_jwt(token):
    with pytest.raises(TokenRejected) as refused:
        peek(token)
    assert refused.value.reason == "not-a-jwt"


@pytest.mark.parametrize("header,reason", [
    ({"alg": "none", "kid": "k"}, "algorithm"), ({"alg": "HS256", "kid": "k"}, "algorithm"),
    ({"alg": "ES256", "kid": "k"}, "algorithm"), ({"kid": "k"}, "algorithm"), ({"alg": "RS256"}, "no-kid"),
    ({"alg": "RS256", "kid": ""}, "no-kid"), ({"alg": "RS256", "kid": 7}, "no-kid")])
def test_signing_key_id_refuses_other_algorithms_and_missing_kids(header, reason):
    token = b64(json.dumps(header).encode()) + "." + b64(b"{}") + ".s"
    with pytest.raises(TokenRejected) as refused:
        signing_key_id(peek(token))
    assert refused.value.reason == reason


def test_signing_key_id_is_the_kid_of_an_rs256_token(keys):
    assert signing_key_id(peek(signed(keys[0]))) == "k1"


# --- verify_signed ---------------------------------------------------------------------------------
def test_a_valid_token_becomes_typed_claims(keys):
    claims = verify(signed(keys[0], run_number="4"), keys[0])
    assert claims.repository == "acme/widget" and claims.model_extra["run_number"] == "4"


@pytest.mark.parametrize("overrides,reason", [
    ({"exp": -120, "iat": -900, "nbf": -900}, "expired"),  # times are seconds from now
    ({"nbf": 300}, "not-yet-valid"),
    ({"iat": 300, "nbf": None, "exp": 900}, "not-yet-valid"),  # issued in the future
    ({"aud": "npm:registry.npmjs.org"}, "audience"),
    ({"iss": "https://token.evil.example"}, "issuer"),
    ({"jti": None}, "missing-claim"), ({"exp": None}, "missing-claim"), ({"iat": None}, "missing-claim"),
    ({"aud": None}, "missing-claim"),
    ({"jti": ""}, "claims"), ({"jti": 5}, "invalid"), ({"repository": None}, "claims"),
    ({"workflow_ref": ["x"]}, "claims"),
])
def test_verify_signed_refuses(keys, overrides, reason):
    now = int(time.time())
    overrides = {k: now + v if k in ("exp", "iat", "nbf") and v is not None else v for k, v in overrides.items()}
    with pytest.raises(TokenRejected) as refused:
        verify(signed(keys[0], **overrides), keys[0])
    assert refused.value.reason == reason


def test_a_token_signed_by_another_key_is_refused(keys):
    with pytest.raises(TokenRejected) as refused:
        verify(signed(keys[1]), keys[0])
    assert refused.value.reason == "signature"


def test_a_refusal_never_echoes_the_token(keys):
    token = signed(keys[1])
    with pytest.raises(TokenRejected) as refused:
        verify(token, keys[0])
    assert token not in str(refused.value) and "eyJ" not in str(refused.value)


def test_an_hs256_token_keyed_with_the_public_key_never_reaches_pyjwt(keys):
    token = jwt.encode(payload(), "public-key-bytes-public-key-bytes", algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(TokenRejected):
        signing_key_id(peek(token))


# --- the key cache -----------------------------------------------------------------------------
class FakeIssuer:
    """Discovery and JWKS over httpx.MockTransport; `gate` holds the JWKS answer until set."""

    def __init__(self, private, issuer: str = ISSUER, jwks_uri: str | None = None) -> None:
        self.private, self.issuer = private, issuer
        self.jwks_uri = jwks_uri or f"{issuer}/jwks"
        self.fetches = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": self.issuer, "jwks_uri": self.jwks_uri})
        self.fetches += 1
        self.gate.wait(5)
        return httpx.Response(200, json={"keys": [public_jwk(self.private)]})

    def cache(self) -> JwksCache:
        return JwksCache(self.issuer, client=httpx.Client(transport=httpx.MockTransport(self)))


def test_the_cache_fetches_once_and_then_serves_the_key(keys):
    fake = FakeIssuer(keys[0])
    cache = fake.cache()
    assert cache.key("k1") is not None and cache.cached("k1") is not None
    assert fake.fetches == 1


def test_an_unknown_kid_soon_after_a_fetch_is_refused_without_fetching(keys):
    fake = FakeIssuer(keys[0])
    cache = fake.cache()
    cache.key("k1")
    assert cache.fetch_for("random-kid") is None
    assert cache.key("random-kid") is None and fake.fetches == 1


def test_an_unknown_kid_after_the_refresh_interval_fetches_again(keys, monkeypatch):
    fake = FakeIssuer(keys[0])
    cache = fake.cache()
    cache.key("k1")
    monkeypatch.setattr(jwks_module, "REFRESH_INTERVAL", 0.0)
    assert cache.key("rotated") is None and fake.fetches == 2


def test_concurrent_lookups_share_one_fetch_in_flight(keys):
    fake = FakeIssuer(keys[0])
    fake.gate.clear()
    cache = fake.cache()
    pending = [cache.fetch_for(f"kid-{i}") for i in range(20)]
    assert all(p is pending[0] for p in pending)
    fake.gate.set()
    pending[0].result(5)
    assert fake.fetches == 1 and cache.known("k1") is not None


def test_waiting_for_a_fetch_takes_no_thread(keys):
    """Many async lookups of random kids wait on the one fetch; none runs in a thread of its own."""
    fake = FakeIssuer(keys[0])
    fake.gate.clear()
    cache = fake.cache()

    async def flood() -> list:
        lookups = [asyncio.ensure_future(issuer_key(cache, f"kid-{i}")) for i in range(50)]
        await asyncio.sleep(0.05)
        threads = threading.active_count()
        fake.gate.set()
        return [threads, *await asyncio.gather(*lookups, return_exceptions=True)]

    before = threading.active_count()
    threads, *results = asyncio.run(flood())
    assert threads <= before + 1  # the cache's one fetcher thread
    assert all(isinstance(r, TokenRejected) and r.reason == "unknown-key" for r in results)
    assert fake.fetches == 1


def test_an_http_jwks_uri_of_an_https_issuer_is_refused(keys):
    fake = FakeIssuer(keys[0], jwks_uri="http://token.actions.githubusercontent.com/jwks")
    with pytest.raises(JwksUnavailable, match="not https"):
        fake.cache().key("k1")
    assert fake.fetches == 0


def test_a_loopback_http_issuer_may_serve_its_keys_over_http(keys):
    fake = FakeIssuer(keys[0], issuer="http://127.0.0.1:9", jwks_uri="http://127.0.0.1:9/jwks")
    assert fake.cache().key("k1") is not None


def test_an_unreachable_issuer_is_temporarily_unverifiable(keys):
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    cache = JwksCache(ISSUER, client=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(TemporarilyUnverifiable):
        asyncio.run(issuer_key(cache, "k1"))


# --- counting refusals before verification ---------------------------------------------------------
def test_unverified_refusals_are_handed_out_at_most_once_per_interval(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("broker.api.oidc.time.monotonic", lambda: clock[0])
    tally = RefusalTally(interval=60)
    assert tally.add("https://i", "signature") == {"https://i signature": 1}
    assert all(tally.add("https://i", "signature") is None for _ in range(500))
    assert tally.add("untrusted", "untrusted-issuer") is None
    clock[0] += 61
    assert tally.add("https://i", "expired") == {"https://i signature": 500, "untrusted untrusted-issuer": 1,
                                                 "https://i expired": 1}
