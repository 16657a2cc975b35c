"""Scope-wide trust (`@scope/*`, npm cli #8877) with the stock npm CLI: who may make it, what it covers,
and the first stage of a package that does not exist yet."""

from __future__ import annotations

import httpx

from tests.e2e.test_oidc_security import exchange
from tests.support.packages import make_package, publish_document, unique_name
from tests.support.trust import github_relationship


def scope_owner(accounts, scope: str, count: int = 2):
    """An account with 2FA that owns `count` packages of @scope (and so every one of them)."""
    account = accounts.create()
    names = [unique_name(scope=scope) for _ in range(count)]
    for name in names:
        response = account.http("PUT", name.replace("/", "%2f"), json=publish_document(name, "1.0.0"))
        assert response.status_code == 200, response.text
    account.enable_2fa()
    return account, names


def trust_scope(account, scope: str, *flags: str):
    return account.npm("trust", "github", f"@{scope}/*", "--repo", "acme/widget", "--file", "release.yml",
                       "--allow-stage-publish", "--yes", f"--otp={account.otp()}", *flags)


def test_an_owner_of_every_package_trusts_a_workflow_for_the_scope_and_a_new_package_is_staged(
        accounts, issuer, broker, tmp_path):
    scope = unique_name("s").replace("-", "")
    account, (first, _) = scope_owner(accounts, scope)
    created = trust_scope(account, scope)
    assert created.returncode == 0, created
    listed = account.npm("trust", "list", f"@{scope}/*")
    assert listed.returncode == 0 and "acme/widget" in listed.output, listed
    assert exchange(broker.url, first, issuer.token()).status_code == 201  # an existing package of the scope
    new = f"@{scope}/brand-new"
    staged = accounts.anonymous()("stage", "publish", cwd=make_package(tmp_path, new, "0.1.0"), env=issuer.job())
    assert staged.returncode == 0, staged
    assert account.http("GET", new.replace("/", "%2f")).status_code == 404  # nothing published yet
    [stage] = account.http("GET", "-/stage", params={"package": new}).json()["items"]
    approved = account.npm("stage", "approve", stage["id"], f"--otp={account.otp()}")
    assert approved.returncode == 0, approved
    packument = account.http("GET", new.replace("/", "%2f")).json()  # scoped: restricted, as npm makes it
    assert packument["dist-tags"]["latest"] == "0.1.0", packument
    assert [m["name"] for m in packument["maintainers"]] == [account.name]  # the scope's owner owns it


def test_only_an_owner_of_every_package_of_the_scope_may_trust_it(accounts, issuer, broker):
    scope = unique_name("s").replace("-", "")
    owner, names = scope_owner(accounts, scope)
    other, [theirs] = scope_owner(accounts, scope, count=1)  # someone else's package in the scope
    for account in (owner, other):
        refused = account.http("POST", f"-/package/@{scope}%2f*/trust", otp=True, json=[github_relationship()])
        assert refused.status_code == 403 and refused.json()["code"] == "trust.scope-denied", refused.text
    namesake = accounts.create()
    namesake.enable_2fa()
    mine = namesake.http("POST", f"-/package/@{namesake.name}%2f*/trust", otp=True, json=[github_relationship()])
    assert mine.status_code == 201, mine.text  # a scope without packages: its namesake's
    not_mine = owner.http("POST", f"-/package/@{namesake.name}%2f*/trust", otp=True, json=[github_relationship()])
    assert not_mine.status_code == 403


def test_a_scope_relationship_does_not_cover_a_package_its_creator_does_not_own(accounts, issuer, broker):
    scope = unique_name("s").replace("-", "")
    owner, [own] = scope_owner(accounts, scope, count=1)
    made = owner.http("POST", f"-/package/@{scope}%2f*/trust", otp=True, json=[github_relationship()])
    assert made.status_code == 201, made.text
    _, [theirs] = scope_owner(accounts, scope, count=1)  # published in the scope later, by someone else
    assert exchange(broker.url, own, issuer.token()).status_code == 201
    refused = exchange(broker.url, theirs, issuer.token())  # restricted (scoped), so it answers as missing
    assert refused.status_code == 404 and refused.json()["code"] == "package.not-found"
    more = owner.http("POST", f"-/package/@{scope}%2f*/trust", otp=True, json=[github_relationship(environment="x")])
    assert more.status_code == 403  # no longer an owner of every package of the scope: no new ones
    # the owner's fourth second factor: a recovery code (a fourth TOTP code would wait for the next step)
    revoked = owner.npm("trust", "revoke", f"@{scope}/*", f"--id={made.json()[0]['id']}",
                        f"--otp={owner.recovery_code()}")
    assert revoked.returncode == 0, revoked  # but what it made, it can always end (with the stock CLI)
    assert exchange(broker.url, own, issuer.token()).status_code == 404  # restricted and no longer trusted


