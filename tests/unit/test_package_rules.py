"""Package, account and body rules that the api layer asks: plain functions, no HTTP or SQL."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from broker.domain.accounts import new_account_problem
from broker.domain.packages import access_change, initial_access, next_latest
from broker.domain.validation import describe, first_error


@pytest.mark.parametrize("requested,scoped,expected", [
    (None, False, "public"), (None, True, "restricted"),
    ("public", True, "public"), ("restricted", True, "restricted"), ("public", False, "public"),
])
def test_initial_access_is_restricted_only_for_scoped_packages_without_access(requested, scoped, expected):
    assert initial_access(requested, scoped) == expected


@pytest.mark.parametrize("published,expected", [
    (["1.0.0", "1.2.0", "1.10.0"], "1.10.0"),
    (["1.0.0", "2.0.0-beta.1"], "1.0.0"),
    (["2.0.0-beta.1", "2.0.0-beta.2"], "2.0.0-beta.2"),
    ([], None),
])
def test_next_latest_prefers_the_highest_stable_version(published, expected):
    assert next_latest(published) == expected


@pytest.mark.parametrize("current,requested,expected", [
    ("restricted", "public", "public"), ("public", "restricted", "restricted"),
    ("restricted", "restricted", None), ("public", None, None),
])
def test_access_change_is_only_a_different_access(current, requested, expected):
    assert access_change(current, requested) == expected


@pytest.mark.parametrize("name,email,password,problem", [
    ("alice", "a@example.test", "long enough", None),
    ("Alice", "a@example.test", "long enough", "a username is"),
    ("-alice", "a@example.test", "long enough", "a username is"),
    ("alice", "not-an-email", "long enough", "is not an email address"),
    ("alice", "a@" + "x" * 320 + ".test", "long enough", "is not an email address"),
    ("alice", "a@example.test", "short", "at least 8 characters"),
])
def test_new_account_problem(name, email, password, problem):
    found = new_account_problem(name, email, password)
    assert found is None if problem is None else problem in found


class Inner(BaseModel):
    mode: int


class Outer(BaseModel):
    tfa: Inner


def test_the_first_validation_error_is_located_by_its_dotted_path():
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate({"tfa": {"mode": "x"}})
    assert first_error(raised.value).where == "tfa.mode"
    assert describe(raised.value, "profile change").startswith("invalid profile change: tfa.mode: ")


def test_an_error_of_the_whole_value_names_the_document():
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate([])
    assert describe(raised.value, "thing") == f"invalid thing: document: {first_error(raised.value).message}"
