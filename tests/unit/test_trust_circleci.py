"""The CircleCI claim table and its checks, one row per case: (configuration, claims) → refused or not."""

from __future__ import annotations

import pytest

from broker.domain.circleci import (CONTEXT_IDS, ORG_ID, PIPELINE_DEFINITION_ID, PROJECT_ID, SSH_RERUN, VCS_ORIGIN,
                                    CircleCIClaims, CircleCIConfig, CircleCIProvider, check_context_ids,
                                    check_org_id, check_pipeline_definition_id, check_project_id, check_ssh_rerun,
                                    check_vcs_origin)
from broker.domain.trust import (InvalidConfig, TrustRelationship, all_known_claims, config_document, config_json,
                                 matching_relationships, missing_required_claims, unknown_claims)

PROVIDER = CircleCIProvider()
ORG = "0b6c8a8e-5d1f-4c4a-9a57-1c0f3e1d2a01"
OTHER_ORG = "9f6c8a8e-5d1f-4c4a-9a57-1c0f3e1d2a09"
PROJECT = "1c7d9b9f-6e2a-4d5b-8b68-2d1a4f2e3b02"
DEFINITION = "2d8eac0a-7f3b-4e6c-9c79-3e2b5a3f4c03"
CONTEXT_A = "3e9fbd1b-8a4c-4f7d-ad8a-4f3c6b4a5d04"
CONTEXT_B = "4fa0ce2c-9b5d-4a8e-be9b-5a4d7c5b6e05"
PREFIX = "https://oidc.circleci.com/org/"
ISSUER = PREFIX + ORG

# Every claim CircleCI documents ("Using OpenID Connect tokens in jobs": standard and additional
# claims) and the ids its tokens carry besides (org-id, pipeline-definition-id, pipeline-id,
# workflow-id, job-id: the npm CLI and PyPI configure or read them).
CIRCLECI_DOCUMENTED_CLAIMS = {
    "iss", "sub", "aud", "iat", "exp", ORG_ID, PROJECT_ID, PIPELINE_DEFINITION_ID, VCS_ORIGIN,
    "oidc.circleci.com/vcs-ref", CONTEXT_IDS, SSH_RERUN, "oidc.circleci.com/pipeline-id",
    "oidc.circleci.com/workflow-id", "oidc.circleci.com/job-id"}


def raw(**overrides) -> dict:
    values = {"iss": ISSUER, "exp": 2, "iat": 1, "sub": f"org/{ORG}/project/{PROJECT}/user/u", ORG_ID: ORG,
              PROJECT_ID: PROJECT, PIPELINE_DEFINITION_ID: DEFINITION, VCS_ORIGIN: "github.com/acme/widget",
              "oidc.circleci.com/vcs-ref": "refs/heads/main", CONTEXT_IDS: [CONTEXT_A], SSH_RERUN: False,
              "oidc.circleci.com/job-id": "j"}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def claims(**overrides) -> CircleCIClaims:
    return CircleCIClaims.model_validate(raw(**overrides))


def config(**overrides) -> CircleCIConfig:
    values = {ORG_ID: ORG, PROJECT_ID: PROJECT, PIPELINE_DEFINITION_ID: DEFINITION,
              VCS_ORIGIN: "github.com/acme/widget", **overrides}
    return CircleCIConfig.model_validate({k: v for k, v in values.items() if v is not None})


def relationship(rid: str = "r1", issuer: str = ISSUER, **overrides) -> TrustRelationship:
    return TrustRelationship(id=rid, package="widget", provider="circleci", config=config(**overrides),
                             permissions=frozenset({"createStagedPackage"}), issuer=issuer)


# --- the claim table -----------------------------------------------------------------------------
def test_every_documented_circleci_claim_is_accounted_for():
    assert CIRCLECI_DOCUMENTED_CLAIMS - all_known_claims(PROVIDER) == set()


def test_every_claim_of_the_claims_model_is_accounted_for():
    names = {f.alias or n for n, f in CircleCIClaims.model_fields.items()}
    assert names - all_known_claims(PROVIDER) == set()


