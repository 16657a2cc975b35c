"""The action's explanation of a broker refusal: chosen by the body's code and the run's mode."""

import base64
import json

import httpx
import pytest

from action.claims import JobClaims
from action.refusals import (EXCHANGE_FALLBACK, READ_FALLBACK, UPLOAD_FALLBACK, Job, Refused, explained, refusal,
                             trust_command)

CLAIMS = JobClaims(iss="https://token.actions.githubusercontent.com", repository="acme/widget",
                   workflow_ref="acme/widget/.github/workflows/release.yml@refs/tags/v1.2.0",
                   environment="release", ref="refs/tags/v1.2.0")
REGISTRY = "https://npm.example.com/"


def job(mode="stage", claims=CLAIMS) -> Job:
    return Job(package="widget", version="1.2.0", mode=mode, registry=REGISTRY, audience="npm:npm.example.com",
               claims=claims)


STAGE_COMMAND = ("npm trust github widget --repo acme/widget --file release.yml --env release --allow-stage-publish "
                 f"--registry {REGISTRY}")
PUBLISH_COMMAND = STAGE_COMMAND.replace("--allow-stage-publish", "--allow-publish")


@pytest.mark.parametrize(("code", "status", "mode", "title", "hint_has", "hint_lacks"), [
    ("oidc.no-match", 403, "stage", "No trust relationship matches this job",
     ["workflow_ref: acme/widget/.github/workflows/release.yml@refs/tags/v1.2.0", "environment: release",
      "repository: acme/widget", "ref: refs/tags/v1.2.0", STAGE_COMMAND], ["--allow-publish "]),
    ("oidc.no-match", 403, "publish", "No trust relationship matches this job", [PUBLISH_COMMAND],
     ["--allow-stage-publish"]),
    ("oidc.no-relationships", 403, "stage", "The package trusts no workflow yet",
     [STAGE_COMMAND, "repository: acme/widget"], []),
    ("oidc.no-relationships", 403, "publish", "The package trusts no workflow yet", [PUBLISH_COMMAND], []),
    ("package.not-found", 404, "stage", "Package not found",
     ["publish its first version by hand", f"npm publish --registry {REGISTRY}", STAGE_COMMAND], []),
    ("package.not-found", 404, "publish", "Package not found", ["by hand", PUBLISH_COMMAND], []),
    ("oidc.replayed", 401, "stage", "OIDC token already used", ["Re-run the job"], ["npm trust"]),
    ("oidc.invalid-token", 401, "stage", "The registry did not accept the job's OIDC token",
     ["'npm:npm.example.com'", "`audience` input", "expires"], ["npm trust"]),
    ("oidc.untrusted-issuer", 401, "stage", "The registry does not trust this CI's OIDC issuer",
     ["https://token.actions.githubusercontent.com", "operator"], ["npm trust"]),
    ("trust.permission-denied", 403, "publish", "The trust relationship does not allow this mode",
     ["lacks --allow-publish", "`mode: stage`", PUBLISH_COMMAND], ["--allow-stage-publish"]),
    ("trust.permission-denied", 403, "stage", "The trust relationship does not allow this mode",
     ["lacks --allow-stage-publish", STAGE_COMMAND], []),
    ("version.used", 403, "publish", "Version already used", ["widget@1.2.0", "Bump the version"], ["npm trust"]),
    ("version.staged", 409, "stage", "Version already staged",
     ["widget@1.2.0", f"npm stage list widget --registry {REGISTRY}", "bump the version"], []),
    ("oidc.pull-request-target", 403, "stage", "The registry's policy refuses this kind of job",
     ["pull_request_target", "workflow_dispatch"], ["npm trust", "allow_workflow_run"]),
    ("oidc.workflow-run", 403, "stage", "The registry's policy refuses this kind of job",
     ["workflow_run", "allow_workflow_run"], ["npm trust"]),
    ("oidc.self-hosted-runner", 403, "publish", "The registry's policy refuses this kind of job",
     ["GitHub-hosted runner", "allow_self_hosted_runners"], ["npm trust"]),
    ("oidc.unavailable", 503, "stage", "Registry unavailable", ["Re-run the job"], []),
    ("server.busy", 503, "publish", "Registry unavailable", ["Re-run the job"], []),
])
def test_hint_is_chosen_by_code_and_mode(code, status, mode, title, hint_has, hint_lacks):
    error = explained(status, {"code": code, "error": "the broker's sentence"}, "the OIDC token exchange",
                      job(mode), {})
    assert error.title == title
    for words in hint_has:
        assert words in error.hint()
    for words in hint_lacks:
        assert words not in error.hint()
    assert f"({status} {code}): the broker's sentence" in str(error)
    assert error.hint() in error.diagnostics()


