"""The GitHub claim table and its checks, one row per case: (configuration, claims) → refused or not."""

from __future__ import annotations

import pytest

from broker.domain.github import (GitHubClaims, GitHubConfig, GitHubProvider, check_environment, check_repository,
                                  check_workflow_ref)
from broker.domain.trust import (InvalidConfig, TrustRelationship, all_known_claims, config_document, config_json,
                                 matching_relationships, missing_required_claims, unknown_claims)

ISSUER = "https://token.actions.githubusercontent.com"
PROVIDER = GitHubProvider()

# Every claim of GitHub's example token and claims list ("About security hardening with OpenID Connect").
GITHUB_DOCUMENTED_CLAIMS = {
    "actor", "actor_id", "aud", "base_ref", "check_run_id", "enterprise", "enterprise_id", "environment",
    "event_name", "exp", "head_ref", "iat", "iss", "job_workflow_ref", "job_workflow_sha", "jti", "nbf", "ref",
    "ref_protected", "ref_type", "repository", "repository_id", "repository_owner", "repository_owner_id",
    "repository_visibility", "run_attempt", "run_id", "run_number", "runner_environment", "sha", "sub",
    "workflow", "workflow_ref", "workflow_sha"}


def claims(**overrides) -> GitHubClaims:
    repository = overrides.get("repository", "acme/widget")
    values = {"iss": ISSUER, "jti": "j-1", "exp": 2, "iat": 1,
              "sub": f"repo:{repository}:ref:refs/heads/main", "repository": repository, "repository_id": "1001",
              "repository_owner": "acme", "repository_owner_id": "2002",
              "workflow_ref": f"{repository}/.github/workflows/release.yml@refs/heads/main"}
    return GitHubClaims.model_validate({**values, **overrides})


def config(**overrides) -> GitHubConfig:
    return GitHubConfig.model_validate({"repository": "acme/widget", "workflow_ref": {"file": "release.yml"},
                                        **overrides})


def relationship(bound: dict | None = None, rid: str = "r1", **overrides) -> TrustRelationship:
    return TrustRelationship(id=rid, package="widget", issuer=ISSUER, provider="github", config=config(**overrides),
                             permissions=frozenset({"createStagedPackage"}), bound=bound or {})


# --- the claim table -----------------------------------------------------------------------------
def test_every_documented_github_claim_is_accounted_for():
    assert GITHUB_DOCUMENTED_CLAIMS - all_known_claims(PROVIDER) == set()


def test_every_claim_of_the_claims_model_is_accounted_for():
    assert set(GitHubClaims.model_fields) - all_known_claims(PROVIDER) == set()


def test_a_claim_is_in_one_set_only():
    sets = [set(PROVIDER.required_claims), set(PROVIDER.optional_claims), set(PROVIDER.bound_claims),
            set(PROVIDER.unchecked_claims)]
    assert sum(map(len, sets)) == len(set().union(*sets))


def test_checks_read_claims_the_model_parses():
    assert set(PROVIDER.required_claims) | set(PROVIDER.optional_claims) <= set(GitHubClaims.model_fields)


def test_claims_outside_the_table_are_reported_by_name():
    token = claims(run_number="3", brand_new_claim="x")
    assert unknown_claims(PROVIDER, (token.model_extra or {}).keys()) == ["brand_new_claim"]


@pytest.mark.parametrize("empty", ["repository", "workflow_ref", "repository_id", "repository_owner_id"])
def test_an_empty_required_or_bound_claim_is_missing(empty):
    assert missing_required_claims(PROVIDER, claims(**{empty: ""})) == [empty]


def test_a_complete_token_misses_nothing():
    assert missing_required_claims(PROVIDER, claims()) == []


# --- the checks --------------------------------------------------------------------------------
@pytest.mark.parametrize("repository,refused", [
    ("acme/widget", False), ("ACME/Widget", False), ("acme/other", True), ("evil/widget", True),
    ("acme/widget-fork", True)])
def test_repository_check(repository, refused):
    assert bool(check_repository(config(), claims(repository=repository))) is refused


@pytest.mark.parametrize("workflow_ref,refused", [
    ("acme/widget/.github/workflows/release.yml@refs/heads/main", False),
    ("acme/widget/.github/workflows/release.yml@refs/tags/v1.0.0", False),
    ("acme/widget/.github/workflows/release.yml@refs/pull/7/merge", False),
    ("ACME/widget/.github/workflows/release.yml@refs/heads/main", False),  # owner names ignore case
    ("acme/widget/.github/workflows/evil.yml@refs/heads/main", True),
    ("acme/widget/.github/workflows/Release.yml@refs/heads/main", True),  # file names do not
    ("acme/widget/.github/workflows/release.yml@x.yml@refs/heads/main", True),  # a file named release.yml@x.yml
    ("acme/widget/.github/workflows/sub/release.yml@refs/heads/main", True),  # a subdirectory
    ("acme/widget/.github/workflows/release.yml", True),  # no ref
    ("acme/widget/.github/workflows/release.yml@main", True),  # not how GitHub writes the ref
    ("acme/widget/.github/workflows/release.yaml@refs/heads/main", True),
    ("acme/widget/release.yml@refs/heads/main", True),
    ("evil/fork/.github/workflows/release.yml@refs/heads/main", True),  # another repository's workflow
    ("acme/widget-evil/.github/workflows/release.yml@refs/heads/main", True),
    ("acme/widget/.github/workflows/release.yml@refs/heads/main/../x", False),  # the ref is the job's business
])
def test_workflow_ref_check(workflow_ref, refused):
    assert bool(check_workflow_ref(config(), claims(workflow_ref=workflow_ref))) is refused


