"""Which files `npm pack` puts in a tarball: npm-packlist 10 and ignore-walk, ported.

The rule sets and their order are npm's own: defaults, package.json "files", .npmignore,
.gitignore (only without the other two), then the strict rules (always-included and
always-excluded files, main, browser and bin). Bundled dependencies are walked after.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from pathlib import Path

from .minimatch import Minimatch

DEFAULT_RULES = "<default rules>"
STRICT_RULES = "<strict rules>"

DEFAULTS = [".npmignore", ".gitignore", "**/.git", "**/.svn", "**/.hg", "**/CVS", "**/.git/**", "**/.svn/**",
            "**/.hg/**", "**/CVS/**", "/.lock-wscript", "/.wafpickle-*", "/build/config.gypi", "npm-debug.log",
            "**/.npmrc", ".*.swp", ".DS_Store", "**/.DS_Store/**", "._*", "**/._*/**", "*.orig",
            "/archived-packages/**"]
STRICT_DEFAULTS = ["/.git"]
ROOT_IGNORE_FILES = [DEFAULT_RULES, "package.json", ".npmignore", ".gitignore", STRICT_RULES]
CHILD_IGNORE_FILES = [DEFAULT_RULES, ".npmignore", ".gitignore", STRICT_RULES]


def _rules(text: str) -> list[Minimatch]:
    lines = [line.strip() for line in text.splitlines()]
    return [Minimatch.compile(line) for line in lines if line and not line.startswith("#")]


def normalized_bin(manifest: dict) -> dict[str, str]:
    """package.json "bin" as npm normalizes it: a map of name to a clean relative path."""
    raw = manifest.get("bin")
    if isinstance(raw, str):
        name = str(manifest.get("name", "")).split("/")[-1]
        raw = {name: raw}
    if not isinstance(raw, dict):
        return {}
    return {str(k): posixpath.normpath(str(v)).lstrip("/") for k, v in raw.items() if isinstance(v, str)}


class Walker:
    def __init__(self, path: str, *, ignore_files: list[str], manifest: dict | None = None,
                 parent: "Walker | None" = None, exact: bool = False, is_package: bool = False,
                 required_files: list[str] | None = None, result: set[str] | None = None) -> None:
        self.path = path
        self.basename = posixpath.basename(path)
        self.parent = parent
        self.root = parent.root if parent else path
        self.result = parent.result if parent else (result if result is not None else set())
        self.ignore_files = ignore_files
        self.rules: dict[str, list[Minimatch] | None] = {}
        self.exact = exact
        self.is_package = is_package
        self.manifest = manifest or {}
        self.required_files = list(required_files or [])
        self.rules[DEFAULT_RULES] = _rules("\n".join(DEFAULTS)) if DEFAULT_RULES in ignore_files else None
        if not is_package:
            self.rules[STRICT_RULES] = _rules("\n".join(STRICT_DEFAULTS + [f"!{f}" for f in self.required_files]))

    # --- ignore files ---------------------------------------------------------------------
    def _read_ignore_file(self, name: str) -> None:
        if name == "package.json" and self.is_package:
            self._process_package()
            return
        with open(os.path.join(self.path, name), encoding="utf-8", errors="replace") as handle:
            self.rules[name] = _rules(handle.read())

    def _process_package(self) -> None:
        files = self.manifest.get("files")
        ignores: list[str] = []
        strict = STRICT_DEFAULTS + ["!/package.json", "!/readme{,.*[^~$]}", "!/copying{,.*[^~$]}",
                                    "!/license{,.*[^~$]}", "!/licence{,.*[^~$]}", "/.git", "/node_modules",
                                    ".npmrc", "/package-lock.json", "/yarn.lock", "/pnpm-lock.yaml", "/bun.lockb"]
        if isinstance(files, list):
            for entry in files:
                if not isinstance(entry, str):
                    continue
                if entry.startswith("./"):
                    entry = entry[1:]
                if entry.endswith("/*"):
                    entry += "*"
                inverse = f"!{entry}"
                target = os.path.join(self.path, entry.lstrip("!"))
                try:
                    st = os.lstat(target)
                except OSError:
                    ignores.append(inverse)
                    continue
                if stat.S_ISREG(st.st_mode):
                    strict.insert(0, inverse)
                    self.required_files.append(entry[1:] if entry.startswith("/") else entry)
                elif stat.S_ISDIR(st.st_mode):
                    ignores += [inverse, f"{inverse}/**"]
            self.rules["package.json"] = _rules("\n".join(["*", *ignores]))
        browser, main = self.manifest.get("browser"), self.manifest.get("main")
        if isinstance(browser, str):
            strict.append(f"!/{browser}")
        if isinstance(main, str):
            strict.append(f"!/{main}")
        for target in normalized_bin(self.manifest).values():
            strict.append(f"!/{target}")
        self.rules[STRICT_RULES] = _rules("\n".join(strict))

    # --- walking --------------------------------------------------------------------------
    def walk(self) -> set[str]:
        entries = os.listdir(self.path)
        if not entries:
            return self.result
        for name in self.ignore_files:
            if name not in (DEFAULT_RULES, STRICT_RULES) and name in entries:
                self._read_ignore_file(name)
        if self.rules.get("package.json"):
            self.rules[".npmignore"] = None
            self.rules[".gitignore"] = None
        elif self.rules.get(".npmignore"):
            self.rules[".gitignore"] = None
        for entry in entries:
            as_file, as_dir = self.filter_entry(entry), self.filter_entry(entry, partial=True)
            if (as_file or as_dir) and "*" not in entry:
                self._visit(entry, as_file, as_dir)
        return self.result

    def _visit(self, entry: str, as_file: bool, as_dir: bool) -> None:
        absolute = f"{self.path}/{entry}"
        st = os.lstat(absolute)
        if stat.S_ISREG(st.st_mode):
            if as_file:
                self.result.add(absolute[len(self.root) + 1:])
        elif stat.S_ISDIR(st.st_mode) and as_dir:
            self._child(entry, as_file or self.filter_entry(entry + "/")).walk()

    def _child(self, entry: str, exact: bool) -> "Walker":
        # Required files pass to a child only when they sit directly inside it (as npm does).
        required = [posixpath.relpath(f, entry) for f in self.required_files
                    if posixpath.relpath(entry, f) == ".."]
        return Walker(f"{self.path}/{entry}", ignore_files=CHILD_IGNORE_FILES, parent=self, exact=exact,
                      required_files=required)

    def filter_entry(self, entry: str, partial: bool = False, entry_basename: str | None = None) -> bool:
        included = True
        if self.parent is not None:
            included = self.parent.filter_entry(f"{self.basename}/{entry}", partial, entry_basename or entry)
            if not included and not self.exact:
                return False
        for name in self.ignore_files:
            for rule in self.rules.get(name) or ():
                if rule.negate == included:
                    continue
                relative_rule = entry_basename is not None and any(
                    len(part) <= (1 if part[-1] else 2) for part in rule.glob_parts)
                match = (rule.match("/" + entry) or rule.match(entry) or (partial and (
                    rule.match("/" + entry + "/") or rule.match(entry + "/") or
                    (rule.negate and (rule.match("/" + entry, True) or rule.match(entry, True))) or
                    (relative_rule and (
                        rule.match("/" + entry_basename + "/") or rule.match(entry_basename + "/") or
                        (rule.negate and (rule.match("/" + entry_basename, True) or
                                          rule.match(entry_basename, True))))))))
                if match:
                    included = rule.negate
        return included


def _bundled(manifest: dict) -> list[str]:
    bundle = manifest.get("bundleDependencies", manifest.get("bundledDependencies"))
    if bundle is True:
        return list((manifest.get("dependencies") or {}).keys())
    return [b for b in bundle if isinstance(b, str)] if isinstance(bundle, list) else []


def _find_installed(name: str, start: Path, root: Path) -> Path | None:
    """Node's lookup: node_modules/<name> from `start` up to the project root."""
    current = start
    while True:
        candidate = current / "node_modules" / name
        if (candidate / "package.json").is_file():
            return candidate
        if current == root or current == current.parent:
            return None
        current = current.parent


