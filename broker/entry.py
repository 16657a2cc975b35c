"""The `stagegate-broker` command: says which extra to install when the broker's half is missing,
instead of dying on the first import (`pip install stagegate` alone gives the shared core only)."""

from __future__ import annotations

import re
import sys
from importlib import metadata


def missing_requirements(extra: str, dist: str = "stagegate") -> list[str]:
    """The distributions `dist[extra]` requires that are not installed (none when `dist` itself is not
    installed, e.g. when run from a source checkout)."""
    try:
        requirements = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    wanted = [re.match(r"[A-Za-z0-9._-]+", req).group(0) for req in requirements
              if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", req)]
    return [name for name in wanted if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def main() -> int:
    missing = missing_requirements("broker")
    if missing:
        print(f"stagegate-broker needs the broker extra: pip install 'stagegate[broker]' "
              f"(missing: {', '.join(missing)})", file=sys.stderr)
        return 2
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
