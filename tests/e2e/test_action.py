"""stagegate-action run as GitHub runs it, against a real broker and the fake OIDC issuer; its
stages are then approved with the real `npm stage approve` and installed with `npm install`."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from tests.support.action import run_action
from tests.support.flaky import FlakyProxy
from tests.support.npm import base_env, npm_command
from tests.support.packages import make_package, publish_document, unique_name
from tests.support.trust import github_relationship



def maintained(accounts, tmp_path, permissions=("createStagedPackage",), version="1.1.0", **fields):
    """A package whose owner has 2FA and trusts acme/widget's release.yml; its next version's sources."""
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    account.enable_2fa()
    created = account.http("POST", f"-/package/{name}/trust", otp=True,
                           json=[github_relationship(permissions=permissions)])
    assert created.status_code == 201, created.text
    workspace = tmp_path / "workspace"
    source = make_package(workspace, name, version, **fields)
    return account, name, workspace, source.relative_to(workspace).as_posix()


def action(tmp_path, workspace, registry, issuer, job=None, **inputs):
    job_env = issuer.job(**(job or {})) if job is not False else {}
    return run_action(workspace, tmp_path / "runner", {"registry": registry, **inputs}, job_env)


def masked_values(stdout: str) -> list[str]:
    return re.findall(r"^::add-mask::(.+)$", stdout, re.M)


def test_stages_then_a_maintainer_approves_and_installs(accounts, issuer, broker, tmp_path):
    account, name, workspace, path = maintained(accounts, tmp_path)
    run = action(tmp_path, workspace, broker.url, issuer, path=path)
    assert run.returncode == 0, run
    stage_id = run.outputs["stage-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", stage_id)
    assert run.outputs["package"] == name and run.outputs["version"] == "1.1.0" and run.outputs["tag"] == "latest"
    assert run.outputs["integrity"].startswith("sha512-") and len(run.outputs["shasum"]) == 40
    assert f"npm stage approve {stage_id} --registry {broker.url}" in run.summary
    assert f"npm stage view {stage_id}" in run.summary and f"npm stage download {stage_id}" in run.summary
    for secret in masked_values(run.stdout):
        assert run.stdout.count(secret) == 1 and secret not in run.stderr, "a secret reached the log"
    assert len(masked_values(run.stdout)) == 2
    view = account.http("GET", f"-/stage/{stage_id}").json()
    assert view["integrity"] == run.outputs["integrity"] and view["actorType"] == "trust"
    approved = account.npm("stage", "approve", stage_id, f"--otp={account.otp()}")
    assert approved.returncode == 0, approved
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name":"project","version":"1.0.0"}')
    installed = accounts.anonymous()("install", f"{name}@1.1.0", cwd=project)
    assert installed.returncode == 0, installed
    assert (project / "node_modules" / name / "index.js").exists()


def test_dry_run_lists_the_files_checks_the_token_and_uploads_nothing(accounts, issuer, broker, tmp_path):
    account, name, workspace, path = maintained(accounts, tmp_path)
    run = action(tmp_path, workspace, broker.url, issuer, path=path, **{"dry-run": "true"})
    assert run.returncode == 0, run
    assert "npm notice Tarball Contents" in run.stdout and re.search(r"npm notice \d+B index\.js", run.stdout)
    assert f"npm notice name: {name}" in run.stdout and "npm notice total files: 3" in run.stdout
    assert run.outputs["version"] == "1.1.0" and run.outputs["stage-id"] == ""
    assert run.outputs["permissions"] == "createStagedPackage"
    assert "Dry run" in run.summary and "stage (`npm stage publish`" in run.summary
    assert len(masked_values(run.stdout)) == 1  # the job's OIDC token; no registry token was minted
    assert account.http("GET", "-/stage", params={"package": name}).json()["total"] == 0
    history = account.http("GET", f"-/package/{name}/audit", otp=True, params={"event": "oidc"}).json()
    assert history["total"] == 0, history  # nothing exchanged


def test_a_dry_run_that_would_be_refused_shows_the_failed_checks_and_the_fix(accounts, issuer, broker, tmp_path):
    _, name, workspace, path = maintained(accounts, tmp_path)
    run = action(tmp_path, workspace, broker.url, issuer, job={"workflow": "nightly.yml"}, path=path,
                 **{"dry-run": "true"})
    assert run.returncode == 1, run
    assert "### stagegate: Dry run: No trust relationship matches this job" in run.summary
    assert "the workflow_ref check failed" in run.summary
    assert f"npm trust github {name} --repo acme/widget --file nightly.yml --allow-stage-publish" in run.summary


def test_a_dry_run_in_publish_mode_with_a_stage_only_relationship_says_so(accounts, issuer, broker, tmp_path):
    _, name, workspace, path = maintained(accounts, tmp_path)
    run = action(tmp_path, workspace, broker.url, issuer, path=path, mode="publish", **{"dry-run": "true"})
    assert run.returncode == 1, run
    assert "Dry run: The trust relationship does not allow this mode" in run.summary
    assert "lacks --allow-publish" in run.summary


def test_tarball_input_is_uploaded_byte_for_byte(accounts, issuer, broker, tmp_path):
    account, name, workspace, path = maintained(accounts, tmp_path)
    env = base_env(tmp_path, tmp_path / "cache")
    packed = subprocess.run([*npm_command(), "pack", "--json"], cwd=workspace / path, env=env,
                            capture_output=True, text=True, check=True)
    report = json.loads(packed.stdout)[0]
    run = action(tmp_path, workspace, broker.url, issuer, tarball=f"{path}/{report['filename']}")
    assert run.returncode == 0, run
    assert run.outputs["integrity"] == report["integrity"]
    download = account.http("GET", f"-/stage/{run.outputs['stage-id']}/tarball")
    assert download.content == (workspace / path / report["filename"]).read_bytes()


def test_publish_mode_publishes_with_an_allow_publish_relationship(accounts, issuer, broker, tmp_path):
    account, name, workspace, path = maintained(accounts, tmp_path, permissions=("createPackage",))
    run = action(tmp_path, workspace, broker.url, issuer, path=path, mode="publish", tag="next")
    assert run.returncode == 0, run
    assert httpx.get(f"{broker.url}-/package/{name}/dist-tags").json()["next"] == "1.1.0"
    assert "Published" in run.summary


def test_staging_with_a_publish_only_relationship_is_refused(accounts, issuer, broker, tmp_path):
    _, name, workspace, path = maintained(accounts, tmp_path, permissions=("createPackage",))
    run = action(tmp_path, workspace, broker.url, issuer, path=path)
    assert run.returncode == 1
    # A broker that names the cause (trust.permission-denied) gets the action's own title; one that
    # sends only the status's code gets the generic title; both runs say what to add.
    assert re.search(r"^::error title=(The trust relationship does not allow this mode|Registry refused the request)"
                     r"::the registry refused staging \(403", run.stdout, re.M), run
    assert "--allow-stage-publish" in run.stdout


def test_missing_id_token_permission_shows_the_yaml_to_add(accounts, issuer, broker, tmp_path):
    _, _, workspace, path = maintained(accounts, tmp_path)
    run = action(tmp_path, workspace, broker.url, issuer, job=False, path=path)
    assert run.returncode == 1
    assert "::error title=Missing the id-token permission::" in run.stdout
    assert "id-token: write" in run.stdout and "id-token: write" in run.summary


def test_a_pull_request_from_a_fork_is_told_why_it_has_no_token(accounts, issuer, broker, tmp_path):
    _, _, workspace, path = maintained(accounts, tmp_path)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"full_name": "mallory/widget", "fork": True}},
                                                  "base": {"repo": {"full_name": "acme/widget"}}}}))
    run = run_action(workspace, tmp_path / "runner", {"registry": broker.url, "path": path},
                     {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)})
    assert run.returncode == 1
    assert "::error title=No OIDC token for a pull request from a fork::" in run.stdout
    assert "forks cannot trigger" in run.summary and "permissions:" not in run.summary


def unescaped(stdout: str) -> str:
    return stdout.replace("%0A", "\n").replace("%25", "%")


def test_a_refused_exchange_shows_the_jobs_claims_and_the_command_that_allows_it(accounts, issuer, broker, tmp_path):
    _, name, workspace, path = maintained(accounts, tmp_path)
    run = action(tmp_path, workspace, broker.url, issuer, job={"workflow": "nightly.yml", "environment": "prod"},
                 path=path)
    assert run.returncode == 1
    assert "::error title=No trust relationship matches this job::" in run.stdout
    command = f"npm trust github {name} --repo acme/widget --file nightly.yml --env prod --allow-stage-publish " \
              f"--registry {broker.url}"
    for output in (unescaped(run.stdout), run.summary):
        assert "workflow_ref: acme/widget/.github/workflows/nightly.yml@refs/heads/main" in output
        assert "repository: acme/widget" in output and "environment: prod" in output
        assert "ref: refs/heads/main" in output
        assert command in output
    unmasked = [line for line in run.stdout.splitlines() if not line.startswith("::add-mask::")]
    assert not any("eyJ" in line for line in unmasked + run.summary.splitlines()), "the JWT must never be printed"


def test_a_refused_exchange_in_publish_mode_suggests_allow_publish(accounts, issuer, broker, tmp_path):
    _, name, workspace, path = maintained(accounts, tmp_path)
    run = action(tmp_path, workspace, broker.url, issuer, job={"workflow": "nightly.yml"}, path=path, mode="publish")
    assert run.returncode == 1
    assert f"npm trust github {name} --repo acme/widget --file nightly.yml --allow-publish" in run.summary
    assert "--allow-stage-publish" not in run.summary.split("```text")[1]


def test_an_unknown_package_is_told_to_publish_its_first_version_by_hand(accounts, issuer, broker, tmp_path):
    name = unique_name()
    workspace = tmp_path / "workspace"
    path = make_package(workspace, name, "1.0.0").relative_to(workspace).as_posix()
    run = action(tmp_path, workspace, broker.url, issuer, path=path)
    assert run.returncode == 1
    assert "::error title=Package not found::" in run.stdout
    assert "publish its first version by hand" in run.summary and f"npm trust github {name}" in run.summary
    assert "add a trust relationship" not in unescaped(run.stdout)


def test_a_plain_http_registry_is_refused_before_any_oidc_token_is_requested(issuer, tmp_path):
    workspace = tmp_path / "workspace"
    path = make_package(workspace, unique_name(), "1.0.0").relative_to(workspace).as_posix()
    requested = issuer.token_requests
    run = action(tmp_path, workspace, "http://registry.example.invalid/", issuer, path=path)
    assert issuer.token_requests == requested, "the job's OIDC token was requested for a clear-text registry"
    assert run.returncode == 1
    assert "::error title=Invalid input::input registry: http://registry.example.invalid/ is plain http" in run.stdout


@pytest.mark.parametrize("fields,inputs,words", [
    ({"private": True}, {}, "This package has been marked as private"),
    ({"version": "1.1.0-beta.1"}, {}, "You must specify a tag using --tag when publishing a prerelease version"),
    ({"version": "0.9.0"}, {}, 'Cannot implicitly apply the "latest" tag'),
    ({"version": "1.0.0"}, {}, "You cannot publish over the previously published versions: 1.0.0."),
], ids=["private", "prerelease", "lower-than-latest", "existing"])
def test_checks_before_upload_use_npms_words(accounts, issuer, broker, tmp_path, fields, inputs, words):
    account, name, workspace, path = maintained(accounts, tmp_path)
    manifest_path = workspace / path / "package.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update(fields)
    manifest_path.write_text(json.dumps(manifest))
    run = action(tmp_path, workspace, broker.url, issuer, path=path, **inputs)
    assert run.returncode == 1, run
    assert words in run.stdout.replace("%0A", "\n")
    assert account.http("GET", "-/stage", params={"package": name}).json()["total"] == 0


def test_a_prerelease_with_a_tag_is_staged(accounts, issuer, broker, tmp_path):
    _, _, workspace, path = maintained(accounts, tmp_path, version="1.1.0-beta.1")
    run = action(tmp_path, workspace, broker.url, issuer, path=path, tag="beta")
    assert run.returncode == 0, run
    assert run.outputs["tag"] == "beta"


def test_lifecycle_scripts_are_not_run_and_say_so(accounts, issuer, broker, tmp_path):
    _, _, workspace, path = maintained(accounts, tmp_path, scripts={"prepack": "tsc"})
    run = action(tmp_path, workspace, broker.url, issuer, path=path, **{"dry-run": "true"})
    assert run.returncode == 0, run
    assert "::warning title=Lifecycle scripts not run::" in run.stdout and "tarball" in run.stdout


@pytest.fixture
def proxy(broker):
    flaky = FlakyProxy(broker.url)
    yield flaky
    flaky.stop()


def test_a_broker_that_fails_twice_with_503_is_retried_and_stages_once(accounts, issuer, broker, proxy, tmp_path):
    account, name, workspace, path = maintained(accounts, tmp_path)
    proxy.script = ["503", "503"]
    run = action(tmp_path, workspace, proxy.url, issuer, path=path)
    assert run.returncode == 0, run
    assert [s for _, p, s in proxy.seen if p.startswith("/-/stage/package/")] == [503, 503, 201]
    assert account.http("GET", "-/stage", params={"package": name}).json()["total"] == 1


def test_a_lost_answer_is_retried_and_returns_the_same_stage(accounts, issuer, broker, proxy, tmp_path):
    account, name, workspace, path = maintained(accounts, tmp_path)
    proxy.script = ["drop"]
    run = action(tmp_path, workspace, proxy.url, issuer, path=path)
    assert run.returncode == 0, run
    assert [s for _, p, s in proxy.seen if p.startswith("/-/stage/package/")] == [201, 201]
    stages = account.http("GET", "-/stage", params={"package": name}).json()
    assert stages["total"] == 1 and stages["items"][0]["id"] == run.outputs["stage-id"]


def test_bad_inputs_are_reported(tmp_path, broker):
    run = run_action(tmp_path, tmp_path / "runner", {"registry": broker.url, "mode": "yolo"})
    assert run.returncode == 1 and "::error title=Invalid input::input mode" in run.stdout
