"""Anonymous GETs answered from memory (api/readcache.ReadyResponses) never outlive a write and never
show a restricted package."""

from __future__ import annotations

import httpx

from tests.support.packages import publish_document, unique_name

CORGI = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
REPRESENTATIONS = [{"accept": "application/json"}, {"accept": CORGI}, {"accept": CORGI, "accept-encoding": "gzip"},
                   {"accept": "application/json", "accept-encoding": "identity"}]


def test_a_restricted_package_is_not_shown_anonymously_after_its_owner_read_it(accounts):
    account = accounts.create()
    name = unique_name(scope=account.name)
    assert account.http("PUT", name.replace("/", "%2f"), json=publish_document(name, "1.0.0")).status_code == 200
    path = name.replace("/", "%2f")
    tarball = f"{name}/-/{name.split('/')[1]}-1.0.0.tgz"
    for _ in range(3):
        assert account.http("GET", path).status_code == 200
        assert account.http("GET", tarball).status_code == 200
    assert httpx.get(account.registry + path).status_code == 404
    assert httpx.get(account.registry + tarball).status_code == 404


def test_an_unpublished_version_is_gone_from_every_kept_answer_on_the_next_read(accounts):
    account = accounts.create()
    name = unique_name()
    for version in ("1.0.0", "1.1.0"):
        assert account.http("PUT", name, json=publish_document(name, version)).status_code == 200
    tarball = f"{account.registry}{name}/-/{name}-1.1.0.tgz"
    for _ in range(2):  # the second read of each is served from memory
        assert httpx.get(tarball).status_code == 200
        for headers in REPRESENTATIONS:
            assert "1.1.0" in httpx.get(account.registry + name, headers=headers).json()["versions"]
    document = account.http("GET", name).json()
    del document["versions"]["1.1.0"]
    assert account.http("PUT", f"{name}/-rev/{document['_rev']}", json=document).status_code == 200
    assert httpx.get(tarball).status_code == 404
    for headers in REPRESENTATIONS:
        assert list(httpx.get(account.registry + name, headers=headers).json()["versions"]) == ["1.0.0"]
