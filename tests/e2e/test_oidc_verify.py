"""The exchange's dry run, `POST /-/npm/v1/oidc/token/verify/package/<name>`, against the real broker:
a job learns what it would get without spending its token; a stranger learns no more than from the
exchange; an owner with an OTP sees the full comparison, and it is audited."""

from __future__ import annotations

import time

import httpx

from tests.support.packages import unique_name
from tests.e2e.test_oidc_security import NOT_FOUND, audit_rows, exchange, relationship, trusted


def verify(registry: str, package: str, token: str | None, **kwargs) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{registry}-/npm/v1/oidc/token/verify/package/{package.replace('/', '%2f')}",
                      headers={**headers, **kwargs.pop("headers", {})}, timeout=30, **kwargs)


def test_a_matching_job_learns_its_permissions_and_its_token_stays_unspent(accounts, issuer, broker):
    _, name = trusted(accounts, relationship(permissions=["createStagedPackage"]))
    token, since = issuer.token(), time.time()
    for _ in range(2):
        answer = verify(broker.url, name, token)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ok": True, "package": name, "permissions": ["createStagedPackage"]}
    assert audit_rows(broker, since) == []  # an anonymous dry run writes nothing
    assert exchange(broker.url, name, token).status_code == 201  # not spent, and the first use binds here


def test_a_refusal_is_the_exchanges_own_and_quotes_only_the_callers_claims(accounts, issuer, broker):
    _, name = trusted(accounts, relationship(environment="production"))
    token = issuer.token(workflow="other.yml")
    refused = verify(broker.url, name, token)
    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert body["code"] == "oidc.no-match"
    assert "workflow_ref" in body["error"] and "environment" in body["error"] and "production" not in body["error"]
    assert exchange(broker.url, name, token).json() == body  # the exchange says the very same


def test_a_restricted_package_answers_like_a_missing_one(accounts, issuer, broker):
    _, name = trusted(accounts, relationship(repository="acme/other"), name=unique_name(scope="acme"))
    assert verify(broker.url, name, issuer.token()).json() == NOT_FOUND
    assert verify(broker.url, name + "-missing", issuer.token()).json() == NOT_FOUND


def test_an_invalid_jwt_is_refused_as_by_the_exchange(accounts, issuer, broker):
    _, name = trusted(accounts, relationship())
    rogue = issuer.sign(issuer.claims(), key=issuer.rogue_key)
    assert verify(broker.url, name, rogue).json()["code"] == "oidc.invalid-token"
    assert verify(broker.url, name, None).json()["code"] == "oidc.missing-token"


def test_one_token_is_verified_a_bounded_number_of_times(accounts, issuer, broker):
    _, name = trusted(accounts, relationship())
    token = issuer.token()
    statuses = [verify(broker.url, name, token).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    assert verify(broker.url, name, token).json()["code"] == "oidc.verify-limit"


def test_a_body_without_a_registry_credential_is_refused_unread(accounts, issuer, broker):
    _, name = trusted(accounts, relationship())
    answer = verify(broker.url, name, issuer.token(), json={"token": issuer.token()})
    assert answer.status_code == 401  # the JWT is no registry credential: the body is not for strangers
    big = verify(broker.url, name, None, content=b"x" * 40_000, headers={"content-type": "application/json"})
    assert big.status_code in (401, 413)


def test_an_owner_sees_the_comparison_per_relationship_and_it_is_audited(accounts, issuer, broker):
    account, name = trusted(accounts, relationship(environment="production"),
                            relationship(permissions=["createPackage"], repository="acme/other"))
    token, since = issuer.token(workflow="other.yml"), time.time()
    without_otp = account.http("POST", f"-/npm/v1/oidc/token/verify/package/{name}", json={"token": token})
    assert without_otp.status_code == 401 and without_otp.json()["code"] == "otp.required"
    answer = account.http("POST", f"-/npm/v1/oidc/token/verify/package/{name}", otp=True, json={"token": token})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is False and body["refusal"]["code"] == "oidc.no-match"
    first, second = body["relationships"]
    assert {m["claim"] for m in first["mismatches"]} == {"workflow_ref", "environment"}
    assert any("'production'" in m["detail"] for m in first["mismatches"])  # what is expected, for owners
    assert [m["claim"] for m in second["mismatches"]] == ["repository", "workflow_ref"]
    assert all(r["tried"] and not r["matches"] for r in body["relationships"])
    [(event, package, detail)] = audit_rows(broker, since, "oidc.verify")
    assert package == name and detail["outcome"].startswith("refused 403") and len(detail["mismatches"]) == 4


def test_an_owner_sees_which_relationships_a_matching_token_meets(accounts, issuer, broker):
    account, name = trusted(accounts, relationship(environment="production"),
                            relationship(permissions=["createPackage"], repository="acme/other"))
    matching = account.http("POST", f"-/npm/v1/oidc/token/verify/package/{name}", otp=True,
                            json={"token": issuer.token(environment="production")})
    assert matching.json()["ok"] is True and matching.json()["permissions"] == ["createPackage", "createStagedPackage"]


def test_a_non_owner_gets_no_comparison(accounts, issuer, broker):
    _, name = trusted(accounts, relationship())
    stranger = accounts.create()
    answer = stranger.http("POST", f"-/npm/v1/oidc/token/verify/package/{name}", json={"token": issuer.token()})
    assert answer.status_code == 403, answer.text
