"""Running the pinned npm CLI (installed by scripts/bootstrap into .tools/npm) as a given user."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NPM_CLI = ROOT / ".tools" / "npm" / "node_modules" / "npm" / "bin" / "npm-cli.js"
# scripts/bootstrap --with-npm puts Node 22 there (npm's compile cache makes each command cheaper);
# on a machine it has no build for, the machine's node.
_LOCAL_NODE = ROOT / ".tools" / "node" / "bin" / "node"
NODE = str(_LOCAL_NODE) if _LOCAL_NODE.exists() else "node"
NPM_VERSION = "11.19.1"

# Variables of the machine or CI that would change what npm does (OIDC detection, configs).
_STRIPPED = ("GITHUB_", "ACTIONS_", "NPM_", "npm_", "GITLAB", "CIRCLE", "RUNNER_", "NODE_AUTH_TOKEN")


@dataclass
class NpmResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"npm {' '.join(self.args)} → {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def base_env(home: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED)}
    env.update(HOME=str(home), npm_config_cache=str(cache), npm_config_update_notifier="false",
               npm_config_fund="false", npm_config_audit="false", npm_config_loglevel="warn",
               NO_COLOR="1", npm_config_color="false")
    return env


def npm_command() -> list[str]:
    if not NPM_CLI.exists():
        raise RuntimeError(f"the pinned npm is missing at {NPM_CLI}: run scripts/bootstrap --with-npm")
    return [NODE, str(NPM_CLI)]


@dataclass
class Npm:
    """npm bound to one registry, one user config (one account's credentials) and one home."""

    registry: str
    userconfig: Path
    home: Path
    cache: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = base_env(self.home, self.cache)
        env["npm_config_userconfig"] = str(self.userconfig)
        env["npm_config_registry"] = self.registry
        env.update(extra or {})
        return env

    def __call__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 120) -> NpmResult:
        proc = subprocess.run([*npm_command(), *args], cwd=cwd or self.home, env=self.env(env),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return NpmResult(list(args), proc.returncode, proc.stdout, proc.stderr)