def test_a_claim_is_in_one_set_only():
    sets = [set(PROVIDER.required_claims), set(PROVIDER.optional_claims), set(PROVIDER.bound_claims),
            set(PROVIDER.unchecked_claims)]
    assert sum(map(len, sets)) == len(set().union(*sets))


def test_claims_outside_the_table_are_reported_by_name():
    token = claims(**{"oidc.circleci.com/brand-new": "x"})
    assert unknown_claims(PROVIDER, (token.model_extra or {}).keys()) == ["oidc.circleci.com/brand-new"]


def test_claims_are_read_by_their_names():
    token = claims()
    assert getattr(token, ORG_ID) == ORG and getattr(token, CONTEXT_IDS) == [CONTEXT_A]
    assert getattr(token, "oidc.circleci.com/job-id") == "j"  # an unchecked claim, kept as it came


@pytest.mark.parametrize("absent", [ORG_ID, PROJECT_ID, PIPELINE_DEFINITION_ID, VCS_ORIGIN])
def test_an_absent_required_claim_is_missing(absent):
    assert missing_required_claims(PROVIDER, claims(**{absent: None})) == [absent]


# --- the replay key ------------------------------------------------------------------------------
def test_a_token_without_jti_gets_one_from_its_claims():
    one, same, later = claims(), claims(), claims(iat=5)
    assert one.jti.startswith("claims-sha256:") and one.jti == same.jti and one.jti != later.jti


def test_another_job_of_the_same_second_has_another_replay_key():
    assert claims().jti != claims(**{"oidc.circleci.com/job-id": "k"}).jti


def test_a_null_context_list_is_no_context():
    assert CircleCIClaims.model_validate({**raw(), CONTEXT_IDS: None}).context_ids == []


def test_a_jti_the_token_carries_is_kept():
    assert claims(jti="given").jti == "given"


# --- the checks --------------------------------------------------------------------------------
@pytest.mark.parametrize("org,iss,refused", [
    (ORG, ISSUER, False), (ORG.upper(), ISSUER, False), (OTHER_ORG, ISSUER, True),
    (ORG, PREFIX + OTHER_ORG, True),  # the issuer is another organization's
    (OTHER_ORG, PREFIX + OTHER_ORG, True)])
def test_org_id_check(org, iss, refused):
    assert bool(check_org_id(config(), claims(**{ORG_ID: org, "iss": iss}))) is refused


@pytest.mark.parametrize("check,claim", [(check_project_id, PROJECT_ID),
                                         (check_pipeline_definition_id, PIPELINE_DEFINITION_ID)])
@pytest.mark.parametrize("value,refused", [
    (None, False), ("upper", False), ("9f6c8a8e-5d1f-4c4a-9a57-1c0f3e1d2a09", True), ("", True)])
def test_id_checks(check, claim, value, refused):
    expected = {PROJECT_ID: PROJECT, PIPELINE_DEFINITION_ID: DEFINITION}[claim]
    seen = expected if value is None else expected.upper() if value == "upper" else value
    assert bool(check(config(), claims(**{claim: seen}))) is refused


@pytest.mark.parametrize("origin,refused", [
    ("github.com/acme/widget", False), ("GitHub.com/ACME/Widget", False), ("github.com/evil/widget", True),
    ("github.com/acme/widget-fork", True), ("bitbucket.org/acme/widget", True), ("github.com/acme", True),
    ("", True)])
def test_vcs_origin_check(origin, refused):
    assert bool(check_vcs_origin(config(), claims(**{VCS_ORIGIN: origin}))) is refused


@pytest.mark.parametrize("configured,used,refused", [
    (None, [], False), (None, [CONTEXT_A], False), ([CONTEXT_A], [CONTEXT_A], False),
    ([CONTEXT_A], [CONTEXT_B, CONTEXT_A], False), ([CONTEXT_A], [CONTEXT_A.upper()], False),
    ([CONTEXT_A], [], True), ([CONTEXT_A], [CONTEXT_B], True),
    ([CONTEXT_A, CONTEXT_B], [CONTEXT_A], True),  # every context the relationship names, not any
    ([CONTEXT_A, CONTEXT_B], [CONTEXT_B, CONTEXT_A], False)])
