"""The OIDC exchange against the real broker: what needs the wiring (the JWKS fetch, the database,
the audit log, the minted token's scope). The rules themselves have table tests in
tests/unit/test_trust_github.py and tests/unit/test_oidc_verify.py."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from tests.support.packages import publish_document, unique_name
from tests.support.trust import github_relationship

GITHUB = {"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}}
NOT_FOUND = {"code": "package.not-found", "error": "OIDC token exchange error - package not found",
             "message": "OIDC token exchange error - package not found"}


def exchange(registry: str, package: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{registry}-/npm/v1/oidc/token/exchange/package/{package.replace('/', '%2f')}",
                      headers=headers, timeout=30)


def trusted(accounts, *configs: dict, name: str | None = None, access: str | None = None) -> tuple[object, str]:
    """A package owned by a fresh 2FA account, with these trust relationships."""
    account = accounts.create()
    name = name or unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0", access=access)).status_code == 200
    account.enable_2fa()
    if configs:
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


def assert_refused(response: httpx.Response, status: int, code: str, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == body["message"] and body["code"] == code, body
    assert body["message"].startswith("OIDC token exchange error - ")
    assert body["message"].count("OIDC token exchange error") == 1
    for word in words:
        assert word in body["message"], body
    assert "eyJ" not in response.text, "a refusal must never echo the JWT"
    return body


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def audit_rows(broker, since: float, event_like: str = "oidc.%") -> list[tuple[str, str | None, dict]]:
    engine = sqlalchemy.create_engine(broker.database_url)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(
            "select event, package, detail from audit_log where event like :e and at >= :t order by id"),
            {"e": event_like, "t": since}).all()
    engine.dispose()
    return [(event, package, json.loads(detail)) for event, package, detail in rows]


# --- verification wiring -------------------------------------------------------------------------
def test_a_matching_job_gets_a_single_package_token(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token())
    assert response.status_code == 201
    assert response.json()["token"].startswith("sg_")


def test_hs256_signed_with_the_rsa_public_key_is_refused(target, issuer, broker):
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    payload = _b64(json.dumps(issuer.claims()).encode())
    signature = _b64(hmac.new(issuer.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert_refused(exchange(broker.url, target[1], f"{header}.{payload}.{signature}"), 401, "oidc.invalid-token",
                   "HS256")


def test_a_key_not_in_the_jwks_is_refused(target, issuer, broker):
    token = issuer.sign(issuer.claims(), key=issuer.rogue_key)
    assert_refused(exchange(broker.url, target[1], token), 401, "oidc.invalid-token", "signature")


def test_an_unknown_kid_is_refused_and_random_kids_refresh_the_jwks_at_most_once(target, issuer, broker):
    before = issuer.jwks_requests
    for _ in range(10):
        token = issuer.sign(issuer.claims(), key=issuer.rogue_key, kid=uuid.uuid4().hex)
        assert_refused(exchange(broker.url, target[1], token), 401, "oidc.invalid-token", "does not publish")
    assert issuer.jwks_requests - before <= 1


def test_an_untrusted_issuer_is_refused(target, issuer, broker, ghes_issuer, self_managed_gitlab):
    token = issuer.sign(issuer.claims(iss="https://token.evil.example"))
    refused = exchange(broker.url, target[1], token)
    assert_refused(refused, 401, "oidc.untrusted-issuer", "issuer")
    # the operator's own issuers (STAGEGATE_OIDC_ISSUERS: a GitHub Enterprise Server's or a self-managed
    # GitLab's address, often an internal host) are not told to whoever sends a token
    assert ghes_issuer.url not in refused.text and self_managed_gitlab.url not in refused.text, refused.text


def test_a_wrong_audience_is_refused(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token(audience="npm:registry.npmjs.org"))
    assert_refused(response, 401, "oidc.invalid-token", "audience")


def test_a_token_not_yet_valid_is_refused(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token(nbf=int(time.time()) + 300))
    assert_refused(response, 401, "oidc.invalid-token", "not valid yet")


def test_no_token_and_a_non_jwt_are_401(target, broker):
    assert_refused(exchange(broker.url, target[1], None), 401, "oidc.missing-token")
    assert_refused(exchange(broker.url, target[1], "not-a-jwt"), 401, "oidc.invalid-token", "not a JWT")


def test_a_token_the_lenient_peek_reads_but_pyjwt_refuses_is_401(target, issuer, broker):
    header, payload, signature = issuer.token().split(".")
    mangled = f"{header}.{payload[:10]}!{payload[10:]}.{signature}"  # '!' is not base64url
    assert_refused(exchange(broker.url, target[1], mangled), 401, "oidc.invalid-token")


def test_a_replayed_jti_is_refused(target, issuer, broker):
    token = issuer.token()
    assert exchange(broker.url, target[1], token).status_code == 201
    assert_refused(exchange(broker.url, target[1], token), 401, "oidc.replayed", "already exchanged")


def test_claims_no_check_accounts_for_are_logged_by_name_not_refused(target, issuer, broker):
    claim = f"claim_{uuid.uuid4().hex[:8]}"
    token = issuer.token(run_number="5", **{claim: "value-" + claim})
    assert exchange(broker.url, target[1], token).status_code == 201
    (line,) = [line for line in broker.log().splitlines() if claim in line]
    assert "value-" not in line
    assert "run_number" not in line  # a documented claim is accounted for


# --- matching wiring (the relationships come from the database) ----------------------------------
def test_a_wrong_repository_is_refused_naming_what_the_token_presents(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token(repository="acme/other"))
    assert_refused(response, 403, "oidc.no-match", "repository check failed", "repository='acme/other'")


def test_a_refusal_never_tells_the_values_a_relationship_expects(broker, issuer, accounts):
    _, name = trusted(accounts, relationship(repository="secret-org/secret-repo", environment="secret-env"))
    response = exchange(broker.url, name, issuer.token())
    assert "secret" not in response.text
    assert_refused(response, 403, "oidc.no-match", "repository='acme/widget'", "environment=None")


def test_a_refusal_never_tells_the_pinned_ids(target, issuer, broker):
    response = exchange(broker.url, target[1], issuer.token(repository_id="99999", repository_owner_id="77"))
    assert "1001" not in response.text and "2002" not in response.text
    assert_refused(response, 403, "oidc.no-match", "repository_id", "repository_owner_id", "repository_id='99999'")


def test_owners_find_the_full_comparison_in_the_audit_log(broker, issuer, accounts):
    _, name = trusted(accounts, relationship(repository="acme/elsewhere"))
    exchange(broker.url, name, issuer.token())
    (_, _, detail), = broker.audit("oidc.exchange", name)
    (mismatch,) = detail["mismatches"]
    assert mismatch["claim"] == "repository" and mismatch["presented"] == "acme/widget"
    assert "'acme/elsewhere'" in mismatch["detail"]


def test_a_restricted_package_no_relationship_matches_answers_like_a_missing_one(broker, issuer, accounts):
    missing = exchange(broker.url, unique_name(scope="acme"), issuer.token())
    assert missing.status_code == 404 and missing.json() == NOT_FOUND
    _, other_repo = trusted(accounts, relationship(repository="acme/secret"), name=unique_name(scope="acme"))
    _, no_relationship = trusted(accounts, name=unique_name(scope="acme"))
    for name in (other_repo, no_relationship):
        response = exchange(broker.url, name, issuer.token())
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_a_restricted_package_with_a_matching_relationship_mints(broker, issuer, accounts):
    _, name = trusted(accounts, relationship(), name=unique_name(scope="acme"))
    assert exchange(broker.url, name, issuer.token()).status_code == 201


def test_a_public_package_without_relationships_says_so(broker, issuer, accounts):
    _, name = trusted(accounts)
    assert_refused(exchange(broker.url, name, issuer.token()), 403, "oidc.no-relationships", "no trust relationships")


def test_a_workflow_file_named_like_the_configured_one_plus_at_is_refused(target, issuer, broker):
    token = issuer.token(workflow_ref="acme/widget/.github/workflows/release.yml@x.yml@refs/heads/main")
    assert_refused(exchange(broker.url, target[1], token), 403, "oidc.no-match", "workflow_ref check failed")


def test_a_workflow_in_a_subdirectory_is_refused(target, issuer, broker):
    token = issuer.token(workflow_ref="acme/widget/.github/workflows/sub/release.yml@refs/heads/main")
    assert_refused(exchange(broker.url, target[1], token), 403, "oidc.no-match", "workflow_ref check failed")


def test_a_configured_environment_is_enforced(broker, issuer, accounts):
    _, name = trusted(accounts, relationship(environment="production"))
    assert_refused(exchange(broker.url, name, issuer.token()), 403, "oidc.no-match", "environment check failed")
    assert exchange(broker.url, name, issuer.token(environment="Production")).status_code == 201


def test_an_unknown_package_is_a_404(issuer, broker):
    assert_refused(exchange(broker.url, unique_name(), issuer.token()), 404, "package.not-found", "package not found")


def test_a_revoked_relationship_grants_nothing_and_its_tokens_end(accounts, issuer, broker):
    account, name = trusted(accounts, relationship())
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    relationship_id = account.http("GET", f"-/package/{name}/trust").json()[0]["id"]
    assert account.http("DELETE", f"-/package/{name}/trust/{relationship_id}", otp=True).status_code == 200
    assert_refused(exchange(broker.url, name, issuer.token()), 403, "oidc.no-relationships")
    doc = publish_document(name, "1.1.0")
    assert httpx.put(broker.url + name, json=doc, headers={"authorization": f"Bearer {minted}"}).status_code == 401


# --- a token is spent once its signature verified ---------------------------------------------------
def test_a_granted_token_is_spent_for_its_package_only_and_a_refusal_spends_it_everywhere(issuer, broker, accounts):
    _, first = trusted(accounts, relationship())
    _, second = trusted(accounts, relationship())
    _, elsewhere = trusted(accounts, relationship(repository="acme/elsewhere"))
    token = issuer.token()
    assert exchange(broker.url, first, token).status_code == 201
    assert_refused(exchange(broker.url, first, token), 401, "oidc.replayed")
    assert exchange(broker.url, second, token).status_code == 201, "one job's token, once per package"
    assert_refused(exchange(broker.url, elsewhere, token), 403, "oidc.no-match")
    _, third = trusted(accounts, relationship())
    assert_refused(exchange(broker.url, third, token), 401, "oidc.replayed")


def test_a_refused_token_is_spent_and_cannot_probe_another_package(target, issuer, broker, accounts):
    _, elsewhere = trusted(accounts, relationship(repository="acme/elsewhere"))
    token = issuer.token()
    assert_refused(exchange(broker.url, elsewhere, token), 403, "oidc.no-match")
    assert_refused(exchange(broker.url, unique_name(), token), 401, "oidc.replayed")
    assert_refused(exchange(broker.url, target[1], token), 401, "oidc.replayed")


def test_refusals_before_the_signature_verified_do_not_write_a_row_each(target, issuer, broker):
    since = time.time()
    for _ in range(20):
        assert exchange(broker.url, target[1], issuer.sign(issuer.claims(), key=issuer.rogue_key)).status_code == 401
        assert exchange(broker.url, target[1], "not-a-jwt").status_code == 401
    rows = audit_rows(broker, since)
    assert len(rows) <= 1, rows
    assert all(event == "oidc.refused-unverified" and package is None for event, package, _ in rows)


def test_every_exchange_after_verification_is_audited_with_its_claims(target, issuer, broker):
    _, name = target
    token = issuer.token(run_id="4242")
    exchange(broker.url, name, token)
    exchange(broker.url, name, token)  # replay: refused, audited too
    rows = [detail for _, _, detail in broker.audit("oidc.exchange", name)]
    mine = [r for r in rows if r.get("claims", {}).get("run_id") == "4242"]
    assert [r["outcome"].split(":")[0] for r in mine] == ["granted", "refused 401"]
    assert mine[0]["claims"]["workflow_ref"].endswith("release.yml@refs/heads/main")


# --- the issuer's keys ------------------------------------------------------------------------------
@pytest.fixture
def slow_issuer():
    from tests.support.issuer import FakeIssuer

    fake = FakeIssuer().start()
    fake.jwks_delay = 2.5
    yield fake
    fake.stop()


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_a_flood_of_random_kids_waits_on_one_fetch_without_piling_up_threads(backends, broker_env, slow_issuer):
    process = backends.broker(env={**broker_env, "STAGEGATE_OIDC_GITHUB_ISSUER": slow_issuer.url})
    try:
        before = _threads(process.process.pid)
        tokens = [slow_issuer.sign(slow_issuer.claims(), kid=uuid.uuid4().hex) for _ in range(60)]
        with ThreadPoolExecutor(60) as pool:
            flood = [pool.submit(exchange, process.url, "anything", token) for token in tokens]
            time.sleep(1.0)  # the flood is waiting on the slow JWKS now
            during = _threads(process.process.pid)
            statuses = [f.result().status_code for f in flood]
    finally:
        process.stop()
    assert statuses == [401] * 60
    assert slow_issuer.jwks_requests == 1
    assert during - before < 10, (before, during)  # one fetcher thread, not one per request


def _self_signed_tls(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "issuer.pem", directory / "issuer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_an_https_issuer_whose_discovery_names_an_http_jwks_uri_is_refused(backends, broker_env, issuer, tmp_path):
    """The discovery document is served over TLS, the keys it points at over plain http (where anyone on
    the path could swap them): the broker must not fetch them."""
    cert, key = _self_signed_tls(tmp_path)

    class Discovery(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"issuer": https_url, "jwks_uri": f"{issuer.url}/.well-known/jwks"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    https_url = f"https://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    process = backends.broker(env={**broker_env, "STAGEGATE_OIDC_GITHUB_ISSUER": https_url,
                                   "SSL_CERT_FILE": str(cert)})
    try:
        before = issuer.jwks_requests
        response = exchange(process.url, unique_name(), issuer.sign(issuer.claims(iss=https_url)))
    finally:
        process.stop()
        server.shutdown()
    assert_refused(response, 503, "oidc.unavailable", "not https")
    assert issuer.jwks_requests == before


# --- the minted token's scope -------------------------------------------------------------------
def test_a_minted_token_publishes_only_its_own_package(target, issuer, broker, accounts):
    _, name = target
    _, other = trusted(accounts, relationship())
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    auth = {"authorization": f"Bearer {minted}"}
    response = httpx.put(broker.url + other, json=publish_document(other, "2.0.0"), headers=auth)
    assert response.status_code == 403 and "minted for" in response.json()["error"]
    assert httpx.put(broker.url + name, json=publish_document(name, "2.0.0"), headers=auth).status_code == 200


def test_a_stage_only_relationship_cannot_publish(accounts, issuer, broker):
    _, name = trusted(accounts, relationship(permissions=["createStagedPackage"]))
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    response = httpx.put(broker.url + name, json=publish_document(name, "1.1.0"),
                         headers={"authorization": f"Bearer {minted}"})
    assert response.status_code == 403
    assert "OIDC permission denied" in response.json()["error"] and "--allow-publish" in response.json()["error"]


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
    assert response.status_code == 403, response.text
    assert "trust-issued token may only publish or stage-publish" in response.json()["error"]


def test_a_minted_token_can_read_its_own_packument(target, issuer, broker):
    _, name = target
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    response = httpx.get(broker.url + name, headers={"authorization": f"Bearer {minted}"})
    assert response.status_code == 200 and response.json()["name"] == name


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
    assert response.status_code == 403
    assert "OIDC permission denied" in response.json()["error"] and "--allow-stage-publish" in response.json()["error"]


def test_a_minted_token_stages_only_its_own_package(target, issuer, broker, accounts):
    _, name = target
    _, other = trusted(accounts, relationship())
    minted = exchange(broker.url, name, issuer.token()).json()["token"]
    auth = {"authorization": f"Bearer {minted}"}
    response = httpx.post(f"{broker.url}-/stage/package/{other}", json=publish_document(other, "3.0.0"), headers=auth)
    assert response.status_code == 403 and "minted for" in response.json()["error"]
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
