"""An admin's constraints on a relationship (ref globs, protected refs, the called reusable workflow):
validation, glob matching, and each check as a table of (constraints, claims) → the claim that failed."""

from __future__ import annotations

import time

import pytest

from broker.domain.constraints import (Constraints, InvalidConstraint, failures, glob_matches, split)
from broker.domain.github import GitHubClaims, GitHubProvider
from broker.domain.gitlab import GitLabClaims, GitLabProvider
from broker.domain.trust import (InvalidConfig, TrustRelationship, claims_document, claims_json, config_from_request,
                                 matching_relationships, stored_config)

REPO = "acme/widget"


def github(**overrides) -> GitHubClaims:
    values = {"iss": "https://token.actions.githubusercontent.com", "jti": "j-1", "exp": 2, "iat": 1,
              "sub": "repo:acme/widget:ref:refs/heads/main", "repository": REPO, "repository_id": "1001",
              "repository_owner": "acme", "repository_owner_id": "2002", "ref": "refs/heads/main",
              "ref_protected": "true",
              "workflow_ref": f"{REPO}/.github/workflows/release.yml@refs/heads/main",
              "job_workflow_ref": "acme/shared/.github/workflows/publish.yml@refs/tags/v1.2.0"}
    return GitHubClaims.model_validate({k: v for k, v in {**values, **overrides}.items() if v is not None})


def gitlab(**overrides) -> GitLabClaims:
    values = {"iss": "https://gitlab.com", "jti": "j-1", "exp": 2, "iat": 1, "sub": "project_path:acme/widget",
              "project_path": REPO, "project_id": "4004", "namespace_id": "3003", "ref": "main",
              "ref_path": "refs/heads/main", "ref_protected": "true",
              "ci_config_ref_uri": "gitlab.com/acme/widget//.gitlab-ci.yml@refs/heads/main"}
    return GitLabClaims.model_validate({k: v for k, v in {**values, **overrides}.items() if v is not None})


# --- globs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern, text, matches", [
    ("refs/tags/v*", "refs/tags/v1.2.0", True),
    ("refs/tags/v*", "refs/tags/v", True),
    ("refs/tags/v*", "refs/tags/release-1", False),
    ("refs/tags/v*", "refs/tags/v1/evil", False),  # * never crosses a /
    ("refs/heads/main", "refs/heads/main", True),
    ("refs/heads/main", "refs/heads/main2", False),
    ("refs/heads/main", "refs/heads/mai", False),
    ("refs/heads/release-*-lts", "refs/heads/release-4-lts", True),
    ("refs/heads/release-*-lts", "refs/heads/release-4-lts-x", False),
    ("refs/heads/*", "refs/heads/feature/x", False),
    ("refs/*/main", "refs/heads/main", True),
    ("refs/heads/*a*b", "refs/heads/xaxxb", True),
    ("refs/heads/*a*b", "refs/heads/xaxxbc", False),
    ("refs/tags/v*", "REFS/TAGS/V1", False),  # refs are case-sensitive
])
def test_glob_matches(pattern, text, matches):
    assert glob_matches(pattern, text) is matches


def test_a_glob_of_many_stars_against_a_long_ref_takes_no_time():
    pattern, text = "refs/heads/" + "*a" * 100, "refs/heads/" + "a" * 1000 + "b"
    started = time.perf_counter()
    assert glob_matches(pattern, text) is False
    assert time.perf_counter() - started < 0.5


# --- validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, error", [
    ({"ref": "refs/tags/v*"}, None),
    ({"ref": ["refs/tags/v*", "refs/heads/main"]}, None),
    ({"ref_protected": True}, None),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml"}, None),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml@refs/tags/v*"}, None),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml@" + "a" * 40}, None),
    ({"ref": "main"}, "not a full ref name"),
    ({"ref": "refs/heads/[ab]"}, "may only hold"),
    ({"ref": "refs/heads/a?"}, "may only hold"),
    ({"ref": "refs//main"}, "not a full ref name"),
    ({"ref": "refs/heads/../x"}, "not a full ref name"),
    ({"ref": "refs/" + "a" * 300}, "1 to 255"),
    ({"ref": []}, "at least 1"),
    ({"ref": ["refs/heads/x"] * 11}, "at most 10"),
    ({"ref": 5}, "claims.ref"),
    ({"ref_protected": False}, "can only be true"),
    ({"ref_protected": "yes"}, "claims.ref_protected"),
    ({"job_workflow_ref": "acme/shared/publish.yml"}, "is not owner/repo/.github/workflows"),
    ({"job_workflow_ref": "acme/shared/.github/workflows/sub/publish.yml"}, "is not owner/repo"),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml@main"}, "not a full ref name"),
])
def test_constraints_are_validated(raw, error):
    if error is None:
        assert split("github", {"repository": REPO, **raw})[1] is not None
    else:
        with pytest.raises(InvalidConstraint, match=error.replace("[", r"\[").replace("?", r"\?")):
            split("github", {"repository": REPO, **raw})


