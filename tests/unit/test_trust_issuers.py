"""Trusted issuers: the settings that list them, the resolution of a token's `iss` (CircleCI's per
organization, bounded by the relationships that name one), and the issuer a new relationship records."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from pydantic import ValidationError

from broker.domain.circleci import CircleCIConfig
from broker.oidc import issuers as issuers_module
from broker.oidc.issuers import Issuers, UnknownIssuer
from broker.oidc.verify import TemporarilyUnverifiable
from broker.settings import Settings

GHES = "https://ghe.example.com/_services/token"
CCI = "https://oidc.circleci.com/org/"
ORG = "0b6c8a8e-5d1f-4c4a-9a57-1c0f3e1d2a01"


def settings(monkeypatch, extra: list | None = None, **env: str) -> Settings:
    monkeypatch.setenv("STAGEGATE_OIDC_ISSUERS", json.dumps(extra or []))
    for key, value in env.items():
        monkeypatch.setenv(f"STAGEGATE_{key.upper()}", value)
    return Settings()


def circleci_config(org: str = ORG) -> CircleCIConfig:
    return CircleCIConfig.model_validate({
        "oidc.circleci.com/org-id": org, "oidc.circleci.com/project-id": ORG,
        "oidc.circleci.com/pipeline-definition-id": ORG, "oidc.circleci.com/vcs-origin": "github.com/a/b"})


# --- settings ------------------------------------------------------------------------------------
def test_more_issuers_come_after_the_defaults(monkeypatch):
    found = settings(monkeypatch, [{"kind": "github", "issuer": GHES + "/"}]).issuer_settings()
    assert [(s.kind, s.issuer, s.default) for s in found] == [
        ("github", "https://token.actions.githubusercontent.com", True), ("gitlab", "https://gitlab.com", True),
        ("circleci", CCI, True), ("github", GHES, False)]


def test_an_entry_naming_a_default_issuer_sets_its_options(monkeypatch):
    found = settings(monkeypatch, [{"kind": "gitlab", "issuer": "https://gitlab.com",
                                    "allow_self_hosted_runners": True}]).issuer_settings()
    (gitlab,) = [s for s in found if s.kind == "gitlab"]
    assert gitlab.default and gitlab.allow_self_hosted_runners


@pytest.mark.parametrize("extra", [
    [{"kind": "github", "issuer": "https://gitlab.com"}],  # one URL, two kinds
    [{"kind": "github", "issuer": GHES}, {"kind": "github", "issuer": GHES}],
    [{"kind": "github", "issuer": "http://ghe.example.com"}],  # plain http off loopback
    [{"kind": "github", "issuer": "https://ghe.example.com?x=1"}],
    [{"kind": "jenkins", "issuer": "https://ci.example.com"}],
    [{"kind": "github", "issuer": GHES, "extra": 1}],
    [{"kind": "github", "issuer": GHES, "default": True}],  # the defaults are STAGEGATE_OIDC_<KIND>_ISSUER
    [{"kind": "github", "issuer": CCI + ORG}],  # under the CircleCI prefix: which kind would it be?
])
def test_invalid_issuer_settings_are_refused(monkeypatch, extra):
    with pytest.raises(ValidationError):
        settings(monkeypatch, extra)


def test_the_circleci_prefix_ends_with_a_slash(monkeypatch):
    found = settings(monkeypatch, oidc_circleci_issuer_prefix="https://circleci.example.com/org")
    assert found.default_issuer("circleci") == "https://circleci.example.com/org/"


# --- resolving a token's iss -------------------------------------------------------------------------
class InUse:
    def __init__(self, *issuers: str) -> None:
        self.issuers, self.calls = set(issuers), 0

    def __call__(self, provider: str) -> frozenset[str]:
        assert provider == "circleci"
        self.calls += 1
        return frozenset(self.issuers)


def resolve(found: Issuers, iss):
    return asyncio.run(found.resolve(iss))


def test_fixed_issuers_resolve_to_their_kind(monkeypatch):
    found = Issuers(settings(monkeypatch, [{"kind": "github", "issuer": GHES}]))
    assert resolve(found, GHES).provider.type == "github"
    assert resolve(found, "https://gitlab.com").provider.type == "gitlab"
    assert resolve(found, "https://ghe.evil.example") is None and resolve(found, 7) is None


def test_a_circleci_organization_a_relationship_names_resolves(monkeypatch):
    found = Issuers(settings(monkeypatch), InUse(CCI + ORG))
    trusted = resolve(found, CCI + ORG)
    assert trusted.provider.type == "circleci" and trusted.issuer == CCI + ORG
    assert resolve(found, CCI + ORG) is trusted  # one key cache per organization


@pytest.mark.parametrize("iss", [CCI + ORG.upper(), CCI + ORG + "/x", CCI + "org", CCI, CCI + ORG + "/"])
def test_only_the_prefix_and_an_organization_id_are_a_circleci_issuer(monkeypatch, iss):
    in_use = InUse(iss)
    assert resolve(Issuers(settings(monkeypatch), in_use), iss) is None and in_use.calls == 0


def test_unknown_organizations_read_the_database_at_most_once_per_interval(monkeypatch):
    in_use = InUse(CCI + ORG)
    found = Issuers(settings(monkeypatch), in_use)
    for _ in range(50):
        assert resolve(found, CCI + str(uuid.uuid4())) is None
    assert in_use.calls == 1
    assert resolve(found, CCI + ORG) is not None and in_use.calls == 1


def test_an_organization_whose_relationships_are_gone_is_forgotten(monkeypatch):
    monkeypatch.setattr(issuers_module, "ORG_REFRESH_INTERVAL", 0.0)
    in_use = InUse(CCI + ORG)
    found = Issuers(settings(monkeypatch), in_use)
    assert resolve(found, CCI + ORG) is not None
    in_use.issuers.clear()
    assert resolve(found, CCI + str(uuid.uuid4())) is None  # a refresh
    assert resolve(found, CCI + ORG) is None


def test_a_database_that_cannot_answer_is_a_temporary_refusal(monkeypatch):
    def broken(provider: str) -> frozenset[str]:
        raise OSError("database down")

    found = Issuers(settings(monkeypatch), broken)
    with pytest.raises(TemporarilyUnverifiable):
        resolve(found, CCI + ORG)


def test_a_relationship_created_here_is_known_at_once(monkeypatch):
    in_use = InUse()
    found = Issuers(settings(monkeypatch), in_use)
    assert resolve(found, CCI + ORG) is None
    found.note("circleci", CCI + ORG)
    assert resolve(found, CCI + ORG) is not None


# --- the issuer a new relationship records -------------------------------------------------------
@pytest.mark.parametrize("kind,requested,expected", [
    ("github", None, "https://token.actions.githubusercontent.com"), ("github", GHES, GHES),
    ("github", GHES + "/", GHES), ("gitlab", None, "https://gitlab.com"),
    ("circleci", None, CCI + ORG), ("circleci", CCI, CCI + ORG), ("circleci", CCI + ORG, CCI + ORG),
    ("circleci", "https://circleci.example.com/org/", f"https://circleci.example.com/org/{ORG}")])
def test_a_relationship_records_the_issuer_named_or_the_default(monkeypatch, kind, requested, expected):
    found = Issuers(settings(monkeypatch, [{"kind": "github", "issuer": GHES},
                                           {"kind": "circleci", "issuer": "https://circleci.example.com/org/"}]))
    config = circleci_config() if kind == "circleci" else None
    assert found.relationship_issuer(kind, config, requested) == expected


@pytest.mark.parametrize("kind,requested", [
    ("github", "https://gitlab.com"), ("github", "https://ghe.evil.example"), ("gitlab", GHES),
    ("circleci", CCI + "9f6c8a8e-5d1f-4c4a-9a57-1c0f3e1d2a09"),  # another organization than the configured one
    ("circleci", "https://token.actions.githubusercontent.com")])
def test_a_relationship_cannot_name_an_issuer_not_configured_for_its_kind(monkeypatch, kind, requested):
    found = Issuers(settings(monkeypatch, [{"kind": "github", "issuer": GHES}]))
    with pytest.raises(UnknownIssuer):
        found.relationship_issuer(kind, circleci_config() if kind == "circleci" else None, requested)
