"""An admin's constraints (ref globs, protected refs, the called reusable workflow) sent as extra claims
of `POST /-/package/<name>/trust`: stored, shown by the stock `npm trust list`, checked at the exchange.
The rules have table tests in tests/unit/test_constraints.py."""

from __future__ import annotations

import json
import re

from tests.e2e.test_oidc_security import exchange, trusted
from tests.support.trust import github_relationship

SHARED = "acme/shared/.github/workflows/publish.yml"
CONSTRAINED = github_relationship(ref="refs/tags/v*", ref_protected=True, job_workflow_ref=f"{SHARED}@refs/tags/*")
RELEASE = {"ref": "refs/tags/v1.2.0", "ref_protected": "true", "job_workflow_ref": f"{SHARED}@refs/tags/v3"}


def test_constraints_are_stored_and_the_stock_cli_lists_the_relationship(accounts):
    account, name = trusted(accounts, CONSTRAINED)
    [wire] = account.http("GET", f"-/package/{name}/trust").json()
    assert wire["claims"] == dict(sorted(CONSTRAINED["claims"].items()))
    listed = account.npm("trust", "list", name)
    assert listed.returncode == 0, listed
    assert "acme/widget" in listed.output and "release.yml" in listed.output
    as_json = account.npm("trust", "list", name, "--json")
    assert as_json.returncode == 0, as_json
    [printed] = [json.loads(chunk) for chunk in re.findall(r"\{.*?\n\}", as_json.stdout, re.S)]
    assert printed["repository"] == "acme/widget" and printed["file"] == "release.yml"


def test_the_exchange_checks_each_constraint_by_its_claim(accounts, issuer, broker):
    _, name = trusted(accounts, CONSTRAINED)
    for wrong, claim in (({"ref": "refs/heads/main"}, "ref"), ({"ref_protected": "false"}, "ref_protected"),
                         ({"job_workflow_ref": f"{SHARED}@refs/heads/main"}, "job_workflow_ref")):
        refused = exchange(broker.url, name, issuer.token(**{**RELEASE, **wrong}))
        assert refused.status_code == 403 and refused.json()["code"] == "oidc.no-match", refused.text
        assert f"the {claim} check failed" in refused.json()["error"]
        assert "refs/tags/*" not in refused.json()["error"]  # what is expected stays with the owners
    assert exchange(broker.url, name, issuer.token(**RELEASE)).status_code == 201


def test_an_invalid_constraint_is_refused_with_its_reason(accounts):
    account, name = trusted(accounts)
    for claims, words in (({"ref": "refs/heads/[a-z]*"}, "claims.ref"), ({"ref_protected": False}, "only be true"),
                          ({"job_workflow_ref": "acme/shared/publish.yml"}, "claims.job_workflow_ref")):
        response = account.http("POST", f"-/package/{name}/trust", json=[github_relationship(**claims)])
        assert response.status_code == 400 and words in response.json()["error"], response.text
