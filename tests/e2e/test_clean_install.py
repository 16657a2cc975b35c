"""`pip install stagegate` with no extra, into a fresh virtualenv, offline: each command names the
extra it needs in one line instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    """A venv holding the wheel built from this tree and the core dependencies, nothing else."""
    where = tmp_path_factory.mktemp("clean-install")
    wheels = where / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(ROOT)],
                   check=True, timeout=600)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # Only the wheels built above: no configured index or find-links may fill in an extra.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    wheel = next(wheels.glob("stagegate-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-index",
                    "--find-links", str(wheels), str(wheel)], check=True, env=env, timeout=600)
    return venv


def run(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, timeout=60,
                          cwd=venv.parent)


def test_the_bare_install_has_the_core_but_neither_extra(bare):
    probe = "import importlib.util as u; print([m for m in ('pydantic', 'httpx', 'pydantic_settings', " \
            "'starlette', 'actions_toolkit') if u.find_spec(m)])"
    assert run(bare, "python", "-c", probe).stdout.strip() == "['pydantic', 'httpx']"


@pytest.mark.parametrize("args", [["--help"], ["serve"], ["db", "upgrade"]])
def test_stagegate_broker_without_the_broker_extra_names_it_in_one_line(bare, args):
    result = run(bare, "stagegate-broker", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("stagegate-broker needs the broker extra: pip install 'stagegate[broker]'")
    assert result.stderr.count("\n") == 1 and "pydantic-settings" in result.stderr, result.stderr


def test_stagegate_action_without_the_action_extra_names_it_in_one_line(bare):
    result = run(bare, "stagegate-action")
    assert result.returncode == 2
    assert result.stderr.startswith("stagegate-action needs the action extra: pip install 'stagegate[action]'")
    assert result.stderr.count("\n") == 1 and "actions-toolkit" in result.stderr, result.stderr
