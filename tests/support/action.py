"""Running stagegate-action as GitHub runs a container action: INPUT_* and the runner's files."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ActionRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    def __str__(self) -> str:
        return f"rc={self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def parse_outputs(text: str) -> dict[str, str]:
    outputs, lines = {}, text.splitlines()
    i = 0
    while i < len(lines):
        name, _, delimiter = lines[i].partition("<<")
        value = []
        i += 1
        while i < len(lines) and lines[i] != delimiter:
            value.append(lines[i])
            i += 1
        outputs[name] = "\n".join(value)
        i += 1
    return outputs


def github_env(workspace: Path, runner: Path, inputs: dict[str, str], extra: dict[str, str] | None = None) -> dict:
    runner.mkdir(parents=True, exist_ok=True)
    (runner / "output").write_text("")
    (runner / "summary").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACTIONS_", "INPUT_", "RUNNER_"))}
    env.update(GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(workspace), GITHUB_OUTPUT=str(runner / "output"),
               GITHUB_STEP_SUMMARY=str(runner / "summary"), GITHUB_RUN_ID="777", GITHUB_RUN_ATTEMPT="1",
               GITHUB_REPOSITORY="acme/widget")
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    env.update(extra or {})
    return env


def run_action(workspace: Path, runner: Path, inputs: dict[str, str], extra: dict[str, str] | None = None,
               command: list[str] | None = None) -> ActionRun:
    env = github_env(workspace, runner, inputs, extra)
    proc = subprocess.run(command or [sys.executable, "-m", "action.main"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    return ActionRun(proc.returncode, proc.stdout, proc.stderr, parse_outputs((runner / "output").read_text()),
                     (runner / "summary").read_text())
