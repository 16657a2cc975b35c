"""CircleCI trusted publishing with the stock npm CLI, against a fake CircleCI issuer (one issuer per
organization under its prefix): `npm trust circleci|list|revoke`, a simulated CircleCI job
(`CIRCLECI=true`, `NPM_ID_TOKEN`), and the attack table. The rules themselves have table tests in
tests/unit/test_trust_circleci.py."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.e2e.test_trust_gitlab import assert_round_trip_then_revoke, exchange, owned_package, printed_json
from tests.support.issuer import (CIRCLECI_ORG, CIRCLECI_PIPELINE_DEFINITION, CIRCLECI_PROJECT,
                                  CIRCLECI_VCS_ORIGIN)
from tests.support.packages import set_version

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CONTEXT = "3e9fbd1b-8a4c-4f7d-ad8a-4f3c6b4a5d04"
NS = "oidc.circleci.com/"


def trust_circleci(account, name: str, *flags: str, org: str = CIRCLECI_ORG):
    return account.npm("trust", "circleci", name, "--org-id", org, "--project-id", CIRCLECI_PROJECT,
                       "--pipeline-definition-id", CIRCLECI_PIPELINE_DEFINITION, "--vcs-origin", CIRCLECI_VCS_ORIGIN,
                       "--yes", *flags, f"--otp={account.otp()}")


def test_trust_circleci_creates_list_shows_and_revoke_removes(accounts, circleci_issuer, tmp_path):
    account, name, _ = owned_package(accounts, tmp_path)
    created = trust_circleci(account, name, "--context-id", CONTEXT, "--allow-stage-publish")
    assert created.returncode == 0, created
    assert "Trust configuration created successfully" in created.output
    wire = account.http("GET", f"-/package/{name}/trust").json()
    assert [{k: r[k] for k in ("type", "claims", "permissions", "issuer")} for r in wire] == [{
        "type": "circleci", "permissions": ["createStagedPackage"],
        "issuer": circleci_issuer.circleci_prefix + CIRCLECI_ORG,
        "claims": {f"{NS}org-id": CIRCLECI_ORG, f"{NS}project-id": CIRCLECI_PROJECT,
                   f"{NS}pipeline-definition-id": CIRCLECI_PIPELINE_DEFINITION,
                   f"{NS}vcs-origin": CIRCLECI_VCS_ORIGIN, f"{NS}context-ids": [CONTEXT]}}]
    listed = account.npm("trust", "list", name, "--json")
    assert listed.returncode == 0, listed
    (shown,) = printed_json(listed.stdout)
    assert shown == {"id": wire[0]["id"], "type": "circleci", "orgId": CIRCLECI_ORG, "projectId": CIRCLECI_PROJECT,
                     "pipelineDefinitionId": CIRCLECI_PIPELINE_DEFINITION, "vcsOrigin": CIRCLECI_VCS_ORIGIN,
                     "contextIds": [CONTEXT], "permissions": ["createStagedPackage"]}
    # Round trip: the listed options, given back to `npm trust circleci`, make the same configuration (a
    # dry run prints what it would send: no one-time code spent on a 409).
    again = account.npm("trust", "circleci", name, "--org-id", shown["orgId"], "--project-id", shown["projectId"],
                        "--pipeline-definition-id", shown["pipelineDefinitionId"], "--vcs-origin", shown["vcsOrigin"],
                        "--context-id", *shown["contextIds"], "--allow-stage-publish", "--dry-run", "--json")
    assert_round_trip_then_revoke(account, name, shown, again)


def test_a_circleci_job_stages_and_cannot_publish_without_allow_publish(accounts, circleci_issuer, tmp_path):
    account, name, directory = owned_package(accounts, tmp_path)
    assert trust_circleci(account, name, "--allow-stage-publish").returncode == 0
    ci = accounts.anonymous()
    pipeline = str(uuid.uuid4())
    staged = ci("stage", "publish", cwd=directory, env=circleci_issuer.job(pipeline_id=pipeline))
    assert staged.returncode == 0, staged
    stage_id = re.search(rf"\(staged with id ({UUID})\)", staged.stdout).group(1)
    view = account.npm("stage", "view", stage_id)
    assert f"repository: {CIRCLECI_VCS_ORIGIN}" in view.stdout and f"runId: {pipeline}" in view.stdout, view
    set_version(directory, "1.2.0")
    published = ci("publish", cwd=directory, env=circleci_issuer.job())
    assert published.returncode != 0
    assert "E403" in published.output and "OIDC permission denied" in published.output
    assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.0.0"


@pytest.fixture(scope="module")
def target(broker, npm_cache, tmp_path_factory, circleci_issuer):
    """A package trusted for the fake organization's project and pipeline definition, used once."""
    from tests.support.accounts import Accounts

    accounts = Accounts(broker.url, tmp_path_factory.mktemp("circleci"), npm_cache)
    account, name, _ = owned_package(accounts, tmp_path_factory.mktemp("circleci-pkg"))
    assert trust_circleci(account, name, "--context-id", CONTEXT, "--allow-stage-publish").returncode == 0
    first = exchange(broker.url, name, circleci_issuer.token(context_ids=[CONTEXT]))
    assert first.status_code == 201, first.text
    return name


