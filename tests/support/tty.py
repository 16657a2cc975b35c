"""Interactive npm commands (adduser, enable-2fa) driven under a pseudo-terminal."""

from __future__ import annotations

import pexpect

from .npm import Npm, npm_command


def spawn(npm: Npm, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    command = npm_command()
    return pexpect.spawn(command[0], [*command[1:], *args], env=npm.env(env), cwd=str(npm.home),
                         encoding="utf-8", timeout=60, dimensions=(40, 200))


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    output = child.before or ""
    child.close()
    return child.exitstatus, output
