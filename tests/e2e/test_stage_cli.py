"""Staged publishing with the stock npm CLI: stage, list, view, download, approve, reject."""

from __future__ import annotations

import re
import tarfile

import httpx

from tests.support.accounts import PASSWORD
from tests.support.packages import make_package, set_version, unique_name

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def owned(accounts, tmp_path, with_2fa: bool = True, **fields):
    account = accounts.create()
    name = unique_name()
    directory = make_package(tmp_path, name, **fields)
    assert account.npm("publish", cwd=directory).returncode == 0
    if with_2fa:
        account.enable_2fa()
    set_version(directory, "1.1.0")
    return account, name, directory


def stage(npm, directory, *flags, env=None) -> str:
    result = npm("stage", "publish", *flags, cwd=directory, env=env)
    assert result.returncode == 0, result
    match = re.search(rf"\(staged with id ({UUID})\)", result.stdout)
    assert match, result
    return match.group(1)


def install(accounts, tmp_path, spec: str):
    project = tmp_path / f"project-{abs(hash(spec))}"
    project.mkdir()
    (project / "package.json").write_text('{"name":"project","version":"1.0.0"}')
    return accounts.anonymous()("install", spec, cwd=project), project


def test_stage_view_download_approve_then_install(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    stage_id = stage(account.npm, directory)
    assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.0.0", "staged is not public"
    view = account.npm("stage", "view", stage_id)
    assert view.returncode == 0, view
    assert name in view.stdout and "1.1.0" in view.stdout and f"staged by: {account.name} (user)" in view.stdout
    download = account.npm("stage", "download", stage_id)
    assert download.returncode == 0, download
    files = list(account.home.glob(f"{name}-1.1.0-{stage_id}.tgz"))
    assert len(files) == 1, download
    with tarfile.open(files[0]) as archive:
        assert archive.extractfile("package/index.js").read() == (directory / "index.js").read_bytes()
    approved = account.npm("stage", "approve", stage_id, f"--otp={account.otp()}")
    assert approved.returncode == 0, approved
    assert f"Staged package {stage_id} approved and published successfully" in approved.stdout
    doc = httpx.get(account.registry + name).json()
    assert doc["dist-tags"]["latest"] == "1.1.0"
    staged_bytes = files[0].read_bytes()
    tarball = httpx.get(doc["versions"]["1.1.0"]["dist"]["tarball"]).content
    assert tarball == staged_bytes, "approval publishes the staged tarball byte for byte"
    result, project = install(accounts, tmp_path, f"{name}@1.1.0")
    assert result.returncode == 0, result
    assert (project / "node_modules" / name / "package.json").exists()
    assert "No staged" in account.npm("stage", "list", name).stdout


def test_stage_with_a_granular_token_without_bypass_needs_no_otp(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    token = account.http("POST", "-/npm/v1/tokens", otp=True, json={
        "password": PASSWORD, "packages_and_scopes_permission": "read-write"}).json()["token"]
    account.use_token(token)
    stage_id = stage(account.npm, directory)
    assert f"staged by: {account.name} (token)" in account.npm("stage", "view", stage_id).stdout


def test_a_bypass_token_stages_without_publishing(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path, with_2fa=False)
    token = account.http("POST", "-/npm/v1/tokens", json={
        "password": PASSWORD, "bypass_2fa": True, "packages_and_scopes_permission": "read-write"}).json()["token"]
    account.use_token(token)
    stage_id = stage(account.npm, directory)
    assert f"staged by: {account.name} (token)" in account.npm("stage", "view", stage_id).stdout
    assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.0.0", "staged is not public"


def test_stage_via_oidc_from_a_github_job_shows_where_it_was_built(accounts, issuer, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    created = account.npm("trust", "github", name, "--repo", "acme/widget", "--file", "release.yml",
                          "--allow-stage-publish", "--yes", f"--otp={account.otp()}")
    assert created.returncode == 0, created
    stage_id = stage(accounts.anonymous(), directory, env=issuer.job(run_id="31337"))
    view = account.npm("stage", "view", stage_id)
    assert "staged by: acme/widget (trust)" in view.stdout and "repository: acme/widget" in view.stdout
    assert "runId: 31337" in view.stdout and "release.yml" in view.stdout
    assert account.npm("stage", "approve", stage_id, f"--otp={account.otp()}").returncode == 0


def test_an_allow_publish_only_relationship_cannot_stage(accounts, issuer, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    assert account.npm("trust", "github", name, "--repo", "acme/widget", "--file", "release.yml",
                       "--allow-publish", "--yes", f"--otp={account.otp()}").returncode == 0
    result = accounts.anonymous()("stage", "publish", cwd=directory, env=issuer.job())
    assert result.returncode != 0
    assert "E403" in result.output and "createStagedPackage" in result.output


def test_stage_list_pages_past_100_items_and_filters_by_package(accounts, tmp_path):
    from tests.support.packages import publish_document

    account, name, _ = owned(accounts, tmp_path, with_2fa=False)
    for minor in range(103):
        response = account.http("POST", f"-/stage/package/{name}", json=publish_document(name, f"2.{minor}.0"))
        assert response.status_code == 201, response.text
    other = unique_name()
    account.http("PUT", other, json=publish_document(other, "1.0.0"))
    account.http("POST", f"-/stage/package/{other}", json=publish_document(other, "1.1.0"))
    everything = account.npm("stage", "list")
    assert everything.returncode == 0, everything
    assert len(set(re.findall(UUID, everything.stdout))) == 104
    mine = account.npm("stage", "list", name)
    assert len(set(re.findall(UUID, mine.stdout))) == 103
    assert other not in mine.stdout


def test_reject_deletes_the_stage_and_its_tarball_and_frees_the_version(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    stage_id = stage(account.npm, directory, "--tag", "next")
    rejected = account.npm("stage", "reject", stage_id, f"--otp={account.otp()}")
    assert rejected.returncode == 0, rejected
    assert f"Staged package {stage_id} has been rejected" in rejected.output
    assert account.http("GET", f"-/stage/{stage_id}/tarball").status_code == 404
    again = stage(account.npm, directory)
    assert again != stage_id


def test_approve_applies_the_tag_fixed_at_staging(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    stage_id = stage(account.npm, directory, "--tag", "beta")
    assert account.npm("stage", "approve", stage_id, f"--otp={account.otp()}").returncode == 0
    tags = httpx.get(f"{account.registry}-/package/{name}/dist-tags").json()
    assert tags == {"latest": "1.0.0", "beta": "1.1.0"}


def test_approve_without_an_otp_is_challenged_and_a_wrong_one_refused(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    stage_id = stage(account.npm, directory)
    missing = account.npm("stage", "approve", stage_id)
    assert missing.returncode != 0 and "EOTP" in missing.output
    wrong = account.npm("stage", "approve", stage_id, f"--otp={account.authenticator.wrong_code()}")
    assert wrong.returncode != 0 and "EOTP" in wrong.output
    assert httpx.get(account.registry + name).json()["dist-tags"]["latest"] == "1.0.0"


def test_approve_on_an_account_without_2fa_is_forbidden(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path, with_2fa=False)
    stage_id = stage(account.npm, directory)
    result = account.npm("stage", "approve", stage_id)
    assert result.returncode != 0
    assert "E403" in result.output and "enable-2fa" in result.output


def test_others_cannot_see_or_approve_a_stage(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path)
    stage_id = stage(account.npm, directory)
    stranger = accounts.create()
    stranger.enable_2fa()
    assert "No staged" in stranger.npm("stage", "list").stdout
    result = stranger.npm("stage", "approve", stage_id, f"--otp={stranger.otp()}")
    assert result.returncode != 0 and "E404" in result.output


def test_publish_of_a_staged_version_fails_naming_the_stage(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path, with_2fa=False)
    stage_id = stage(account.npm, directory)
    result = account.npm("publish", cwd=directory)
    assert result.returncode != 0
    assert "E409" in result.output and "is staged (stage" in result.output  # npm masks the uuid itself
    assert f"is staged (stage {stage_id})" in account.http("PUT", name, json=_document(name)).json()["error"]


def _document(name: str) -> dict:
    from tests.support.packages import publish_document

    return publish_document(name, "1.1.0")


def test_staging_a_version_twice_or_a_published_version_is_refused(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path, with_2fa=False)
    stage(account.npm, directory)
    twice = account.npm("stage", "publish", cwd=directory)
    assert twice.returncode != 0 and "E409" in twice.output and "already staged" in twice.output
    set_version(directory, "1.0.0")
    published = account.npm("stage", "publish", cwd=directory)
    assert published.returncode != 0


def test_publishing_keeps_working_while_versions_are_staged(accounts, tmp_path):
    account, name, directory = owned(accounts, tmp_path, with_2fa=False)
    stage(account.npm, directory)
    set_version(directory, "1.2.0")
    stage(account.npm, directory)
    set_version(directory, "1.3.0")
    assert account.npm("publish", cwd=directory).returncode == 0
    assert len(re.findall(UUID, account.npm("stage", "list", name).stdout)) == 2


def test_staging_needs_an_existing_package(accounts, tmp_path):
    account = accounts.create()
    result = account.npm("stage", "publish", cwd=make_package(tmp_path, unique_name()))
    assert result.returncode != 0 and "E404" in result.output


def test_staging_someone_elses_package_is_forbidden(accounts, tmp_path):
    _, name, directory = owned(accounts, tmp_path, with_2fa=False)
    result = accounts.create().npm("stage", "publish", cwd=directory)
    assert result.returncode != 0 and "E403" in result.output