def test_only_github_names_a_reusable_workflow():
    with pytest.raises(InvalidConstraint, match="only GitHub"):
        split("gitlab", {"job_workflow_ref": "acme/shared/.github/workflows/publish.yml"})


@pytest.mark.parametrize("raw", [{"ref": "refs/heads/main"}, {"ref_protected": True}])
def test_a_provider_whose_tokens_name_no_ref_cannot_constrain_it(raw):
    with pytest.raises(InvalidConstraint, match="name no ref"):
        split("circleci", raw)


def test_constraints_round_trip_through_storage_and_show_next_to_the_clis_keys():
    provider = GitHubProvider()
    raw = {"repository": REPO, "workflow_ref": {"file": "release.yml"}, "ref": "refs/tags/v*", "ref_protected": True}
    config, constraints = config_from_request(provider, raw)
    assert claims_document(config, constraints) == dict(sorted(raw.items()))
    assert stored_config(provider, claims_json(config, constraints)) == (config, constraints)
    with pytest.raises(InvalidConfig, match="claims.ref"):
        config_from_request(provider, {**raw, "ref": "tags/v1"})


# --- the checks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("constraints, claims, failed", [
    ({"ref": "refs/tags/v*"}, github(ref="refs/tags/v1.0.0"), []),
    ({"ref": "refs/tags/v*"}, github(), ["ref"]),
    ({"ref": "refs/tags/v*"}, github(ref=None), ["ref"]),
    ({"ref": ["refs/tags/v*", "refs/heads/main"]}, github(), []),
    ({"ref": "refs/heads/main"}, gitlab(), []),  # GitLab's full ref is ref_path
    ({"ref": "refs/tags/v*"}, gitlab(), ["ref_path"]),
    ({"ref": "refs/heads/main"}, gitlab(ref_path=None), ["ref_path"]),
    ({"ref_protected": True}, github(), []),
    ({"ref_protected": True}, github(ref_protected="false"), ["ref_protected"]),
    ({"ref_protected": True}, github(ref_protected=None), ["ref_protected"]),
    ({"ref_protected": True}, gitlab(ref_protected="false"), ["ref_protected"]),
    ({"ref_protected": True}, gitlab(), []),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml"}, github(), []),
    ({"job_workflow_ref": "ACME/Shared/.github/workflows/publish.yml"}, github(), []),  # names are case-insensitive
    ({"job_workflow_ref": "acme/shared/.github/workflows/Publish.yml"}, github(), ["job_workflow_ref"]),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml@refs/tags/v*"}, github(), []),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml@refs/heads/main"}, github(), ["job_workflow_ref"]),
    ({"job_workflow_ref": "acme/other/.github/workflows/publish.yml"}, github(), ["job_workflow_ref"]),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml"}, github(job_workflow_ref=None),
     ["job_workflow_ref"]),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml"},
     github(job_workflow_ref="acme/shared/.github/workflows/publish.yml"), ["job_workflow_ref"]),  # no @ref
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml@" + "a" * 40},
     github(job_workflow_ref="acme/shared/.github/workflows/publish.yml@" + "a" * 40), []),
    ({"job_workflow_ref": "acme/shared/.github/workflows/publish.yml@" + "a" * 40}, github(), ["job_workflow_ref"]),
    ({"ref": "refs/tags/v*", "ref_protected": True}, github(ref_protected="false"), ["ref", "ref_protected"]),
])
def test_constraint_checks(constraints, claims, failed):
    provider = "github" if isinstance(claims, GitHubClaims) else "gitlab"
    assert [claim for claim, _ in failures(provider, Constraints.model_validate(constraints), claims)] == failed


def test_a_failed_constraint_is_a_mismatch_naming_its_claim_with_the_expectation_for_owners():
    provider = GitHubProvider()
    config, constraints = config_from_request(provider, {"repository": REPO, "workflow_ref": {"file": "release.yml"},
                                                         "ref": "refs/tags/v*"})
    relationship = TrustRelationship("r1", "widget", "github", config, frozenset({"createStagedPackage"}),
                                     issuer="https://token.actions.githubusercontent.com", constraints=constraints)
    match = matching_relationships(provider, github(), [relationship])
    assert not match.granted and match.failed_claims == ["ref"]
    [mismatch] = match.mismatches
    assert mismatch.presented == "refs/heads/main" and "refs/tags/v*" in mismatch.detail
    assert matching_relationships(provider, github(ref="refs/tags/v2"), [relationship]).granted == [relationship]


def test_gitlab_relationships_take_ref_constraints():
    provider = GitLabProvider()
    config, constraints = config_from_request(provider, {"project_path": REPO, "ci_config_ref_uri": {
        "file": ".gitlab-ci.yml"}, "ref": "refs/heads/main", "ref_protected": True})
    relationship = TrustRelationship("r1", "widget", "gitlab", config, frozenset({"createStagedPackage"}),
                                     issuer="https://gitlab.com", constraints=constraints)
    assert matching_relationships(provider, gitlab(), [relationship]).granted == [relationship]
    assert matching_relationships(provider, gitlab(ref_protected="false"), [relationship]).failed_claims == \
        ["ref_protected"]