def test_a_foreign_workflow_is_explained_as_another_repository():
    reason = check_workflow_ref(config(), claims(workflow_ref="evil/fork/.github/workflows/release.yml@refs/x"))
    assert "another repository" in reason


@pytest.mark.parametrize("configured,presented,refused", [
    (None, None, False), (None, "anything", False), ("production", "production", False),
    ("production", "Production", False), ("production", None, True), ("production", "", True),
    ("production", "staging", True)])
def test_environment_check(configured, presented, refused):
    reason = check_environment(config(environment=configured), claims(environment=presented))
    assert bool(reason) is refused


# --- matching ----------------------------------------------------------------------------------
def test_an_unbound_relationship_matches_any_repository_id():
    match = matching_relationships(PROVIDER, claims(repository_id="5"), [relationship()])
    assert [r.id for r in match.granted] == ["r1"] and match.mismatches == []


@pytest.mark.parametrize("claim,value,refused", [
    ("repository_id", "1001", False), ("repository_id", "99999", True), ("repository_owner_id", "2002", False),
    ("repository_owner_id", "1", True)])
def test_a_bound_relationship_matches_only_its_pinned_ids(claim, value, refused):
    bound = relationship(bound={"repository_id": "1001", "repository_owner_id": "2002"})
    match = matching_relationships(PROVIDER, claims(**{claim: value}), [bound])
    assert (not match.granted) is refused
    if refused:
        (mismatch,) = match.mismatches
        assert (mismatch.claim, mismatch.presented) == (claim, value)


def test_a_mismatch_names_the_claim_and_what_was_presented_and_explains_to_owners():
    token = claims(repository="acme/other", workflow_ref="acme/other/.github/workflows/x.yml@refs/heads/main")
    (first, second) = matching_relationships(PROVIDER, token, [relationship()]).mismatches
    assert (first.relationship, first.claim, first.presented) == ("r1", "repository", "acme/other")
    assert "'acme/widget'" in first.detail  # the expectation is in the owner-only detail
    assert (second.claim, second.presented) == ("workflow_ref", token.workflow_ref)
    assert "'release.yml'" in second.detail


def test_failed_claims_name_each_check_once_across_relationships():
    relationships = [relationship(rid="r1"), relationship(rid="r2", environment="prod")]
    token = claims(repository="acme/other", workflow_ref="acme/other/.github/workflows/x.yml@refs/heads/main")
    match = matching_relationships(PROVIDER, token, relationships)
    assert len(match.mismatches) == 5
    assert match.failed_claims == ["repository", "workflow_ref", "environment"]


def test_permissions_of_every_matching_relationship_are_joined():
    publish = TrustRelationship(id="r2", package="widget", issuer=ISSUER, provider="github", config=config(),
                                permissions=frozenset({"createPackage"}))
    match = matching_relationships(PROVIDER, claims(), [relationship(), publish])
    assert match.permissions == {"createPackage", "createStagedPackage"}


def test_relationships_of_another_provider_are_skipped():
    other = TrustRelationship(id="g", package="widget", issuer=ISSUER, provider="gitlab", config=config(),
                              permissions=frozenset({"createPackage"}))
    match = matching_relationships(PROVIDER, claims(), [other])
    assert match.granted == [] and match.mismatches == []


# --- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    None, {}, {"repository": "acme/widget"}, {"repository": "acme", "workflow_ref": {"file": "release.yml"}},
    {"repository": "acme/widget", "workflow_ref": {"file": "sub/release.yml"}},
    {"repository": "acme/widget", "workflow_ref": {"file": "release.yml@x.yml"}},
    {"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}, "environment": ""},
    {"repository": "acme/widget", "workflow_ref": {"file": "release.yml"}, "extra": 1}])
def test_invalid_configurations_are_refused(raw):
    with pytest.raises(InvalidConfig):
        PROVIDER.config_from_request(raw)


def test_a_configuration_is_stored_canonically_and_loads_back_into_its_model():
    stored = config_json(config(environment="prod"))
    assert stored == ('{"environment":"prod","repository":"acme/widget","workflow_ref":{"file":"release.yml"}}')
    loaded = GitHubConfig.model_validate_json(stored)
    assert loaded.workflow_ref.file == "release.yml"
    assert list(config_document(loaded)) == ["environment", "repository", "workflow_ref"]
