"""/-/metrics against a real broker: counters move by what happened, labels never carry a request's
own text, the scrape token is enforced, and the audit log is mirrored to the broker's log."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_oidc_security import exchange, relationship, trusted
from tests.support.accounts import Accounts
from tests.support.logscan import JWT_SHAPE
from tests.support.packages import publish_document, unique_name

METRICS_TOKEN = "metrics-scrape-secret-5a1d"


@pytest.fixture(scope="module")
def guarded(backends, broker_env):
    """A broker of its own (its counters move only by this module) with a metrics token set."""
    process = backends.broker(env={**broker_env, "STAGEGATE_METRICS_TOKEN": METRICS_TOKEN})
    yield process
    process.stop()


@pytest.fixture
def guarded_accounts(guarded, npm_cache, tmp_path) -> Accounts:
    return Accounts(guarded.url, tmp_path, npm_cache)


def scrape_text(broker) -> str:
    response = httpx.get(broker.url + "-/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a scrape."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_by_what_happened_and_labels_name_no_package_or_token(guarded, guarded_accounts, issuer):
    before = samples(scrape_text(guarded))
    account = guarded_accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    owner, trusted_name = trusted(guarded_accounts, relationship())
    granted = exchange(guarded.url, trusted_name, issuer.token())
    assert granted.status_code == 201, granted.text
    missing = exchange(guarded.url, unique_name(), issuer.token())
    assert missing.status_code == 404 and missing.json()["code"] == "package.not-found"
    wrong_otp = owner.http("POST", f"-/package/{trusted_name}/trust", headers={"npm-otp": "12345x"},
                           json=[relationship(repository="acme/other")])
    assert wrong_otp.status_code == 401, wrong_otp.text

    text = scrape_text(guarded)
    after = samples(text)

    def moved(name_: str, **labels) -> float:
        return value(after, name_, **labels) - value(before, name_, **labels)

    # 2 publishes: the first package, and the one trusted() publishes
    assert moved("stagegate_http_requests_total", route="/{pkg}", method="PUT", status="200") == 2
    assert moved("stagegate_http_request_duration_seconds_count", route="/{pkg}", method="PUT") == 2
    assert moved("stagegate_http_requests_total", route="/-/npm/v1/oidc/token/exchange/package/{pkg}",
                 method="POST", status="201") == 1
    assert moved("stagegate_http_requests_total", route="/-/npm/v1/oidc/token/exchange/package/{pkg}",
                 method="POST", status="404") == 1
    assert moved("stagegate_oidc_exchanges_total", outcome="granted", code="") == 1
    assert moved("stagegate_oidc_exchanges_total", outcome="refused", code="package.not-found") == 1
    assert moved("stagegate_otp_failures_total", reason="invalid") == 1
    assert value(after, "stagegate_versions", state="published") >= 2
    assert ("stagegate_stages_pending", ()) in after
    assert value(after, "stagegate_internal_errors_total", kind="database") == 0

    for secret in (name, trusted_name, account.name, account.token, owner.token, granted.json()["token"],
                   METRICS_TOKEN):
        assert secret not in text, f"{secret[:12]}… appears in the metrics"
    assert not JWT_SHAPE.search(text), "a JWT appears in the metrics"
    routes = {s.labels["route"] for f in text_string_to_metric_families(text) for s in f.samples
              if "route" in s.labels}
    assert all(r == "unmatched" or r.startswith("/") for r in routes), routes


def test_an_unknown_path_or_method_is_counted_under_a_fixed_label(guarded):
    before = samples(scrape_text(guarded))
    secretish = "sg_" + "q" * 30
    assert httpx.get(guarded.url + f"-/nothing/{secretish}", timeout=30).status_code == 404
    assert httpx.request("BREW", guarded.url + "-/ping", timeout=30).status_code in (400, 404, 405)
    text = scrape_text(guarded)
    after = samples(text)
    assert value(after, "stagegate_http_requests_total", route="unmatched", method="GET", status="404") - \
        value(before, "stagegate_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert "BREW" not in text and secretish not in text and "/-/nothing" not in text


def test_the_metrics_token_is_required_when_set(guarded):
    url = guarded.url + "-/metrics"
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer wrong"}, timeout=30).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Basic {METRICS_TOKEN}"}, timeout=30).status_code == 401
    refused = httpx.get(url, headers={"authorization": "Bearer " + METRICS_TOKEN[:-1]}, timeout=30)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "stagegate_" not in refused.text


def test_without_a_token_loopback_clients_may_scrape(broker):
    response = httpx.get(broker.url + "-/metrics", timeout=30)
    assert response.status_code == 200, response.text
    assert any(f.name == "stagegate_http_requests" for f in text_string_to_metric_families(response.text))
    proxied = httpx.get(broker.url + "-/metrics", headers={"x-forwarded-for": "203.0.113.9"}, timeout=30)
    assert proxied.status_code == 403 and proxied.json()["code"] == "forbidden"


def test_a_body_on_the_metrics_route_is_not_read_as_an_upload(guarded):
    response = httpx.request("GET", guarded.url + "-/metrics", content=b"x" * 1024,
                             headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert response.status_code == 200


def audit_lines(broker) -> list[dict]:
    lines = []
    for line in broker.log().splitlines():
        if line.startswith("{") and '"stagegate.audit"' in line:
            entry = json.loads(line)
            if entry["logger"] == "stagegate.audit":
                lines.append(entry)
    return lines


def test_each_committed_audit_event_is_mirrored_to_the_log_once(guarded, guarded_accounts, issuer):
    account, name = trusted(guarded_accounts, relationship())
    assert exchange(guarded.url, name, issuer.token()).status_code == 201
    assert exchange(guarded.url, name, issuer.token(repository="acme/forked")).status_code == 403

    mirrored = [e for e in audit_lines(guarded) if e.get("package") == name]
    rows = guarded.audit("%", name)
    assert [(e["event"], e["actor"]) for e in mirrored] == [(event, actor) for event, actor, _ in rows]
    assert [e["event"] for e in mirrored] == ["package.published", "trust.created", "oidc.exchange", "oidc.exchange"]
    published = mirrored[0]
    assert published["actor"] == account.name and published["detail"]["version"] == "1.0.0"
    assert published["request_id"], "an audit line carries its request's id"
    outcomes = [e["detail"]["outcome"] for e in mirrored[2:]]
    assert outcomes[0] == "granted" and outcomes[1].startswith("refused 403")
    log = guarded.log()
    # by shape: a bare "eyJ" also turns up inside an integrity string (base64 of a random digest)
    assert account.token not in log and account.password not in log and not JWT_SHAPE.search(log)


def test_a_blob_store_failure_is_counted_as_one(guarded, guarded_accounts):
    if guarded.env.get("STAGEGATE_BLOB_URL"):
        pytest.skip("the failure is made on the filesystem blob store (S3 backend here)")
    account = guarded_accounts.create()
    before = samples(scrape_text(guarded))
    blobs = guarded.data_dir / "blobs"
    moved_aside = blobs.with_name("blobs-aside")
    blobs.rename(moved_aside)
    blobs.write_text("a file where the blob directory should be: every write of a blob fails\n")
    try:
        name = unique_name()
        response = account.http("PUT", name, json=publish_document(name, "1.0.0"))
        assert response.status_code == 500, response.text
    finally:
        blobs.unlink()
        moved_aside.rename(blobs)
    after = samples(scrape_text(guarded))
    assert value(after, "stagegate_internal_errors_total", kind="blob-store") - \
        value(before, "stagegate_internal_errors_total", kind="blob-store") == 1
    assert value(after, "stagegate_http_requests_total", route="/{pkg}", method="PUT", status="500") - \
        value(before, "stagegate_http_requests_total", route="/{pkg}", method="PUT", status="500") == 1


def test_with_a_multiprocess_directory_the_scrape_adds_up_the_files(backends, broker_env, tmp_path, npm_cache):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    process = backends.broker(env={**broker_env, "PROMETHEUS_MULTIPROC_DIR": str(shared)})
    try:
        for _ in range(3):
            assert httpx.get(process.url + "-/ping", timeout=30).status_code == 200
        text = httpx.get(process.url + "-/metrics", timeout=30).text
        assert any(shared.glob("counter_*.db")), "the samples are written to the shared directory"
        scraped = samples(text)
        assert value(scraped, "stagegate_http_requests_total", route="/-/ping", method="GET", status="200") >= 3
        assert ("stagegate_stages_pending", ()) in scraped
    finally:
        process.stop()