def packlist(directory: Path) -> list[str]:
    """The paths (relative, "/"-separated) `npm pack` would include for this package directory."""
    root = str(directory.resolve()).replace("\\", "/")
    manifest = json.loads((directory / "package.json").read_text())
    result: set[str] = set()
    Walker(root, ignore_files=ROOT_IGNORE_FILES, manifest=manifest, is_package=True, result=result).walk()
    seen: set[Path] = set()
    queue = [(directory.resolve(), name) for name in _bundled(manifest)]
    dev = set((manifest.get("devDependencies") or {})) - set((manifest.get("dependencies") or {}))
    peer = set(manifest.get("peerDependencies") or {})
    while queue:
        parent, name = queue.pop(0)
        if parent == directory.resolve() and (name in dev or name in peer):
            continue
        found = _find_installed(name, parent, directory.resolve())
        if found is None or found.resolve() in seen:
            continue
        seen.add(found.resolve())
        dep_manifest = json.loads((found / "package.json").read_text())
        dep_result: set[str] = set()
        Walker(str(found).replace("\\", "/"), ignore_files=["package.json", STRICT_RULES], manifest=dep_manifest,
               is_package=True, result=dep_result).walk()
        prefix = found.relative_to(directory.resolve()).as_posix()
        result.update(f"{prefix}/{f}" for f in dep_result)
        for child in list((dep_manifest.get("dependencies") or {})) + list(dep_manifest.get("optionalDependencies") or {}):
            queue.append((found, child))
    return sorted(result)
