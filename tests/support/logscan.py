"""After the suite: every log a broker process wrote, searched for every secret the suite used.

Tokens are found two ways: by their shape (`sg_` and 43 url-safe characters, which is how the broker
makes every token) and literally, from every npmrc the suite wrote. JWTs are found by shape, the
test accounts' password literally.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.accounts import PASSWORD

TOKEN_SHAPE = re.compile(r"sg_[A-Za-z0-9_\-]{43}")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")
NPMRC_TOKEN = re.compile(r":_authToken=(\S+)")


def tokens_in_npmrcs(root: Path) -> set[str]:
    found: set[str] = set()
    for path in root.rglob("*npmrc"):
        if path.is_file():
            found.update(NPMRC_TOKEN.findall(path.read_text(errors="replace")))
    return found


def broker_logs(root: Path) -> list[Path]:
    return sorted(root.rglob("broker-*.log"))


def leaks(root: Path) -> list[str]:
    """One line per secret found in a broker log under `root` (never the secret itself)."""
    literals = tokens_in_npmrcs(root) | {PASSWORD}
    found = []
    for log in broker_logs(root):
        text = log.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            what = [name for name, pattern in (("token", TOKEN_SHAPE), ("JWT", JWT_SHAPE)) if pattern.search(line)]
            what += ["an npmrc token or the password" for literal in literals if literal and literal in line][:1]
            found += [f"{log.name}:{number}: {kind}" for kind in what]
    return found
