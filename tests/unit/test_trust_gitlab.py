"""The GitLab claim table and its checks, one row per case: (configuration, claims) → refused or not."""

from __future__ import annotations

import pytest

from broker.domain.gitlab import (GitLabClaims, GitLabConfig, GitLabProvider, check_ci_config_ref_uri,
                                  check_environment, check_project_path)
from broker.domain.trust import (InvalidConfig, TrustRelationship, all_known_claims, config_document, config_json,
                                 matching_relationships, missing_required_claims, unknown_claims)

PROVIDER = GitLabProvider()
ISSUER = "https://gitlab.com"

# Every claim GitLab documents for CI/CD ID tokens ("OpenID Connect (OIDC) Authentication Using ID
# Tokens": the standard claims and the custom ones), including the job_* claims of fork pipelines.
GITLAB_DOCUMENTED_CLAIMS = {
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "namespace_id", "namespace_path", "project_id", "project_path",
    "user_id", "user_login", "user_email", "user_access_level", "user_identities", "groups_direct", "pipeline_id",
    "pipeline_source", "job_id", "ref", "ref_type", "ref_path", "ref_protected", "environment",
    "environment_protected", "deployment_tier", "environment_action", "runner_id", "runner_environment", "sha",
    "ci_config_ref_uri", "ci_config_sha", "project_visibility", "job_project_id", "job_project_path",
    "job_namespace_id", "job_namespace_path"}


def claims(**overrides) -> GitLabClaims:
    project = overrides.get("project_path", "acme/tools/widget")
    values = {"iss": ISSUER, "jti": "j-1", "exp": 2, "iat": 1,
              "sub": f"project_path:{project}:ref_type:branch:ref:main", "project_path": project, "project_id": "4004", "namespace_id": "3003",
              "ci_config_ref_uri": f"gitlab.com/{project}//.gitlab-ci.yml@refs/heads/main",
              "runner_environment": "gitlab-hosted"}
    return GitLabClaims.model_validate({**values, **overrides})


