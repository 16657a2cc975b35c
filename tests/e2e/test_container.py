"""The action's image: linted, its action.yml validated, built with podman and run for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.action import parse_outputs
from tests.support.packages import make_package, publish_document, unique_name
from tests.support.trust import github_relationship

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASE_IMAGE = "localhost/stagegate-python-base:bookworm"
# This sandbox may not raise rlimits; lower ones are always allowed.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def test_the_dockerfile_passes_hadolint_at_warning_level():
    result = subprocess.run([str(BIN / "hadolint"), "--failure-threshold", "warning", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_yml_validates_against_githubs_schema():
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions",
                             "action.yml"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_yml_declares_every_input_and_output_the_action_uses():
    text = (ROOT / "action.yml").read_text()
    for name in ("registry", "path", "tarball", "tag", "access", "mode", "dry-run", "audience", "stage-id",
                 "package", "version", "integrity", "shasum"):
        assert f"\n  {name}:\n" in text, name


def _podman() -> None:
    missing = [tool for tool in ("podman", "mmdebstrap", "runc") if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not installed: run scripts/bootstrap --with-container"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    _podman()
    subprocess.run([str(ROOT / "scripts" / "container-base"), BASE_IMAGE], check=True, timeout=600)
    context = tmp_path_factory.mktemp("context")
    for item in ("pyproject.toml", "README.md", "Dockerfile", ".dockerignore", "action.yml", "action", "broker"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, context / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / item)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(context / ".wheelhouse"),
                    f"{ROOT}[action]", "setuptools>=68"], check=True, timeout=600)
    tag = "localhost/stagegate-action:test"
    build = subprocess.run(["podman", "build", "--isolation=chroot", *ULIMITS, "--build-arg",
                            f"BASE_IMAGE={BASE_IMAGE}", "--build-arg",
                            "PIP_ARGS=--no-index --find-links /src/.wheelhouse", "-t", tag, str(context)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return tag


def test_the_container_stages_the_mounted_workspace(image, accounts, issuer, broker, tmp_path):
    account = accounts.create()
    name = unique_name()
    assert account.http("PUT", name, json=publish_document(name, "1.0.0")).status_code == 200
    account.enable_2fa()
    assert account.http("POST", f"-/package/{name}/trust", otp=True, json=[github_relationship()]).status_code == 201
    workspace = tmp_path / "workspace"
    make_package(workspace, name, "1.1.0").rename(workspace / "pkg")
    runner = tmp_path / "runner"
    runner.mkdir()
    (runner / "output").write_text("")
    (runner / "summary").write_text("")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/github/workspace",
           "GITHUB_OUTPUT": "/github/file_commands/output", "GITHUB_STEP_SUMMARY": "/github/file_commands/summary",
           "GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_REPOSITORY": "acme/widget",
           "INPUT_REGISTRY": broker.url, "INPUT_PATH": "pkg", **issuer.job()}
    run = subprocess.run(["podman", "--runtime", "runc", "run", "--rm", "--cgroup-manager=cgroupfs",
                          "--network", "host", "--pull=never", *ULIMITS,
                          "-v", f"{workspace}:/github/workspace", "-v", f"{runner}:/github/file_commands",
                          *[arg for k, v in env.items() for arg in ("-e", f"{k}={v}")], image],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    outputs = parse_outputs((runner / "output").read_text())
    stage = account.http("GET", f"-/stage/{outputs['stage-id']}")
    assert stage.status_code == 200, stage.text
    assert stage.json()["packageName"] == name and stage.json()["integrity"] == outputs["integrity"]
    assert "npm stage approve" in (runner / "summary").read_text()