OTHER = "9f6c8a8e-5d1f-4c4a-9a57-1c0f3e1d2a09"

# (claim overrides of the job's token, the check named in the refusal)
ATTACKS = {
    "wrong project": ({"project": OTHER}, f"{NS}project-id"),
    "wrong pipeline definition": ({"definition": OTHER}, f"{NS}pipeline-definition-id"),
    "the pipeline definition from another project": ({"project": OTHER, "definition": CIRCLECI_PIPELINE_DEFINITION},
                                                     f"{NS}project-id"),
    "another repository (a fork's build)": ({"vcs_origin": "github.com/evil/widget"}, f"{NS}vcs-origin"),
    "no restricted context": ({"context_ids": []}, f"{NS}context-ids"),
    "re-created project (new id)": ({"project": str(uuid.uuid4())}, f"{NS}project-id"),
    "org-id claim of another organization": ({"org_id": OTHER}, f"{NS}org-id"),
    "ssh rerun": ({"ssh_rerun": True}, f"{NS}ssh-rerun"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_circleci_attack_is_refused(attack, target, circleci_issuer, broker):
    overrides, claim = ATTACKS[attack]
    response = exchange(broker.url, target, circleci_issuer.token(**{"context_ids": [CONTEXT], **overrides}))
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "oidc.no-match" and f"{claim} check" in body["message"]
    assert "eyJ" not in response.text


def test_a_pipeline_without_vcs_origin_is_refused(target, circleci_issuer, broker):
    # CircleCI writes no vcs-origin for pipelines triggered by a custom webhook: the relationship names one.
    response = exchange(broker.url, target, circleci_issuer.token(vcs_origin=None, context_ids=[CONTEXT]))
    assert response.status_code == 401 and response.json()["code"] == "oidc.invalid-token"
    assert f"no {NS}vcs-origin claim" in response.json()["error"]


def test_a_token_of_another_organization_is_refused_without_fetching_its_keys(target, circleci_issuer, broker):
    # Same project, pipeline and repository ids, issued by another organization's issuer that no
    # relationship names: refused before any key of it is fetched, however many such tokens come.
    for _ in range(3):
        org = str(uuid.uuid4())
        response = exchange(broker.url, target, circleci_issuer.token(org=org, context_ids=[CONTEXT]))
        assert response.status_code == 401 and response.json()["code"] == "oidc.untrusted-issuer"
        assert circleci_issuer.jwks_requests_by_path.get(f"/org/{org}", 0) == 0


def test_a_circleci_token_signed_by_a_forged_key_is_refused(target, circleci_issuer, broker):
    token = circleci_issuer.sign(circleci_issuer.claims(context_ids=[CONTEXT]), key=circleci_issuer.rogue_key)
    response = exchange(broker.url, target, token)
    assert response.status_code == 401 and response.json()["code"] == "oidc.invalid-token"


def test_a_circleci_token_from_an_issuer_url_not_configured_is_refused(target, circleci_issuer, broker):
    token = circleci_issuer.token(iss=f"https://oidc.circleci.evil.example/org/{CIRCLECI_ORG}", context_ids=[CONTEXT])
    response = exchange(broker.url, target, token)
    assert response.status_code == 401 and response.json()["code"] == "oidc.untrusted-issuer"


def test_the_same_circleci_token_is_exchanged_once(target, circleci_issuer, broker):
    token = circleci_issuer.token(context_ids=[CONTEXT])
    assert exchange(broker.url, target, token).status_code == 201
    replayed = exchange(broker.url, target, token)
    assert replayed.status_code == 401 and replayed.json()["code"] == "oidc.replayed"
