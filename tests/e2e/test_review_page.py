"""The review page over HTTP, without a browser: sign-in, cookie flags, CSRF and origin checks, sign-out,
who sees which stage, OTP refusals, security headers. (tests/e2e/test_review_browser.py drives a real
Chromium through the whole review.)"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.packages import publish_document, tarball, unique_name
from tests.support.review import ReviewClient

V1 = {"dependencies": {"left-pad": "^1.0.0"}, "scripts": {"test": "node test.js"}}
V2 = {"dependencies": {"left-pad": "^1.0.0", "event-stream": "3.3.6"},
      "scripts": {"test": "node test.js", "postinstall": "node collect.js"}}


def staged_package(accounts):
    """An owner with 2FA, version 1.0.0 published and 1.1.0 staged (a new dependency and a postinstall)."""
    owner = accounts.create("reviewer")
    name = unique_name("review")
    v1 = tarball({"name": name, "version": "1.0.0", **V1}, {"package/index.js": b"module.exports = 1\n"})
    published = owner.http("PUT", name, json=publish_document(name, "1.0.0", v1, manifest_extra=V1))
    assert published.status_code == 200, published.text
    owner.enable_2fa()
    v2 = tarball({"name": name, "version": "1.1.0", **V2},
                 {"package/index.js": b"module.exports = 2\n", "package/collect.js": b"require('os')\n"})
    staged = owner.http("POST", f"-/stage/package/{name}", json=publish_document(name, "1.1.0", v2, manifest_extra=V2))
    assert staged.status_code == 201, staged.text
    return owner, name, staged.json()["stageId"]


@pytest.fixture
def client(broker):
    made = ReviewClient(broker.url)
    yield made
    made.close()


def _cookie_header(response: httpx.Response, name: str) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    return header


def _message(response: httpx.Response) -> str:
    return re.search(r'<p class="error" role="alert">(.*?)</p>', response.text, re.S).group(1)


def test_sign_in_sets_an_httponly_strict_expiring_cookie(accounts, client):
    owner, name, stage_id = staged_package(accounts)
    form = client.get("signin")
    signin_cookie = _cookie_header(form, "stagegate_review_signin")
    assert all(flag in signin_cookie for flag in ("HttpOnly", "SameSite=Strict", "Path=/-/review", "Max-Age=3600"))
    response = client.signin(owner)
    assert response.status_code == 303, response.text
    cookie = _cookie_header(response, "stagegate_review")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/-/review" in cookie
    assert "Max-Age=43200" in cookie
    assert "Secure" not in cookie, "the public URL is http here; https gets Secure (unit-tested)"
    inbox = client.get("")
    assert inbox.status_code == 200 and stage_id in inbox.text and name in inbox.text
    assert f"{owner.name}" in inbox.text


def test_security_headers_on_every_page(accounts, client):
    owner, name, stage_id = staged_package(accounts)
    pages = [client.get("signin")]
    client.signed_in(owner)
    pages += [client.get(""), client.get(f"stage/{stage_id}"), client.get("stage/not-a-uuid"), client.get("style.css"),
              client.post("signout", {"csrf": "x" * 5000}), client.http.delete("-/review/signin")]
    assert [p.status_code for p in pages[-2:]] == [413, 405], "refused before any handler, with the headers too"
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
    assert "<script" not in pages[2].text and "style=" not in pages[2].text


def test_a_wrong_password_and_a_wrong_otp_fail_alike(accounts, client):
    owner, _, _ = staged_package(accounts)
    wrong_password = client.signin(owner, password="not the password")
    wrong_otp = client.signin(owner, otp=owner.authenticator.wrong_code())
    unknown = client.signin(accounts.create("nobody"), otp="123456")  # right password, no 2FA on the account
    assert wrong_password.status_code == wrong_otp.status_code == unknown.status_code == 401
    assert _message(wrong_password) == _message(wrong_otp) == _message(unknown)
    assert "stagegate_review=" not in str(wrong_otp.headers.get_list("set-cookie"))
    assert client.get("").status_code == 303, "not signed in"


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(accounts, client, broker):
    owner, name, stage_id = staged_package(accounts)
    client.signed_in(owner)
    csrf = client.csrf(f"stage/{stage_id}")
    otp = owner.otp()  # refused before the code is looked at: the same code each time
    no_token = client.post(f"stage/{stage_id}/approve", {"otp": otp})
    wrong_token = client.post(f"stage/{stage_id}/approve", {"otp": otp, "csrf": "0" * 64})
    cross_site = client.post(f"stage/{stage_id}/approve", {"otp": otp, "csrf": csrf},
                             headers={"origin": "https://evil.example"})
    no_origin = httpx.post(broker.url + f"-/review/stage/{stage_id}/approve", data={"otp": "1", "csrf": csrf},
                           cookies=client.http.cookies)
    assert [r.status_code for r in (no_token, wrong_token, cross_site, no_origin)] == [403] * 4
    assert "CSRF" in _message(no_token) and "Origin" in _message(cross_site)
    view = owner.http("GET", f"-/stage/{stage_id}")
    assert view.status_code == 200, "still staged"
    assert not broker.audit("stage.approved", name)


def test_the_signin_form_needs_its_own_csrf_cookie(accounts, client):
    owner, _, _ = staged_package(accounts)
    client.csrf("signin")
    forged = client.post("signin", {"csrf": "forged", "username": owner.name, "password": owner.password,
                                    "otp": "123456"})
    assert forged.status_code == 403
    assert "stagegate_review=" not in str(forged.headers.get_list("set-cookie"))


def test_sign_out_revokes_the_session(accounts, client, broker):
    owner, _, _ = staged_package(accounts)
    client.signed_in(owner)
    session = client.http.cookies["stagegate_review"]
    signed_out = client.post("signout", {"csrf": client.csrf("")})
    assert signed_out.status_code == 303 and signed_out.headers["location"].endswith("/-/review/signin")
    assert "Max-Age=0" in _cookie_header(signed_out, "stagegate_review")
    replayed = httpx.get(broker.url + "-/review/", cookies={"stagegate_review": session})
    assert replayed.status_code == 303, "the old cookie no longer signs in"


def test_disabling_2fa_ends_the_accounts_review_sessions(accounts, client, broker):
    owner, _, _ = staged_package(accounts)
    client.signed_in(owner)
    session = client.http.cookies["stagegate_review"]
    disabled = owner.http("POST", "-/npm/v1/user", otp=True, json={"tfa": {"mode": "disable",
                                                                           "password": owner.password}})
    assert disabled.status_code == 200, disabled.text
    after = httpx.get(broker.url + "-/review/", cookies={"stagegate_review": session})
    assert after.status_code == 303, "the review page is for accounts with 2FA"


def test_a_session_is_not_an_npm_token(accounts, client, broker):
    owner, name, stage_id = staged_package(accounts)
    client.signed_in(owner)
    session = client.http.cookies["stagegate_review"]
    otp = owner.otp()
    for method, path in (("GET", "-/whoami"), ("GET", f"-/stage/{stage_id}"), ("POST", f"-/stage/{stage_id}/approve")):
        response = httpx.request(method, broker.url + path, headers={"authorization": f"Bearer {session}",
                                                                     "npm-otp": otp})
        assert response.status_code == 401, (path, response.text)


def test_a_non_maintainer_cannot_see_or_decide_another_packages_stage(accounts, client, broker):
    owner, name, stage_id = staged_package(accounts)
    other = accounts.create("other")
    other.enable_2fa()
    client.signed_in(other)
    assert stage_id not in client.get("").text
    page = client.get(f"stage/{stage_id}")
    assert page.status_code == 404 and name not in page.text
    csrf = client.csrf("")
    attempt = client.post(f"stage/{stage_id}/approve", {"csrf": csrf, "otp": other.otp()})
    assert attempt.status_code == 404
    assert owner.http("GET", f"-/stage/{stage_id}").status_code == 200


def test_a_wrong_otp_is_refused_then_a_fresh_one_approves(accounts, client, broker):
    owner, name, stage_id = staged_package(accounts)
    client.signed_in(owner)
    page = client.get(f"stage/{stage_id}")
    assert "postinstall" in page.text and "event-stream" in page.text and 'id="approve"' in page.text
    refused = client.decide(stage_id, "approve", owner.authenticator.wrong_code())
    assert refused.status_code == 401 and "one-time password" in _message(refused)
    assert httpx.get(broker.url + name).json()["dist-tags"]["latest"] == "1.0.0"
    approved = client.decide(stage_id, "approve", owner.otp())
    assert approved.status_code == 200 and "Approved and published" in approved.text, approved.text
    assert httpx.get(broker.url + name).json()["dist-tags"]["latest"] == "1.1.0"
    [(_, actor, detail)] = broker.audit("stage.approved", name)
    assert actor == owner.name and detail["auth"] == "web" and detail["second_factor"] == "otp"


def test_reject_from_the_page_frees_the_version(accounts, client, broker):
    owner, name, stage_id = staged_package(accounts)
    client.signed_in(owner)
    rejected = client.decide(stage_id, "reject", owner.otp())
    assert rejected.status_code == 200 and "Rejected" in rejected.text
    assert owner.http("GET", f"-/stage/{stage_id}").status_code == 404
    [(_, actor, detail)] = broker.audit("stage.rejected", name)
    assert actor == owner.name and detail["auth"] == "web"



def test_malformed_forms_get_a_4xx_page(accounts, client):
    owner, _, stage_id = staged_package(accounts)
    client.signed_in(owner)
    path = f"stage/{stage_id}/approve"
    as_json = client.post(path, {}, content=b'{"otp": "1"}', headers={"content-type": "application/json"})
    bad_escape = client.post(path, {}, content=b"csrf=%ff&otp=1",
                             headers={"content-type": "application/x-www-form-urlencoded"})
    many = client.post(path, {f"f{i}": "1" for i in range(50)})
    too_large = client.post(path, {"csrf": "x" * 5000})
    assert [r.status_code for r in (as_json, bad_escape, many)] == [400, 400, 400]
    assert all(r.headers["content-type"].startswith("text/html") for r in (as_json, bad_escape, many))
    assert too_large.status_code == 413
    assert owner.http("GET", f"-/stage/{stage_id}").status_code == 200


def test_an_expired_session_is_signed_out(accounts, client, broker):
    import sqlalchemy

    owner, _, _ = staged_package(accounts)
    client.signed_in(owner)
    assert client.get("").status_code == 200
    engine = sqlalchemy.create_engine(broker.database_url)
    with engine.begin() as conn:  # the clock moved 12 hours on
        conn.execute(sqlalchemy.text("update tokens set expires_at = expires_at - 43201 where kind = 'web' and "
                                     "user_id = (select id from users where name = :n)"), {"n": owner.name})
    assert client.get("").status_code == 303
    client.signed_in(owner)  # a new session; the expired one is deleted
    with engine.connect() as conn:
        kinds = conn.execute(sqlalchemy.text("select count(*) from tokens where kind = 'web' and user_id = "
                                             "(select id from users where name = :n)"), {"n": owner.name}).scalar()
    engine.dispose()
    assert kinds == 1


def test_a_ci_stage_shows_its_job_and_nothing_it_holds_is_markup(accounts, client, issuer):
    from tests.support.trust import github_relationship, trust_token

    owner = accounts.create("ci-review")
    name = unique_name("review-ci")
    v1 = tarball({"name": name, "version": "1.0.0"}, {"package/index.js": b"module.exports = 1\n"})
    assert owner.http("PUT", name, json=publish_document(name, "1.0.0", v1)).status_code == 200
    owner.enable_2fa()
    created = owner.http("POST", f"-/package/{name}/trust", otp=True, json=[github_relationship()])
    assert created.status_code in (200, 201), created.text
    token = trust_token(owner.registry, name, issuer)
    hostile = {"dependencies": {"<img src=x onerror=alert(1)>": "1"}}
    v2 = tarball({"name": name, "version": "1.1.0", **hostile},
                 {"package/index.js": b"</pre><script>alert(1)</script>\n"})
    staged = owner.http("POST", f"-/stage/package/{name}", token=token,
                        json=publish_document(name, "1.1.0", v2, manifest_extra=hostile))
    assert staged.status_code == 201, staged.text
    stage_id = staged.json()["stageId"]
    client.signed_in(owner)
    inbox = client.get("").text
    row = inbox[inbox.index(stage_id):]
    assert "CI: <strong>acme/widget</strong>" in row and "acme/widget/.github/workflows/release.yml@refs/heads/main" in row
    assert "0123456789ab" in row and "run 777" in row
    assert "github.com/acme/widget/actions/runs" not in row, "the fake issuer is not github.com's: no link"
    page = client.get(f"stage/{stage_id}").text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_policy_form_asks_for_two_approvals_and_a_first_one_does_not_publish(accounts, broker):
    """The stager (owner) staged 1.1.0; a co-maintainer sets two approvals on the page, another approves once."""
    owner, name, stage_id = staged_package(accounts)  # owner: one OTP so far
    setter, approver = accounts.create("setter"), accounts.create("approver")
    for other in (setter, approver):
        added = owner.npm("owner", "add", other.name, name, f"--otp={owner.otp()}")
        assert added.returncode == 0, added
        other.enable_2fa()
    with ReviewClient(broker.url) as page:
        page.signed_in(setter)
        unmeetable = page.post(f"package/{name}/policy", {"csrf": page.csrf(f"stage/{stage_id}"), "required": "4",
                                                          "otp": "000000"})
        assert unmeetable.status_code == 409 and "3 maintainer" in _message(unmeetable), "refused before the OTP"
        saved = page.post(f"package/{name}/policy", {"csrf": page.csrf(f"stage/{stage_id}"), "required": "2",
                                                     "otp": setter.otp()})
        assert saved.status_code == 200 and "now needs 2 maintainer approvals" in saved.text, saved.text
    assert setter.http("GET", f"-/package/{name}/policy").json()["requiredApprovals"] == 2
    with ReviewClient(broker.url) as page:
        page.signed_in(approver)
        assert "none yet (of 2)" in page.get(f"stage/{stage_id}").text
        approved = page.decide(stage_id, "approve", approver.otp())
        assert approved.status_code == 200 and "Approved, not yet published" in approved.text, approved.text
        assert "1 of 2 approvals" in approved.text
        assert f"{approver.name} (1 of 2)" in page.get("").text, "the inbox shows who approved so far"
    assert "1.1.0" not in httpx.get(broker.url + name).json()["versions"]
    with ReviewClient(broker.url) as stranger_page:
        stranger = accounts.create("stranger")
        stranger.enable_2fa()
        stranger_page.signed_in(stranger)
        refused = stranger_page.post(f"package/{name}/policy", {"csrf": stranger_page.csrf(""), "required": "1",
                                                                "otp": stranger.otp()})
        assert refused.status_code == 404


def test_the_stagers_own_approval_is_refused_before_its_otp_is_spent(accounts, broker):
    owner, name, _ = staged_package(accounts)
    co = accounts.create("co")
    added = owner.npm("owner", "add", co.name, name, f"--otp={owner.otp()}")
    assert added.returncode == 0, added
    policy = owner.http("POST", f"-/package/{name}/policy", otp=True, json={"requiredApprovals": 2})
    assert policy.status_code == 200, policy.text
    co.enable_2fa()  # the co-maintainer stages 1.2.0 with their own session, then tries to approve it
    staged = co.http("POST", f"-/stage/package/{name}", json=publish_document(name, "1.2.0"))
    assert staged.status_code == 201, staged.text
    stage_id = staged.json()["stageId"]
    with ReviewClient(broker.url) as page:
        page.signed_in(co)
        code = co.otp()
        own = page.decide(stage_id, "approve", code)
        assert own.status_code == 403 and "yourself" in _message(own), own.text
        rejected = page.decide(stage_id, "reject", code)  # the same code: the refusal did not spend it
        assert rejected.status_code == 200 and "is rejected" in rejected.text, rejected.text


def test_head_of_a_stage_page_answers_without_a_body(accounts, client):
    owner, _, stage_id = staged_package(accounts)
    client.signed_in(owner)
    head = client.http.head(f"-/review/stage/{stage_id}")
    assert head.status_code == 200 and head.content == b"" and head.headers["x-frame-options"] == "DENY"