def test_a_name_taken_by_someone_else_after_the_exchange_is_not_staged_into(accounts, issuer, broker):
    scope = unique_name("s").replace("-", "")
    owner, _ = scope_owner(accounts, scope, count=1)
    made = owner.http("POST", f"-/package/@{scope}%2f*/trust", otp=True, json=[github_relationship()])
    assert made.status_code == 201, made.text
    new = f"@{scope}/{unique_name()}"
    minted = exchange(broker.url, new, issuer.token())
    assert minted.status_code == 201, minted.text  # a free name of the scope
    squatter = accounts.create()
    assert squatter.http("PUT", new.replace("/", "%2f"), json=publish_document(new, "1.0.0")).status_code == 200
    staged = httpx.post(f"{broker.url}-/stage/package/{new.replace('/', '%2f')}", json=publish_document(new, "1.1.0"),
                        headers={"authorization": f"Bearer {minted.json()['token']}"}, timeout=30)
    assert staged.status_code == 401 and staged.json()["code"] == "auth.invalid-token", staged.text


def test_an_account_that_no_longer_owns_the_scope_sees_and_ends_only_the_relationships_it_made(accounts, broker):
    creator = accounts.create()
    creator.enable_2fa()
    scope = f"@{creator.name}"  # its namesake's while it has no packages
    mine = creator.http("POST", f"-/package/{scope}%2f*/trust", otp=True, json=[github_relationship()])
    assert mine.status_code == 201, mine.text
    newcomer = accounts.create()  # the registry reserves no scopes: now the owner of every package of it
    name = f"{scope}/{unique_name()}"
    assert newcomer.http("PUT", name.replace("/", "%2f"), json=publish_document(name, "1.0.0")).status_code == 200
    newcomer.enable_2fa()
    theirs = newcomer.http("POST", f"-/package/{scope}%2f*/trust", otp=True,
                           json=[github_relationship(environment="prod")])
    assert theirs.status_code == 201, theirs.text
    listed = creator.http("GET", f"-/package/{scope}%2f*/trust")
    assert listed.status_code == 200 and [r["id"] for r in listed.json()] == [mine.json()[0]["id"]], listed.text
    refused = creator.http("DELETE", f"-/package/{scope}%2f*/trust/{theirs.json()[0]['id']}", otp=True)
    assert refused.status_code == 404, refused.text
    assert [r["id"] for r in newcomer.http("GET", f"-/package/{scope}%2f*/trust").json()] == \
        [mine.json()[0]["id"], theirs.json()[0]["id"]]


def test_the_namesake_of_a_scope_whose_packages_no_one_account_owns_has_no_say_over_it(accounts, broker):
    """"A scope without packages is its namesake's": not a scope whose packages belong to several accounts
    (the namesake listed and could revoke the relationships its owners had made)."""
    namesake = accounts.create()
    scope = f"@{namesake.name}"
    alice, [_] = scope_owner(accounts, scope[1:], count=1)
    made = alice.http("POST", f"-/package/{scope}%2f*/trust", otp=True, json=[github_relationship()])
    assert made.status_code == 201, made.text
    _, [_] = scope_owner(accounts, scope[1:], count=1)  # now nobody owns every package of the scope
    namesake.enable_2fa()
    listed = namesake.http("GET", f"-/package/{scope}%2f*/trust")
    assert listed.status_code == 403 and listed.json()["code"] == "trust.scope-denied", listed.text
    revoked = namesake.http("DELETE", f"-/package/{scope}%2f*/trust/{made.json()[0]['id']}")
    assert revoked.status_code == 403, revoked.text
    created = namesake.http("POST", f"-/package/{scope}%2f*/trust", otp=True, json=[github_relationship()])
    assert created.status_code == 403, created.text
