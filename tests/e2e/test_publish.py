"""Publishing and installing with the stock npm CLI."""

from __future__ import annotations

import json

import httpx

from tests.support.packages import make_package, set_version, unique_name


def test_first_publish_creates_the_package_owned_by_the_publisher(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    result = account.npm("publish", cwd=make_package(tmp_path, name))
    assert result.returncode == 0, result
    assert f"+ {name}@1.0.0" in result.stdout
    owners = account.npm("owner", "ls", name)
    assert owners.stdout.strip() == f"{account.name} <{account.email}>"


def test_view_shows_the_published_version(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    account.npm("publish", cwd=make_package(tmp_path, name))
    view = accounts.anonymous()("view", name, "--json")
    assert view.returncode == 0, view
    doc = json.loads(view.stdout)
    assert doc["name"] == name and doc["version"] == "1.0.0"
    assert doc["dist"]["tarball"] == f"{account.registry}{name}/-/{name}-1.0.0.tgz"


def test_install_fetches_the_tarball_and_verifies_its_integrity(accounts, tmp_path):
    account = accounts.create()
    name = unique_name(scope="acme")
    source = make_package(tmp_path, name)
    assert account.npm("publish", "--access=public", cwd=source).returncode == 0
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name":"project","version":"1.0.0"}')
    npm = accounts.anonymous()
    result = npm("install", f"{name}@1.0.0", cwd=project)
    assert result.returncode == 0, result
    installed = project / "node_modules" / name / "index.js"
    assert installed.read_text() == (source / "index.js").read_text()
    lock = json.loads((project / "package-lock.json").read_text())
    assert lock["packages"][f"node_modules/{name}"]["integrity"].startswith("sha512-")


def test_abbreviated_packument_is_served_for_the_install_accept_header(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    account.npm("publish", cwd=make_package(tmp_path, name, dependencies={"left-pad": "^1.0.0"}))
    response = httpx.get(account.registry + name, headers={
        "accept": "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"})
    assert response.headers["content-type"].startswith("application/vnd.npm.install-v1+json")
    version = response.json()["versions"]["1.0.0"]
    assert version["dependencies"] == {"left-pad": "^1.0.0"}
    assert "description" not in version and "readme" not in response.json()
    full = httpx.get(account.registry + name, headers={"accept": "application/json"}).json()
    assert full["versions"]["1.0.0"]["description"] == f"test package {name}"


def test_publish_of_someone_elses_package_is_forbidden(accounts, tmp_path):
    owner, intruder = accounts.create(), accounts.create()
    name = unique_name()
    directory = make_package(tmp_path, name)
    assert owner.npm("publish", cwd=directory).returncode == 0
    set_version(directory, "1.0.1")
    result = intruder.npm("publish", cwd=directory)
    assert result.returncode != 0
    assert "E403" in result.output and "You do not have permission to publish" in result.output


def test_restricted_scoped_package_is_hidden_from_others(accounts, tmp_path):
    owner, other = accounts.create(), accounts.create()
    name = unique_name(scope="private")
    result = owner.npm("publish", "--access=restricted", cwd=make_package(tmp_path, name))
    assert result.returncode == 0, result
    assert owner.npm("view", name, "version").stdout.strip() == "1.0.0"
    hidden = other.npm("view", name, "version")
    assert hidden.returncode != 0 and "E404" in hidden.output
    status = owner.npm("access", "get", "status", name)
    assert f"{name}: private" in status.stdout, status


def test_a_strangers_changes_to_a_restricted_package_answer_as_for_a_missing_one(accounts):
    owner, stranger = accounts.create(), accounts.create()
    name = unique_name(scope="private").replace("/", "%2f")
    missing = unique_name(scope="private").replace("/", "%2f")
    from tests.support.packages import publish_document

    document = publish_document(name.replace("%2f", "/"), "1.0.0", access="restricted")
    assert owner.http("PUT", name, json=document).status_code == 200
    for method, path, body in (("POST", "-/package/{}/trust", []), ("POST", "-/package/{}/policy",
                                                                     {"requiredApprovals": 1}),
                               ("POST", "-/package/{}/hooks", {"url": "https://example.com/"}),
                               ("PUT", "-/package/{}/dist-tags/beta", "1.0.0"), ("POST", "-/package/{}/access",
                                                                                   {"access": "public"})):
        hidden = stranger.http(method, path.format(name), json=body)
        absent = stranger.http(method, path.format(missing), json=body)
        assert (hidden.status_code, hidden.json()["code"]) == (absent.status_code, absent.json()["code"]), \
            (path, hidden.text, absent.text)


def test_a_version_used_once_can_never_be_published_again(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    directory = make_package(tmp_path, name)
    account.npm("publish", cwd=directory)
    set_version(directory, "1.0.1")
    account.npm("publish", cwd=directory)
    unpublished = account.npm("unpublish", f"{name}@1.0.1")
    assert unpublished.returncode == 0, unpublished
    again = account.npm("publish", cwd=directory)
    assert again.returncode != 0
    assert "You cannot publish over the previously published versions: 1.0.1" in again.output


def test_publish_on_a_2fa_account_asks_for_an_otp(accounts, tmp_path):
    account = accounts.create()
    account.enable_2fa()
    directory = make_package(tmp_path, unique_name())
    refused = account.npm("publish", cwd=directory)
    assert refused.returncode != 0
    assert "This operation requires a one-time password" in refused.output
    wrong = account.npm("publish", f"--otp={account.authenticator.wrong_code()}", cwd=directory)
    assert wrong.returncode != 0 and "EOTP" in wrong.output
    done = account.npm("publish", f"--otp={account.otp()}", cwd=directory)
    assert done.returncode == 0, done


def test_auth_only_2fa_does_not_ask_for_an_otp_to_publish(accounts, tmp_path):
    account = accounts.create()
    account.enable_2fa("auth-only")
    result = account.npm("publish", cwd=make_package(tmp_path, unique_name()))
    assert result.returncode == 0, result


def test_publish_of_a_private_package_is_refused_by_the_registry(accounts):
    from tests.support.packages import publish_document

    account = accounts.create()
    name = unique_name()
    doc = publish_document(name, "1.0.0", manifest_extra={"private": True})
    response = account.http("PUT", name, json=doc)
    assert response.status_code == 400
    assert '"private": true' in response.json()["error"]
    assert httpx.get(account.registry + name).status_code == 404


def test_a_single_version_document_by_number_or_tag(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    assert account.npm("publish", cwd=make_package(tmp_path, name)).returncode == 0
    by_number = httpx.get(f"{account.registry}{name}/1.0.0")
    by_tag = httpx.get(f"{account.registry}{name}/latest")
    assert by_number.status_code == by_tag.status_code == 200
    assert by_number.json() == by_tag.json() and by_number.json()["version"] == "1.0.0"
    assert httpx.get(f"{account.registry}{name}/9.9.9").status_code == 404


def test_packuments_are_gzipped_for_clients_that_accept_it_and_follow_new_versions(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    source = make_package(tmp_path, name, optionalDependencies={f"dep-{i}": "^1.0.0" for i in range(100)})
    assert account.npm("publish", cwd=source).returncode == 0
    url = account.registry + name
    plain = httpx.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    packed = httpx.get(url, headers={"accept-encoding": "gzip, deflate"})
    assert packed.headers["content-encoding"] == "gzip" and "accept-encoding" in packed.headers["vary"]
    assert packed.json() == plain.json()
    refused = httpx.get(url, headers={"accept-encoding": "br, gzip;q=0"})
    assert "content-encoding" not in refused.headers
    set_version(source, "1.1.0")
    assert account.npm("publish", cwd=source).returncode == 0
    for accept in ("application/json", "application/vnd.npm.install-v1+json"):
        again = httpx.get(url, headers={"accept-encoding": "gzip", "accept": accept})
        assert again.headers["content-encoding"] == "gzip"
        assert set(again.json()["versions"]) == {"1.0.0", "1.1.0"}
    view = accounts.anonymous()("view", name, "versions", "--json")
    assert json.loads(view.stdout) == ["1.0.0", "1.1.0"]
