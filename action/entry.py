"""The `stagegate-action` command: says which extra to install when the action's half is missing,
instead of dying on the first import (`pip install stagegate` alone gives the shared core only).
The check itself is broker/entry.py's (one module, importing nothing of the broker beyond it)."""

from __future__ import annotations

import sys

from broker.entry import missing_requirements  # broker/__init__ is empty: this loads only the check


def main() -> int:
    missing = missing_requirements("action")
    if missing:
        print(f"stagegate-action needs the action extra: pip install 'stagegate[action]' "
              f"(missing: {', '.join(missing)})", file=sys.stderr)
        return 2
    from .main import main as action_main

    return action_main()


if __name__ == "__main__":
    sys.exit(main())
