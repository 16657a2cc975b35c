"""Multi-maintainer approval with the stock npm CLI: the policy, an honest `npm stage approve` while
approvals are missing, the stager's own approval, a reject after an approval; and stage expiry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy

from tests.support.accounts import Account, Accounts
from tests.support.broker import ROOT
from tests.support.packages import make_package, publish_document, set_version, unique_name

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass
class Team:
    """A package with three maintainers, each with 2FA, that requires two approvals."""

    stager: Account
    first: Account
    second: Account
    name: str
    directory: object


@pytest.fixture(scope="module")
def team(broker, npm_cache, tmp_path_factory) -> Team:
    root = tmp_path_factory.mktemp("approvals")
    accounts = Accounts(broker.url, root, npm_cache)
    stager, first, second = accounts.create("stager"), accounts.create("first"), accounts.create("second")
    name = unique_name()
    directory = make_package(root, name)
    assert (published := stager.npm("publish", cwd=directory)).returncode == 0, published
    for account in (stager, first, second):
        account.enable_2fa()
    for other in (first, second):
        added = stager.npm("owner", "add", other.name, name, f"--otp={stager.otp()}")
        assert added.returncode == 0, added
    return Team(stager, first, second, name, directory)


def policy(account: Account, name: str, required: int, otp: bool = True) -> httpx.Response:
    return account.http("POST", f"-/package/{name}/policy", otp=otp, json={"requiredApprovals": required})


def stage(team: Team, version: str) -> str:
    set_version(team.directory, version)
    result = team.stager.npm("stage", "publish", cwd=team.directory)
    assert result.returncode == 0, result
    return re.search(rf"\(staged with id ({UUID})\)", result.stdout).group(1)


def view(account: Account, stage_id: str) -> dict:
    result = account.npm("stage", "view", stage_id, "--json")
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def test_the_policy_is_set_by_an_owner_with_an_otp_within_the_maintainer_count(team, broker):
    assert policy(team.first, team.name, 2, otp=False).status_code == 401  # an OTP every time
    too_many = policy(team.first, team.name, 4, otp=False)  # an unmeetable policy costs no OTP
    assert too_many.status_code == 409 and too_many.json()["code"] == "policy.unmeetable"
    assert policy(team.first, team.name, 11, otp=False).status_code == 400
    assert (changed := policy(team.first, team.name, 2)).status_code == 200, changed.text
    assert team.second.http("GET", f"-/package/{team.name}/policy").json() == {"requiredApprovals": 2,
                                                                               "maintainers": 3}
    (_, actor, detail), = broker.audit("package.policy", team.name)
    assert actor == team.first.name and detail["required_approvals"] == 2 and detail["previous"] == 1


def test_two_approvals_publish_and_the_first_does_not_claim_it_did(team, broker):
    if team.second.http("GET", f"-/package/{team.name}/policy").json()["requiredApprovals"] != 2:
        assert policy(team.first, team.name, 2).status_code == 200
    stage_id = stage(team, "1.1.0")
    own = team.stager.npm("stage", "approve", stage_id, "--otp=000000")  # refused before the OTP is checked
    assert own.returncode != 0 and "you staged this version yourself" in own.output, own
    first = team.first.npm("stage", "approve", stage_id, f"--otp={team.first.otp()}")
    assert first.returncode != 0, first
    assert "published successfully" not in first.output
    assert "your approval is recorded" in first.output and "1 of 2 required approvals" in first.output, first
    assert httpx.get(broker.url + team.name).json()["dist-tags"]["latest"] == "1.0.0"
    item = view(team.second, stage_id)
    assert item["approvals"] == [team.first.name] and item["requiredApprovals"] == 2
    second = team.second.npm("stage", "approve", stage_id, f"--otp={team.second.otp()}")
    assert second.returncode == 0, second
    assert f"Staged package {stage_id} approved and published successfully" in second.stdout
    shown = team.stager.npm("view", f"{team.name}@1.1.0", "version")
    assert shown.stdout.strip() == "1.1.0", shown
    approvals = [detail for _, _, detail in broker.audit("stage.approved", team.name)
                 if detail["stage_id"] == stage_id]
    assert [(d["approvals"], d["published"]) for d in approvals] == [(1, False), (2, True)]


def test_one_reject_after_an_approval_rejects_the_stage(team):
    if team.second.http("GET", f"-/package/{team.name}/policy").json()["requiredApprovals"] != 2:
        assert policy(team.first, team.name, 2).status_code == 200
    stage_id = stage(team, "1.2.0")
    # Recovery codes: the team's accounts spent TOTP codes in the tests before, and a fourth within 30 s would wait.
    approved = team.first.http("POST", f"-/stage/{stage_id}/approve", headers={"npm-otp": team.first.recovery_code()})
    assert approved.status_code == 409, approved.text
    rejected = team.second.npm("stage", "reject", stage_id, f"--otp={team.second.recovery_code()}")
    assert rejected.returncode == 0, rejected
    assert team.first.http("GET", f"-/stage/{stage_id}").status_code == 404
    assert stage(team, "1.2.0") != stage_id, "the version number is free again"


# --- expiry ------------------------------------------------------------------------------------------

def _backdate(database_url: str, stage_id: str, seconds: float) -> None:
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("update stages set created_at = created_at - :s where id = :id"),
                     {"s": seconds, "id": stage_id})
    engine.dispose()


def test_an_expired_stage_cannot_be_approved_and_is_rejected(accounts, broker):
    owner = accounts.create()
    name = unique_name()
    assert owner.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    owner.enable_2fa()
    staged = owner.http("POST", f"-/stage/package/{name}", json=publish_document(name, "1.1.0"))
    stage_id = staged.json()["stageId"]
    _backdate(broker.database_url, stage_id, 31 * 86400)  # a stage left by a broker running a month ago
    refused = owner.http("POST", f"-/stage/{stage_id}/approve")  # decided before the OTP: none is asked for
    assert refused.status_code == 410 and refused.json()["code"] == "stage.expired", refused.text
    assert owner.http("GET", f"-/stage/{stage_id}").status_code == 404
    (_, actor, detail), = broker.audit("stage.expired", name)
    assert actor is None and detail["stage_id"] == stage_id
    again = owner.http("POST", f"-/stage/package/{name}", json=publish_document(name, "1.1.0"))
    assert again.status_code == 201, "the version number is free again"


def _registry_hook(storage: dict[str, str], env: dict[str, str]) -> None:
    """A registry-wide webhook, added as the operator does (its host never resolves: nothing is delivered)."""
    result = subprocess.run([sys.executable, "-m", "broker.cli", "hooks", "add", "https://hooks.example.invalid/x"],
                            cwd=ROOT, env={**os.environ, **storage, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _announced(database_url: str, event: str, package: str) -> list[str]:
    """The stage ids of the `event`s of `package` in the webhook outbox."""
    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as conn:
        bodies = conn.execute(sqlalchemy.text("select body from webhook_outbox where event = :e and package = :p"),
                              {"e": event, "p": package}).scalars().all()
    engine.dispose()
    return [json.loads(body)["data"]["stage_id"] for body in bodies]


def test_two_instances_sweep_expired_stages_once(backends, broker_env, npm_cache, tmp_path):
    storage = backends.storage()
    env = {**broker_env, "STAGEGATE_STAGE_TTL": "3s"}
    first = backends.broker(storage, env)
    pair = [first]
    try:
        _registry_hook(storage, env)  # expiries are announced: `stage.expired` goes to the outbox once each
        owner = Accounts(first.url, tmp_path, npm_cache).create()
        name = unique_name()
        assert owner.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
        stage_ids = [owner.http("POST", f"-/stage/package/{name}", json=publish_document(name, f"1.{minor}.0"))
                     .json()["stageId"] for minor in range(1, 4)]
        if backends.kind == "postgres":
            pair.append(backends.broker(storage, env))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(first.audit("stage.expired", name)) < 3:
            time.sleep(0.3)
        time.sleep(1.5)  # another round of every instance's sweep: nothing is expired twice
        expired = sorted(detail["stage_id"] for _, _, detail in first.audit("stage.expired", name))
        assert expired == sorted(stage_ids)
        assert sorted(_announced(first.database_url, "stage.expired", name)) == sorted(stage_ids)
        assert owner.http("POST", f"-/stage/package/{name}", json=publish_document(name, "1.1.0")).status_code == 201
        for broker in pair:
            assert "Traceback" not in broker.log()
    finally:
        for broker in pair:
            broker.stop()


def test_a_stranger_learns_nothing_of_a_restricted_package_from_its_policy_route(accounts):
    """The unmeetable-policy check (made before the OTP) ran before the ownership check: a stranger's
    request named how many maintainers a restricted package has."""
    owner, stranger = accounts.create(), accounts.create()
    name = unique_name(scope=unique_name("s").replace("-", ""))  # scoped: restricted
    assert owner.http("PUT", name.replace("/", "%2f"), json=publish_document(name, "1.0.0")).status_code == 200
    missing = name + "-missing"
    answers = [stranger.http("POST", f"-/package/{n.replace('/', '%2f')}/policy", json={"requiredApprovals": 10})
               for n in (name, missing)]
    assert answers[1].status_code == 404, answers[1].text
    assert answers[0].status_code in (403, 404) and "maintainer(s)" not in answers[0].text, answers[0].text