def test_context_ids_check(configured, used, refused):
    assert bool(check_context_ids(config(**{CONTEXT_IDS: configured}), claims(**{CONTEXT_IDS: used}))) is refused


@pytest.mark.parametrize("rerun,refused", [(False, False), (True, True), (None, True), ("true", True)])
def test_ssh_rerun_check(rerun, refused):
    assert bool(check_ssh_rerun(config(), claims(**{SSH_RERUN: rerun}))) is refused


# --- matching ----------------------------------------------------------------------------------
def test_a_matching_job_is_granted():
    match = matching_relationships(PROVIDER, claims(), [relationship()])
    assert [r.id for r in match.granted] == ["r1"] and match.mismatches == []


def test_an_ssh_rerun_matches_no_relationship():
    match = matching_relationships(PROVIDER, claims(**{SSH_RERUN: True}), [relationship()])
    assert match.granted == [] and match.failed_claims == [SSH_RERUN]


def test_a_relationship_of_another_organization_is_never_met():
    # The token of OTHER_ORG with every other id equal: the relationship's issuer is ORG's.
    token = claims(iss=PREFIX + OTHER_ORG, **{ORG_ID: OTHER_ORG})
    match = matching_relationships(PROVIDER, token, [relationship()])
    assert match.granted == [] and match.mismatches == []


def test_origin_names_the_repository_and_pipeline_for_the_approver():
    origin = PROVIDER.origin(claims(**{"oidc.circleci.com/pipeline-id": "p-1"}))
    assert origin == {"provider": "circleci", "repository": "github.com/acme/widget", "ref": "refs/heads/main",
                      "workflow_ref": f"pipeline definition {DEFINITION}", "run_id": "p-1", "job_id": "j"}


# --- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {ORG_ID: "not-a-uuid"}, {PROJECT_ID: None}, {PIPELINE_DEFINITION_ID: ""}, {VCS_ORIGIN: "https://github.com/a/b"},
    {VCS_ORIGIN: "github.com/acme"}, {VCS_ORIGIN: None}, {CONTEXT_IDS: ["nope"]}, {CONTEXT_IDS: "3e9f"},
    {CONTEXT_IDS: [CONTEXT_A] * 11}, {"org_id": ORG}, {"extra": 1}])
def test_invalid_configurations_are_refused(change):
    values = {ORG_ID: ORG, PROJECT_ID: PROJECT, PIPELINE_DEFINITION_ID: DEFINITION, VCS_ORIGIN: "github.com/a/b"}
    values.update(change)
    with pytest.raises(InvalidConfig):
        PROVIDER.config_from_request({k: v for k, v in values.items() if v is not None})


@pytest.mark.parametrize("raw_config", [None, [], "x"])
def test_a_configuration_that_is_no_object_is_refused(raw_config):
    with pytest.raises(InvalidConfig):
        PROVIDER.config_from_request(raw_config)


def test_a_configuration_is_stored_by_claim_names_canonically_and_loads_back():
    stored = config_json(config(**{ORG_ID: ORG.upper(), CONTEXT_IDS: [CONTEXT_B, CONTEXT_A.upper(), CONTEXT_B]}))
    assert stored == (f'{{"{CONTEXT_IDS}":["{CONTEXT_A}","{CONTEXT_B}"],"{ORG_ID}":"{ORG}",'
                      f'"{PIPELINE_DEFINITION_ID}":"{DEFINITION}","{PROJECT_ID}":"{PROJECT}",'
                      f'"{VCS_ORIGIN}":"github.com/acme/widget"}}')
    loaded = CircleCIConfig.model_validate_json(stored)
    assert loaded.org_id == ORG and loaded.context_ids == [CONTEXT_A, CONTEXT_B]
    assert set(config_document(loaded)) == {ORG_ID, PROJECT_ID, PIPELINE_DEFINITION_ID, VCS_ORIGIN, CONTEXT_IDS}


def test_no_contexts_store_like_none():
    assert config_json(config(**{CONTEXT_IDS: []})) == config_json(config())
