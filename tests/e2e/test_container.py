"""The two images (the action's Dockerfile, the broker's broker/Dockerfile) and compose.yaml: linted,
validated, built with podman (once per image per run, offline) and run for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from broker.settings import Settings
from tests.support.accounts import Accounts
from tests.support.action import parse_outputs
from tests.support.broker import free_port
from tests.support.packages import make_package, publish_document, unique_name
from tests.support.trust import github_relationship

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASE_IMAGE = "localhost/stagegate-python-base:bookworm"
# This sandbox may not raise rlimits; lower ones are always allowed.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "broker/Dockerfile"])
def test_the_dockerfiles_pass_hadolint_at_warning_level(dockerfile):
    result = subprocess.run([str(BIN / "hadolint"), "--failure-threshold", "warning", dockerfile], cwd=ROOT,
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
def context(tmp_path_factory) -> Path:
    """The build context both images share, with a wheelhouse of both extras (the build is offline)."""
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
                    f"{ROOT}[action,broker]", "setuptools>=68"], check=True, timeout=900)
    return context


def build(context: Path, dockerfile: str, tag: str) -> str:
    # --format docker: the OCI image format has no HEALTHCHECK.
    build = subprocess.run(["podman", "build", "--isolation=chroot", "--format", "docker", *ULIMITS,
                            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg",
                            "PIP_ARGS=--no-index --find-links /src/.wheelhouse", "-f", str(context / dockerfile),
                            "-t", tag, str(context)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return tag


@pytest.fixture(scope="module")
def image(context) -> str:
    return build(context, "Dockerfile", "localhost/stagegate-action:test")


@pytest.fixture(scope="module")
def broker_image(context) -> str:
    return build(context, "broker/Dockerfile", "localhost/stagegate-broker:test")


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


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_yaml_validates_against_the_compose_spec():
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             "compose.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_identical_brokers_behind_the_proxy_after_the_schema_upgrade():
    services = compose()["services"]
    brokers = [name for name, service in services.items() if service.get("build", {}).get("dockerfile")
               == "broker/Dockerfile" and "entrypoint" not in service]
    assert brokers == ["broker-1", "broker-2"] and services["broker-1"] == services["broker-2"]
    caddyfile = compose()["configs"]["caddyfile"]["content"]
    assert "reverse_proxy broker-1:4873 broker-2:4873" in caddyfile
    assert services["broker-1"]["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    assert services["setup"]["command"][0].rstrip().endswith("exec stagegate-broker db upgrade")
    environment = services["broker-1"]["environment"]
    assert services["setup"]["environment"] == environment
    assert environment["STAGEGATE_PUBLIC_URL"] == "http://localhost:8080/"
    assert "8080:8080" in services["proxy"]["ports"]
    settings = {f"STAGEGATE_{name.upper()}" for name in Settings.model_fields}
    unknown = {key for key in environment if key.startswith("STAGEGATE_")} - settings
    assert not unknown, f"compose.yaml sets variables the broker does not read: {unknown}"
    for key in ("STAGEGATE_DATABASE_URL", "STAGEGATE_BLOB_URL", "STAGEGATE_S3_ENDPOINT_URL", "STAGEGATE_SECRET_KEY"):
        assert environment[key], key
    # Both sign with one key: the data directory (where the keyring is generated) is one named volume.
    assert "broker-data:/var/lib/stagegate" in services["broker-1"]["volumes"]
    assert "broker-data" in compose()["volumes"]


class Container:
    """One `podman run -d` of the broker's image on the host network, removed with its volume."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        self.name = f"stagegate-broker-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {"STAGEGATE_PORT": str(self.port), **env}
        run = subprocess.run(["podman", "--runtime", "runc", "run", "-d", "--name", self.name,
                              "--cgroup-manager=cgroupfs", "--network", "host", "--pull=never", *ULIMITS,
                              *[arg for k, v in env.items() for arg in ("-e", f"{k}={v}")], image],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "-/healthz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the broker's container did not come up:\n{self.logs()}")

    def exec(self, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        extra = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
        return subprocess.run(["podman", "--runtime", "runc", "exec", *extra, self.name, *command],
                              capture_output=True, text=True, timeout=60)

    def logs(self) -> str:
        return subprocess.run(["podman", "logs", self.name], capture_output=True, text=True).stdout

    def remove(self) -> None:
        subprocess.run(["podman", "--runtime", "runc", "rm", "-f", "-v", self.name], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def broker_container(broker_image) -> Container:
    container = Container(broker_image, {"STAGEGATE_OPEN_SIGNUP": "true"})
    yield container
    container.remove()


def test_npm_pings_and_publishes_through_the_broker_image(broker_container, npm_cache, tmp_path):
    account = Accounts(broker_container.url, tmp_path, npm_cache).create()
    assert account.npm("ping").returncode == 0
    name = unique_name()
    published = account.npm("publish", cwd=make_package(tmp_path, name, "1.0.0"))
    assert published.returncode == 0, str(published)
    packument = httpx.get(broker_container.url + name).json()
    assert packument["dist-tags"]["latest"] == "1.0.0"
    assert httpx.get(packument["versions"]["1.0.0"]["dist"]["tarball"]).status_code == 200
    # The embedded store lives on the image's data volume.
    assert {"stagegate.db", "secret.key", "blobs"} <= set(broker_container.exec("ls", "/var/lib/stagegate").stdout.split())


def test_the_broker_image_runs_as_a_non_root_user(broker_container):
    assert broker_container.exec("id", "-u").stdout.strip() == "10001"
    status = broker_container.exec("cat", "/proc/1/status").stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {"10001"}, status
    assert "stagegate-broker" in broker_container.exec("cat", "/proc/1/cmdline").stdout


def test_the_images_healthcheck_passes_on_a_healthy_broker_and_fails_without_one(broker_image, broker_container):
    inspect = subprocess.run(["podman", "image", "inspect", "--format", "{{json .Config.Healthcheck}}", broker_image],
                             capture_output=True, text=True, check=True)
    test = json.loads(inspect.stdout)["Test"]
    assert test[0] == "CMD" and "/-/healthz" in test[-1]
    assert broker_container.exec(*test[1:]).returncode == 0
    wrong_port = broker_container.exec(*test[1:], env={"STAGEGATE_PORT": str(free_port())})
    assert wrong_port.returncode != 0
    health = subprocess.run(["podman", "--runtime", "runc", "healthcheck", "run", broker_container.name],
                            capture_output=True, text=True, timeout=60)
    assert health.returncode == 0, health.stdout + health.stderr


def test_the_compose_setup_step_then_two_brokers_share_postgres_and_s3(broker_image, backends, npm_cache, tmp_path):
    storage = backends.storage("postgres")
    # A bucket that does not exist yet: compose's setup step creates it, then upgrades the schema.
    storage["STAGEGATE_BLOB_URL"] = f"s3://fresh-{uuid.uuid4().hex[:12]}/tarballs"
    setup = compose()["services"]["setup"]
    env = {k: v for k, v in storage.items() if k != "STAGEGATE_DATA_DIR"}
    run = subprocess.run(["podman", "--runtime", "runc", "run", "--rm", "--cgroup-manager=cgroupfs", "--network", "host",
                          "--pull=never", *ULIMITS, "--entrypoint", json.dumps(setup["entrypoint"]),
                          *[arg for k, v in env.items() for arg in ("-e", f"{k}={v}")], broker_image,
                          *setup["command"]], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "database schema: empty →" in run.stdout, run.stdout
    first = Container(broker_image, {**env, "STAGEGATE_OPEN_SIGNUP": "true"})
    try:
        second = Container(broker_image, {**env, "STAGEGATE_OPEN_SIGNUP": "true"})
        try:
            account = Accounts(first.url, tmp_path, npm_cache).create()
            name = unique_name()
            published = account.npm("publish", cwd=make_package(tmp_path, name, "1.0.0"))
            assert published.returncode == 0, str(published)
            packument = httpx.get(second.url + name).json()
            tarball = packument["versions"]["1.0.0"]["dist"]["tarball"].replace(first.url, second.url)
            assert httpx.get(tarball).status_code == 200
        finally:
            second.remove()
    finally:
        first.remove()
