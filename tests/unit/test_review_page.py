"""The review page's pure rules: CI origin and run links, form parsing, the origin check, CSRF, cookies."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from broker.api.review import _cookie
from broker.domain.review_page import (GITHUB_ISSUER, BadForm, age, ci_origin, csrf_matches, csrf_token,
                                       parse_form, same_origin)

GITLAB = "https://gitlab.com"
GH = {"repository": "acme/widget", "workflow_ref": "acme/widget/.github/workflows/release.yml@refs/tags/v1",
      "ref": "refs/tags/v1", "sha": "a" * 40, "run_id": "12345"}


def test_a_github_run_links_to_github_for_the_default_issuer():
    found = ci_origin(GH, GITHUB_ISSUER, GITLAB)
    assert found.run_url == "https://github.com/acme/widget/actions/runs/12345"
    assert (found.repository, found.ref, found.sha) == ("acme/widget", "refs/tags/v1", "a" * 40)


def test_another_github_issuer_gets_no_link():
    assert ci_origin(GH, "https://ghe.example/_services/token", GITLAB).run_url is None


@pytest.mark.parametrize("run_id", ["12/../x", "javascript:1", ""])
def test_a_strange_run_id_gets_no_link(run_id):
    assert ci_origin({**GH, "run_id": run_id}, GITHUB_ISSUER, GITLAB).run_url is None


def test_a_gitlab_pipeline_links_to_its_instance():
    found = ci_origin({"provider": "gitlab", "repository": "acme/tools/widget", "run_id": "77"}, GITHUB_ISSUER,
                      "https://gitlab.example.com/")
    assert found.run_url == "https://gitlab.example.com/acme/tools/widget/-/pipelines/77"


def test_an_account_stage_has_no_ci_origin():
    assert ci_origin({}, GITHUB_ISSUER, GITLAB) is None


def test_age():
    assert [age(s) for s in (5, 120, 7200, 200000)] == ["5 s", "2 min", "2 h", "2 d"]


def test_parse_form():
    assert parse_form(b"a=1&b=%C3%A9&a=2&c=", "application/x-www-form-urlencoded; charset=utf-8") == \
        {"a": "2", "b": "é", "c": ""}


@pytest.mark.parametrize("body, content_type", [
    (b"a=1", "application/json"), (b"a=1", None), (b"a=%FF", "application/x-www-form-urlencoded"),
    ("a=é".encode(), "application/x-www-form-urlencoded"), (b"a=%00", "application/x-www-form-urlencoded"),
    (b"&".join(b"f%d=1" % i for i in range(20)), "application/x-www-form-urlencoded"),
])
def test_a_bad_form_is_refused(body, content_type):
    with pytest.raises(BadForm):
        parse_form(body, content_type)


@pytest.mark.parametrize("origin, referer, ok", [
    ("https://npm.example.com", None, True),
    ("https://npm.example.com:443", None, True),
    ("https://NPM.example.com", None, True),
    ("http://npm.example.com", None, False),
    ("https://npm.example.com.evil.test", None, False),
    ("null", "https://npm.example.com/-/review/", False),
    (None, "https://npm.example.com/-/review/stage/x", True),
    (None, "https://evil.test/", False),
    (None, None, False),
    ("https://npm.example.com:99999", None, False),
])
def test_same_origin(origin, referer, ok):
    assert same_origin("https://npm.example.com/registry/", origin, referer) is ok


def test_csrf_token_is_per_session():
    assert csrf_token("sg_a") != csrf_token("sg_b")
    assert csrf_matches(csrf_token("sg_a"), csrf_token("sg_a"))
    assert not csrf_matches(csrf_token("sg_a"), None) and not csrf_matches(csrf_token("sg_a"), "é")


def test_cookies_are_secure_behind_https_and_scoped_to_the_pages():
    https = _cookie(SimpleNamespace(public_url="https://npm.example.com/registry/"), "c", "v", 60)
    assert https == "c=v; Path=/registry/-/review; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
    plain = _cookie(SimpleNamespace(public_url="http://127.0.0.1:4873/"), "c", "v", 60)
    assert "Secure" not in plain and "Path=/-/review;" in plain