@pytest.mark.parametrize(("status", "code", "fallback", "title"), [
    (403, None, EXCHANGE_FALLBACK, "No trust relationship matches this job"),
    (403, "forbidden", EXCHANGE_FALLBACK, "No trust relationship matches this job"),
    (404, None, EXCHANGE_FALLBACK, "Package not found"),
    (404, "not-found", EXCHANGE_FALLBACK, "Package not found"),
    (401, "unauthorized", EXCHANGE_FALLBACK, "The registry did not accept the job's OIDC token"),
    (503, None, EXCHANGE_FALLBACK, "Registry unavailable"),
    (409, "conflict", UPLOAD_FALLBACK, "Version already staged"),
    (404, None, UPLOAD_FALLBACK, "Package not found"),
    (403, "forbidden", UPLOAD_FALLBACK, "Registry refused the request"),  # permission or version: only the text knows
    (400, "bad-request", UPLOAD_FALLBACK, "Registry refused the request"),
    (500, None, READ_FALLBACK, "Registry refused the request"),
])
def test_a_body_without_a_specific_code_is_understood_by_status(status, code, fallback, title):
    body = {"error": "words"} if code is None else {"code": code, "error": "words"}
    error = explained(status, body, "staging", job(), fallback)
    assert error.title == title
    assert str(error) == f"the registry refused staging ({status}{' ' + code if code else ''}): words"


def test_a_specific_code_wins_over_the_status_fallback():
    error = explained(403, {"code": "trust.permission-denied", "error": "no"}, "publishing", job("publish"),
                      UPLOAD_FALLBACK)
    assert error.title == "The trust relationship does not allow this mode"


def test_an_unknown_specific_code_gets_the_generic_explanation_and_the_brokers_words():
    error = explained(403, {"code": "trust.route-denied", "error": "a trust token may not call this"},
                      "the OIDC token exchange", job(), EXCHANGE_FALLBACK)
    assert type(error) is Refused and error.hint() is None
    assert error.diagnostics() == ("the registry refused the OIDC token exchange (403 trust.route-denied): "
                                   "a trust token may not call this")


@pytest.mark.parametrize("body", [b"<html>bad gateway</html>", b"[1, 2]", b'{"code": 7, "error": 8}'])
def test_a_malformed_error_body_still_explains_by_status(body):
    response = httpx.Response(404, content=body, request=httpx.Request("POST", REGISTRY))
    error = refusal(response, "the OIDC token exchange", job(), EXCHANGE_FALLBACK)
    assert error.title == "Package not found"


def test_the_trust_command_has_placeholders_for_claims_the_token_lacks():
    command = trust_command(job(claims=JobClaims()))
    assert command == f"npm trust github widget --repo <owner/repo> --file <workflow.yml> --allow-stage-publish " \
                      f"--registry {REGISTRY}"


def test_the_trust_command_quotes_odd_claim_values_for_the_shell():
    claims = CLAIMS.model_copy(update={"environment": "prod; rm -rf ~"})
    assert "--env 'prod; rm -rf ~'" in trust_command(job(claims=claims))


def test_the_trust_command_needs_no_registry_flag_for_npmjs():
    npmjs = Job(package="@acme/widget", version="1.0.0", mode="publish", registry="https://registry.npmjs.org/",
                audience="npm:registry.npmjs.org", claims=CLAIMS)
    assert trust_command(npmjs) == ("npm trust github @acme/widget --repo acme/widget --file release.yml "
                                    "--env release --allow-publish")


def jwt_with(payload: dict) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{encoded}.signature"


@pytest.mark.parametrize(("workflow_ref", "ref", "file"), [
    ("acme/widget/.github/workflows/release.yml@refs/heads/main", "refs/heads/main", "release.yml"),
    ("acme/widget/.github/workflows/release.yml@x.yml@refs/heads/main", "refs/heads/main", "release.yml@x.yml"),
    ("acme/widget/.github/workflows/release.yml@refs/tags/v1", None, "release.yml"),
    ("other/repo/.github/workflows/release.yml@refs/heads/main", "refs/heads/main", None),
    ("garbage", "refs/heads/main", None),
])
def test_workflow_file_is_read_from_workflow_ref_as_github_builds_it(workflow_ref, ref, file):
    claims = JobClaims.of(jwt_with({"repository": "acme/widget", "workflow_ref": workflow_ref, "ref": ref}))
    assert claims.workflow_file == file


def test_claims_are_read_from_the_jobs_own_token():
    claims = JobClaims.of(jwt_with({"repository": "acme/widget", "environment": "prod", "sub": "repo:acme/widget",
                                    "aud": ["a", "b"]}))
    assert claims.quoted() == ["repository: acme/widget", "environment: prod"]


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.!!!.c", "a.bm90IGpzb24.c", jwt_with([1, 2]),
                                   jwt_with({"repository": 5})])
def test_an_unreadable_token_quotes_no_claims(token):
    assert JobClaims.of(token).quoted() == []


def test_a_missing_scoped_package_is_also_told_about_scope_wide_trust():
    scoped = Job(package="@acme/widget", version="1.0.0", mode="publish", registry=REGISTRY,
                 audience="npm:npm.example.com", claims=CLAIMS)
    hint = explained(404, {"code": "package.not-found"}, "the exchange", scoped, EXCHANGE_FALLBACK).hint()
    assert ("npm trust github '@acme/*' --repo acme/widget --file release.yml --env release --allow-stage-publish"
            in hint)
    assert "whole scope" not in explained(404, {"code": "package.not-found"}, "x", job(), EXCHANGE_FALLBACK).hint()
