"""Package directories that exercise every rule of what `npm pack` includes."""

from __future__ import annotations

import json
import os
from pathlib import Path

JS = "module.exports = 1\n"


def _pkg(name: str = "fixture", **fields) -> str:
    return json.dumps({"name": name, "version": "1.0.0", **fields}, indent=2)


FIXTURES: dict[str, dict] = {
    "minimal": {"package.json": _pkg(), "index.js": JS},
    "files-field": {
        "package.json": _pkg(files=["lib", "bin/cli.js"]), "lib/a.js": JS, "lib/sub/b.js": JS,
        "bin/cli.js": JS, "bin/other.js": JS, "src/a.ts": "x", "test/a.test.js": JS, "index.js": JS},
    "files-glob": {
        "package.json": _pkg(files=["dist/**/*.js", "types/*.d.ts"]), "dist/a.js": JS, "dist/a.js.map": "{}",
        "dist/deep/b.js": JS, "types/a.d.ts": "x", "types/a.ts": "x", "notes.md": "x"},
    "files-dot-slash-and-trailing-slash": {
        "package.json": _pkg(files=["./lib/", "docs/*"]), "lib/a.js": JS, "docs/guide.md": "x",
        "docs/img/x.png": "png", "other.js": JS},
    "npmignore": {
        "package.json": _pkg(), ".npmignore": "test/\n*.log\n# comment\n\nfixtures", "index.js": JS,
        "test/a.js": JS, "debug.log": "x", "lib/fixtures/x.json": "{}", "lib/a.js": JS},
    "gitignore-fallback": {
        "package.json": _pkg(), ".gitignore": "dist/\ncoverage\n*.tmp\n!keep.tmp", "index.js": JS,
        "dist/a.js": JS, "coverage/lcov.info": "x", "a.tmp": "x", "keep.tmp": "x"},
    "npmignore-beats-gitignore": {
        "package.json": _pkg(), ".npmignore": "src/", ".gitignore": "dist/", "src/a.ts": "x",
        "dist/a.js": JS, "index.js": JS},
    "nested-npmignore": {
        "package.json": _pkg(), "lib/.npmignore": "*.spec.js\ninternal/", "lib/a.js": JS, "lib/a.spec.js": JS,
        "lib/internal/x.js": JS, "lib/deep/c.spec.js": JS},
    "always-included": {
        "package.json": _pkg(files=["lib"]), "README.md": "# r", "LICENSE": "MIT", "licence.txt": "x",
        "COPYING": "x", "CHANGELOG.md": "x", "lib/a.js": JS, "lib/README.md": "x", "readme.md~": "x"},
    "always-excluded": {
        "package.json": _pkg(), "index.js": JS, ".git/config": "x", "node_modules/dep/package.json": _pkg("dep"),
        ".npmrc": "x=1", "package-lock.json": "{}", "yarn.lock": "x", "pnpm-lock.yaml": "x", ".DS_Store": "x",
        "a.orig": "x", ".a.swp": "x", "npm-debug.log": "x", "._x": "x", "sub/.npmrc": "x",
        "sub/.git": "x", "sub/keep.js": JS, "CVS/x": "x", ".hg/x": "x", ".svn/x": "x"},
    "main-browser-outside-files": {
        "package.json": _pkg(files=["lib"], main="index.js", browser="browser.js"), "index.js": JS,
        "browser.js": JS, "lib/a.js": JS, "other.js": JS},
    "bin-object": {
        "package.json": _pkg(files=["lib"], bin={"tool": "./bin/tool.js"}), "bin/tool.js": "#!/usr/bin/env node\n",
        "bin/helper.js": JS, "lib/a.js": JS},
    "bin-string": {"package.json": _pkg("@acme/tool", bin="cli.js"), "cli.js": "#!/usr/bin/env node\n",
                   "index.js": JS},
    "scoped-deep": {
        "package.json": _pkg("@acme/deep"), "a/b/c/d/e.js": JS, "a/b/c/x.json": "{}", "Z.md": "x",
        "a/B.js": JS, "_under.js": JS, "-dash.js": JS, "1num.js": JS},
    "bundled-dependencies": {
        "package.json": _pkg(dependencies={"dep": "1.0.0", "other": "1.0.0"}, bundleDependencies=["dep"]),
        "index.js": JS, "node_modules/dep/package.json": _pkg("dep", dependencies={"sub": "1.0.0"}),
        "node_modules/dep/index.js": JS, "node_modules/dep/.npmignore": "ignored.js",
        "node_modules/dep/ignored.js": JS, "node_modules/sub/package.json": _pkg("sub"),
        "node_modules/sub/sub.js": JS, "node_modules/other/package.json": _pkg("other"),
        "node_modules/other/o.js": JS},
    "executable-files": {"package.json": _pkg(), "run.sh": "#!/bin/sh\n", "index.js": JS},
    "empty-and-star-names": {"package.json": _pkg(), "index.js": JS, "empty/.keep": "", "a*b.js": JS},
    "gitignore-in-subdir-with-files": {
        "package.json": _pkg(files=["lib"]), "lib/.gitignore": "gen/", "lib/gen/x.js": JS, "lib/a.js": JS},
    "long-paths": {
        "package.json": _pkg(), "index.js": JS,
        ("very-long-directory-name-" * 4) + "/" + ("nested-" * 8) + "/file-with-a-long-name.js": JS},
}

EXECUTABLE = {"executable-files": ["run.sh"]}


def write_fixture(root: Path, name: str) -> Path:
    directory = root / name
    for rel, content in FIXTURES[name].items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, 0o644)
    for rel in EXECUTABLE.get(name, []):
        os.chmod(directory / rel, 0o755)
    return directory
