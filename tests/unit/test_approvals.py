"""Approval policy rules: the bounds of the policy, who counts as an approver, stage lifetimes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broker.domain.approvals import (PolicyChange, StageAuthor, Tally, duration_seconds, expired, may_approve,
                                     policy_fits_owners)
from broker.domain.credentials import Allowed, Refused


@pytest.mark.parametrize("raw, valid", [(1, True), (10, True), (0, False), (11, False), ("2", False),
                                        (2.0, False), (True, False), (None, False)])
def test_required_approvals_is_an_integer_from_1_to_10(raw, valid):
    if valid:
        assert PolicyChange.model_validate({"requiredApprovals": raw}).required_approvals == raw
    else:
        with pytest.raises(ValidationError):
            PolicyChange.model_validate({"requiredApprovals": raw})


def test_a_policy_body_with_other_keys_is_refused():
    with pytest.raises(ValidationError):
        PolicyChange.model_validate({"requiredApprovals": 2, "required_approvals": 1})


@pytest.mark.parametrize("required, owners, fits", [(1, 1, True), (2, 2, True), (3, 2, False), (2, 1, False)])
def test_a_policy_needs_that_many_maintainers(required, owners, fits):
    decision = policy_fits_owners(required, owners)
    assert isinstance(decision, Allowed) == fits
    if not fits:
        assert decision.code == "policy.unmeetable" and "npm owner add" in decision.reason


@pytest.mark.parametrize("reviewer, author, required, allowed", [
    ("alice", StageAuthor("alice", "user"), 1, True),  # npm's flow: stage, then approve with 2FA
    ("alice", StageAuthor("alice", "user"), 2, False),  # staged with her own session
    ("alice", StageAuthor("alice", "token"), 2, False),  # with a granular token of her account: still her
    ("bob", StageAuthor("alice", "user"), 2, True),
    ("alice", StageAuthor("acme/widget", "trust"), 2, True),  # a CI job has no maintainer as author
    ("acme/widget", StageAuthor("acme/widget", "trust"), 3, True),
])
def test_the_stager_does_not_count_among_the_approvers_from_two_approvals_on(reviewer, author, required, allowed):
    decision = may_approve(reviewer, author, required)
    assert isinstance(decision, Allowed) == allowed
    if not allowed:
        assert isinstance(decision, Refused) and decision.code == "stage.own-approval"


def test_a_tally_completes_at_the_required_count():
    assert not Tally(("alice",), 2, repeated=False).complete
    assert Tally(("alice",), 2, repeated=False).missing == 1
    assert Tally(("alice", "bob"), 2, repeated=False).complete
    assert Tally(("alice", "bob"), 1, repeated=True).complete  # a lowered policy completes on the next approve


@pytest.mark.parametrize("raw, seconds", [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("3600s", 3600),
                                          ("2w", 14 * 86400), ("45", 45), (45, 45), (" 7D ", 7 * 86400)])
def test_a_stage_lifetime_is_seconds_or_a_duration(raw, seconds):
    assert duration_seconds(raw) == seconds


@pytest.mark.parametrize("raw", ["", "0", "30x", "-5", "1.5d", "d", "11000d", "30 days"])
def test_a_stage_lifetime_out_of_range_or_unreadable_is_refused(raw):
    with pytest.raises(ValueError):
        duration_seconds(raw)


def test_a_stage_expires_at_its_lifetime():
    assert not expired(1000.0, 60, 1059.9)
    assert expired(1000.0, 60, 1060.0)
