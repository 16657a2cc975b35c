"""The OIDC exchange's security table: every forged, expired, replayed or out-of-scope request
is refused with the right status. One row, one test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import jwt
import pytest

from tests.support.packages import publish_document, unique_name
from tests.support.trust import github_relationship


def exchange(registry: str, package: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{registry}-/npm/v1/oidc/token/exchange/package/{package.replace('/', '%2f')}",
                      headers=headers, timeout=30)


def trusted(accounts, *configs: dict, name: str | None = None) -> tuple[object, str]:
    """A package owned by a fresh 2FA account, with these trust relationships."""
    account = accounts.create()
    name = name or unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    account.enable_2fa()
    response = account.http("POST", f"-/package/{name}/trust", otp=True, json=list(configs))
    assert response.status_code == 201, response.text
    return account, name


def relationship(permissions=("createPackage", "createStagedPackage"), **claims) -> dict:
    return github_relationship(permissions=permissions, **claims)


@pytest.fixture(scope="module")
def target(broker, npm_cache, tmp_path_factory, issuer):
    """One package trusted for acme/widget release.yml, already bound by a first exchange."""
    from tests.support.accounts import Accounts

    accounts = Accounts(broker.url, tmp_path_factory.mktemp("oidc"), npm_cache)
    account, name = trusted(accounts, relationship())
    first = exchange(broker.url, name, issuer.token())
    assert first.status_code == 201, first.text
    return account, name


def assert_refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == body["message"]
    for word in words:
        assert word in body["message"], body
    assert "eyJ" not in response.text, "a refusal must never echo the JWT"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_matching_job_gets_a_single_package_token(target, issuer, broker):
    _, name = target
    response = exchange(broker.url, name, issuer.token())
    assert response.status_code == 201
    assert response.json()["token"].startswith("sg_")


def test_alg_none_is_refused(target, issuer, broker):
    token = jwt.encode(issuer.claims(), key=None, algorithm="none", headers={"kid": issuer.kid})
    assert_refused(exchange(broker.url, target[1], token), 401, "'none'")


def test_hs256_signed_with_the_rsa_public_key_is_refused(target, issuer, broker):
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    payload = _b64(json.dumps(issuer.claims()).encode())
    signature = _b64(hmac.new(issuer.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert_refused(exchange(broker.url, target[1], f"{header}.{payload}.{signature}"), 401, "HS256")


def test_a_key_not_in_the_jwks_is_refused(target, issuer, broker):
    token = issuer.sign(issuer.claims(), key=issuer.rogue_key)
    assert_refused(exchange(broker.url, target[1], token), 401, "signature")


def test_an_unknown_kid_is_refused_and_random_kids_refresh_the_jwks_at_most_once(target, issuer, broker):
    before = issuer.jwks_requests
    for _ in range(10):
        token = issuer.sign(issuer.claims(), key=issuer.rogue_key, kid=uuid.uuid4().hex)
        assert_refused(exchange(broker.url, target[1], token), 401, "does not publish")
    assert issuer.jwks_requests - before <= 1


def test_a_wrong_issuer_is_refused(target, issuer, broker):
    token = issuer.sign(issuer.claims(iss="https://token.evil.example"))
    assert_refused(exchange(broker.url, target[1], token), 401, "issuer")


def test_a_wrong_audience_is_refused(target, issuer, broker):
    assert_refused(exchange(broker.url, target[1], issuer.token(audience="npm:registry.npmjs.org")), 401, "audience")


def test_an_expired_token_is_refused(target, issuer, broker):
    now = int(time.time())
    token = issuer.token(iat=now - 900, nbf=now - 900, exp=now - 120)
    assert_refused(exchange(broker.url, target[1], token), 401, "expired")


def test_a_token_not_yet_valid_is_refused(target, issuer, broker):
    assert_refused(exchange(broker.url, target[1], issuer.token(nbf=int(time.time()) + 300)), 401, "not valid yet")


def test_a_token_issued_in_the_future_is_refused(target, issuer, broker):
    now = int(time.time())
    token = issuer.token(iat=now + 300, nbf=None, exp=now + 900)
    assert_refused(exchange(broker.url, target[1], token), 401, "future")


def test_a_token_without_jti_is_refused(target, issuer, broker):
    assert_refused(exchange(broker.url, target[1], issuer.token(jti=None)), 401, "jti")


def test_a_replayed_jti_is_refused(target, issuer, broker):
    token = issuer.token()
    assert exchange(broker.url, target[1], token).status_code == 201
    assert_refused(exchange(broker.url, target[1], token), 401, "already exchanged")


def test_a_wrong_repository_is_refused_naming_what_was_seen(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token(repository="acme/other"))
    assert_refused(response, 403, "repository='acme/other'", "expects 'acme/widget'")


def test_the_same_repository_name_with_another_repository_id_is_refused(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token(repository_id="99999"))
    assert_refused(response, 403, "repository_id is 99999", "bound to 1001")


def test_another_owner_id_is_refused(target, issuer, broker):
    assert_refused(exchange(broker.url, target[1], issuer.token(repository_owner_id="1")), 403, "repository_owner_id")


def test_a_workflow_file_of_another_name_is_refused(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token(workflow="evil.yml"))
    assert_refused(response, 403, "workflow file is 'evil.yml'", "expects 'release.yml'")


def test_a_workflow_of_another_repository_is_refused(target, issuer, broker):
    token = issuer.token(workflow_ref="evil/fork/.github/workflows/release.yml@refs/heads/main")
    assert_refused(exchange(broker.url, target[1], token), 403, "belongs to another repository")


def test_repository_names_match_case_insensitively(target, issuer, broker):
    token = issuer.token(repository="ACME/Widget")
    assert exchange(broker.url, target[1], token).status_code == 201


@pytest.fixture(scope="module")
def env_target(broker, npm_cache, tmp_path_factory):
    from tests.support.accounts import Accounts

    accounts = Accounts(broker.url, tmp_path_factory.mktemp("oidc-env"), npm_cache)
    return trusted(accounts, relationship(environment="production"))[1]


def test_a_missing_environment_is_refused_when_one_is_configured(env_target, issuer, broker):
    assert_refused(exchange(broker.url, env_target, issuer.token()), 403, "no environment", "'production'")


def test_a_wrong_environment_is_refused(env_target, issuer, broker):
    assert_refused(exchange(broker.url, env_target, issuer.token(environment="staging")), 403, "'staging'")


def test_the_configured_environment_matches_in_any_case(env_target, issuer, broker):
    assert exchange(broker.url, env_target, issuer.token(environment="Production")).status_code == 201


def test_a_revoked_relationship_grants_nothing_and_its_tokens_end(accounts, issuer, broker):
    account, name = trusted(accounts, relationship())
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    relationship_id = account.http("GET", f"-/package/{name}/trust").json()[0]["id"]
    assert account.http("DELETE", f"-/package/{name}/trust/{relationship_id}", otp=True).status_code == 200
    assert_refused(exchange(broker.url, name, issuer.token()), 403, "no trust relationships")
    doc = publish_document(name, "1.1.0")
    assert httpx.put(broker.url + name, json=doc, headers={"authorization": f"Bearer {minted}"}).status_code == 401


def test_a_package_of_another_name_is_refused(target, issuer, broker, accounts):
    _, other = trusted(accounts, relationship(repository="acme/other-repo"))
    assert_refused(exchange(broker.url, other, issuer.token()), 403, "acme/other-repo")


def test_an_unknown_package_is_a_404(issuer, broker):
    assert_refused(exchange(broker.url, unique_name(), issuer.token()), 404, "package not found")


def test_no_token_and_a_non_jwt_are_401(target, broker):
    assert exchange(broker.url, target[1], None).status_code == 401
    assert_refused(exchange(broker.url, target[1], "not-a-jwt"), 401, "not a JWT")


def test_a_minted_token_publishes_only_its_own_package(target, issuer, broker, accounts):
    _, name = target
    _, other = trusted(accounts, relationship())
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    auth = {"authorization": f"Bearer {minted}"}
    response = httpx.put(broker.url + other, json=publish_document(other, "2.0.0"), headers=auth)
    assert_refused(response, 403, "minted for")
    assert httpx.put(broker.url + name, json=publish_document(name, "2.0.0"), headers=auth).status_code == 200


def test_a_stage_only_relationship_cannot_publish(accounts, issuer, broker):
    _, name = trusted(accounts, relationship(permissions=["createStagedPackage"]))
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    response = httpx.put(broker.url + name, json=publish_document(name, "1.1.0"),
                         headers={"authorization": f"Bearer {minted}"})
    assert_refused(response, 403, "OIDC permission denied", "--allow-publish")


STAGE_ID = "6f1c2a4e-9b7d-4c1e-8a2b-3d4e5f607182"
FORBIDDEN_ROUTES = [
    ("GET", "-/whoami", None), ("GET", "-/npm/v1/tokens", None), ("POST", "-/npm/v1/tokens", {"password": "x"}),
    ("GET", "-/npm/v1/user", None), ("GET", "-/package/{pkg}/trust", None),
    ("POST", "-/package/{pkg}/trust", [relationship()]), ("GET", "-/package/{pkg}/dist-tags", None),
    ("PUT", "-/package/{pkg}/dist-tags/evil", "1.0.0"), ("POST", "-/package/{pkg}/access", {"access": "public"}),
    ("PUT", "{pkg}/-rev/1-x", {"maintainers": [{"name": "x"}]}), ("DELETE", "{pkg}/-rev/1-x", None),
    ("PUT", "{pkg}", {"name": "x", "versions": {}}), ("GET", "{pkg}/-/{pkg}-1.0.0.tgz", None),
    ("GET", "-/stage", None), ("GET", f"-/stage/{STAGE_ID}", None), ("GET", f"-/stage/{STAGE_ID}/tarball", None),
    ("POST", f"-/stage/{STAGE_ID}/approve", None), ("DELETE", f"-/stage/{STAGE_ID}", None),
]


@pytest.mark.parametrize("method,path,body", FORBIDDEN_ROUTES, ids=[f"{m} {p}" for m, p, _ in FORBIDDEN_ROUTES])
def test_a_minted_token_is_refused_on_every_other_route(target, issuer, broker, method, path, body):
    _, name = target
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    response = httpx.request(method, broker.url + path.format(pkg=name), json=body,
                             headers={"authorization": f"Bearer {minted}"})
    assert_refused(response, 403, "trust-issued token may only publish or stage-publish")


def test_a_minted_token_can_read_its_own_packument(target, issuer, broker):
    _, name = target
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    response = httpx.get(broker.url + name, headers={"authorization": f"Bearer {minted}"})
    assert response.status_code == 200 and response.json()["name"] == name


def test_every_exchange_is_audited_with_its_claims(target, issuer, broker):
    _, name = target
    token = issuer.token(run_id="4242")
    exchange(broker.url, name, token)
    exchange(broker.url, name, token)  # replay: refused, audited too
    rows = [detail for _, _, detail in broker.audit("oidc.exchange", name)]
    mine = [r for r in rows if r.get("claims", {}).get("run_id") == "4242"]
    assert [r["outcome"].split(":")[0] for r in mine] == ["granted", "refused 401"]
    assert mine[0]["claims"]["workflow_ref"].endswith("release.yml@refs/heads/main")


@pytest.fixture(scope="module")
def short_ttl_broker(backends, broker_env):
    process = backends.broker(env={**broker_env, "STAGEGATE_OIDC_TOKEN_TTL": "2"})
    yield process
    process.stop()


def test_a_minted_token_used_after_its_ttl_is_refused(short_ttl_broker, issuer, npm_cache, tmp_path):
    from tests.support.accounts import Accounts

    _, name = trusted(Accounts(short_ttl_broker.url, tmp_path, npm_cache), relationship())
    minted = exchange(short_ttl_broker.url, name, issuer.token()).json()["token"]
    time.sleep(2.5)
    response = httpx.put(short_ttl_broker.url + name, json=publish_document(name, "1.1.0"),
                         headers={"authorization": f"Bearer {minted}"})
    assert response.status_code == 401 and "expired" in response.json()["error"]


def test_a_publish_only_relationship_cannot_stage(accounts, issuer, broker):
    _, name = trusted(accounts, relationship(permissions=["createPackage"]))
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    response = httpx.post(f"{broker.url}-/stage/package/{name}", json=publish_document(name, "1.1.0"),
                          headers={"authorization": f"Bearer {minted}"})
    assert_refused(response, 403, "OIDC permission denied", "--allow-stage-publish")


def test_a_minted_token_stages_only_its_own_package(target, issuer, broker, accounts):
    _, name = target
    _, other = trusted(accounts, relationship())
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    auth = {"authorization": f"Bearer {minted}"}
    response = httpx.post(f"{broker.url}-/stage/package/{other}", json=publish_document(other, "3.0.0"), headers=auth)
    assert_refused(response, 403, "minted for")
    ok = httpx.post(f"{broker.url}-/stage/package/{name}", json=publish_document(name, "3.0.0"), headers=auth)
    assert ok.status_code == 201, ok.text


def test_a_trust_relationship_is_the_exception_to_a_no_tokens_publishing_policy(accounts, issuer, broker):
    account, name = trusted(accounts, relationship(permissions=["createPackage"]))
    policy = account.http("POST", f"-/package/{name}/access", otp=True,
                          json={"publish_requires_tfa": True, "automation_token_overrides_tfa": False})
    assert policy.status_code == 200, policy.text
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    response = httpx.put(broker.url + name, json=publish_document(name, "1.1.0"),
                         headers={"authorization": f"Bearer {minted}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("shape", [
    "x.y.z",  # not base64 JSON
    _b64(b"[1]") + "." + _b64(b"{}") + ".sig",  # a header that is not an object
    _b64(b'{"alg":"RS256"}') + "." + _b64(b'"claims"') + ".sig",  # claims that are not an object
    _b64(b"{}") + "." + _b64(bytes([0xFF, 0xFE])) + ".sig",  # not UTF-8
    "a.b",  # two parts
    "..",
])
def test_tokens_that_are_not_jwts_are_401(target, broker, shape):
    assert_refused(exchange(broker.url, target[1], shape), 401, "not a JWT")


def test_a_token_the_lenient_peek_reads_but_pyjwt_refuses_is_401(target, issuer, broker):
    header, payload, signature = issuer.token().split(".")
    mangled = f"{header}.{payload[:10]}!{payload[10:]}.{signature}"  # '!' is not base64url
    response = exchange(broker.url, target[1], mangled)
    assert response.status_code == 401 and "OIDC token" in response.json()["message"]