def config(**overrides) -> GitLabConfig:
    return GitLabConfig.model_validate({"project_path": "acme/tools/widget",
                                        "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}, **overrides})


def relationship(bound: dict | None = None, rid: str = "r1", **overrides) -> TrustRelationship:
    return TrustRelationship(id=rid, package="widget", issuer=ISSUER, provider="gitlab", config=config(**overrides),
                             permissions=frozenset({"createStagedPackage"}), bound=bound or {})


# --- the claim table -----------------------------------------------------------------------------
def test_every_documented_gitlab_claim_is_accounted_for():
    assert GITLAB_DOCUMENTED_CLAIMS - all_known_claims(PROVIDER) == set()


def test_every_claim_of_the_claims_model_is_accounted_for():
    assert set(GitLabClaims.model_fields) - all_known_claims(PROVIDER) == set()


def test_a_claim_is_in_one_set_only():
    sets = [set(PROVIDER.required_claims), set(PROVIDER.optional_claims), set(PROVIDER.bound_claims),
            set(PROVIDER.unchecked_claims)]
    assert sum(map(len, sets)) == len(set().union(*sets))


def test_checks_read_claims_the_model_parses():
    assert set(PROVIDER.required_claims) | set(PROVIDER.optional_claims) <= set(GitLabClaims.model_fields)


def test_claims_outside_the_table_are_reported_by_name():
    token = claims(user_access_level="maintainer", brand_new_claim="x")
    assert unknown_claims(PROVIDER, (token.model_extra or {}).keys()) == ["brand_new_claim"]


@pytest.mark.parametrize("empty", ["project_path", "ci_config_ref_uri", "project_id", "namespace_id"])
def test_an_empty_required_or_bound_claim_is_missing(empty):
    assert missing_required_claims(PROVIDER, claims(**{empty: ""})) == [empty]


def test_a_pipeline_file_outside_the_repository_is_a_missing_claim():
    # GitLab leaves ci_config_ref_uri null when the pipeline definition is not in the project.
    assert missing_required_claims(PROVIDER, claims(ci_config_ref_uri=None)) == ["ci_config_ref_uri"]


# --- the checks --------------------------------------------------------------------------------
@pytest.mark.parametrize("project_path,refused", [
    ("acme/tools/widget", False), ("ACME/Tools/Widget", False), ("acme/widget", True), ("acme/tools", True),
    ("evil/tools/widget", True), ("acme/tools/widget-fork", True), ("acme/tools/widget/sub", True)])
def test_project_path_check(project_path, refused):
    assert bool(check_project_path(config(), claims(project_path=project_path))) is refused


@pytest.mark.parametrize("uri,refused", [
    ("gitlab.com/acme/tools/widget//.gitlab-ci.yml@refs/heads/main", False),
    ("gitlab.com/acme/tools/widget//.gitlab-ci.yml@refs/tags/v1.0.0", False),
    ("GitLab.com/ACME/tools/widget//.gitlab-ci.yml@refs/heads/main", False),  # hosts and paths ignore case
    ("gitlab.com/acme/tools/widget//release.yml@refs/heads/main", True),  # another pipeline file
    ("gitlab.com/acme/tools/widget//.GitLab-ci.yml@refs/heads/main", True),  # file names keep their case
    ("gitlab.com/acme/tools/widget//ci/.gitlab-ci.yml@refs/heads/main", True),  # a subdirectory
    ("gitlab.com/acme/tools/widget//.gitlab-ci.yml@main", True),  # not how GitLab writes the ref
    ("gitlab.com/acme/tools/widget//.gitlab-ci.yml", True),  # no ref
    ("gitlab.com/acme/tools/widget/.gitlab-ci.yml@refs/heads/main", True),  # no `//`
    ("gitlab.com/evil/widget//.gitlab-ci.yml@refs/heads/main", True),  # another project's pipeline file
    ("gitlab.com/acme/tools//widget//.gitlab-ci.yml@refs/heads/main", True),  # the project part ends at the first //
    ("gitlab.com/acme/tools/widget-evil//.gitlab-ci.yml@refs/heads/main", True),
    ("gitlab.example.com/acme/tools/widget//.gitlab-ci.yml@refs/heads/main", True),  # another instance
    ("acme/tools/widget//.gitlab-ci.yml@refs/heads/main", True),  # no host
    ("gitlab.com/acme/tools/widget//.gitlab-ci.yml@x.yml@refs/heads/main", True),
])
def test_ci_config_ref_uri_check(uri, refused):
    assert bool(check_ci_config_ref_uri(config(), claims(ci_config_ref_uri=uri))) is refused


def test_another_projects_pipeline_file_is_explained_as_such():
    reason = check_ci_config_ref_uri(config(), claims(ci_config_ref_uri="gitlab.com/evil/x//.gitlab-ci.yml@refs/x"))
    assert "another project" in reason


@pytest.mark.parametrize("issuer,host,refused", [
    ("https://gitlab.example.com:8443", "gitlab.example.com", False),
    ("https://gitlab.example.com:8443", "gitlab.example.com:8443", False),
    ("https://gitlab.example.com:8443", "gitlab.com", True)])
def test_a_self_managed_instance_writes_its_own_host(issuer, host, refused):
    token = claims(iss=issuer, ci_config_ref_uri=f"{host}/acme/tools/widget//.gitlab-ci.yml@refs/heads/main")
    assert bool(check_ci_config_ref_uri(config(), token)) is refused


@pytest.mark.parametrize("configured,presented,refused", [
    (None, None, False), (None, "anything", False), ("production", "production", False),
    ("production", "Production", True), ("production", None, True), ("production", "", True),
    ("production", "staging", True)])
def test_environment_check(configured, presented, refused):
    reason = check_environment(config(environment=configured), claims(environment=presented))
    assert bool(reason) is refused


# --- matching ----------------------------------------------------------------------------------
def test_an_unbound_relationship_matches_any_project_id():
    match = matching_relationships(PROVIDER, claims(project_id="5"), [relationship()])
    assert [r.id for r in match.granted] == ["r1"] and match.mismatches == []


@pytest.mark.parametrize("claim,value,refused", [
    ("project_id", "4004", False), ("project_id", "99999", True), ("namespace_id", "3003", False),
    ("namespace_id", "1", True)])
def test_a_bound_relationship_matches_only_its_pinned_ids(claim, value, refused):
    bound = relationship(bound={"project_id": "4004", "namespace_id": "3003"})
    match = matching_relationships(PROVIDER, claims(**{claim: value}), [bound])
    assert (not match.granted) is refused
    if refused:
        (mismatch,) = match.mismatches
        assert (mismatch.claim, mismatch.presented) == (claim, value)


def test_github_relationships_are_skipped_for_a_gitlab_token():
    other = TrustRelationship(id="g", package="widget", issuer=ISSUER, provider="github", config=config(),
                              permissions=frozenset({"createPackage"}))
    match = matching_relationships(PROVIDER, claims(), [other])
    assert match.granted == [] and match.mismatches == []


def test_origin_names_the_project_and_pipeline_for_the_approver():
    origin = PROVIDER.origin(claims(pipeline_id="88", ref_path="refs/heads/main", user_login="dev"))
    assert origin["repository"] == "acme/tools/widget" and origin["run_id"] == "88"
    assert origin["workflow_ref"].endswith("//.gitlab-ci.yml@refs/heads/main") and origin["provider"] == "gitlab"


# --- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    None, {}, {"project_path": "acme/widget"}, {"project_path": "acme", "ci_config_ref_uri": {"file": "a.yml"}},
    {"project_path": "acme/widget", "ci_config_ref_uri": {"file": "ci/.gitlab-ci.yml"}},
    {"project_path": "acme/widget", "ci_config_ref_uri": {"file": ".gitlab-ci.yml@x.yml"}},
    {"project_path": "acme/widget", "ci_config_ref_uri": {"file": ".gitlab-ci"}},
    {"project_path": "acme//widget", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}},
    {"project_path": "acme/widget", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}, "environment": ""},
    {"project_path": "acme/widget", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}, "extra": 1}])
def test_invalid_configurations_are_refused(raw):
    with pytest.raises(InvalidConfig):
        PROVIDER.config_from_request(raw)


def test_a_configuration_is_stored_canonically_and_loads_back_into_its_model():
    stored = config_json(config(environment="prod"))
    assert stored == ('{"ci_config_ref_uri":{"file":".gitlab-ci.yml"},"environment":"prod",'
                      '"project_path":"acme/tools/widget"}')
    loaded = GitLabConfig.model_validate_json(stored)
    assert loaded.ci_config_ref_uri.file == ".gitlab-ci.yml"
    assert list(config_document(loaded)) == ["ci_config_ref_uri", "environment", "project_path"]
