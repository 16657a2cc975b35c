"""The fields of a version that decide what an install does, and the check that the publish
document tells the same story about them as the tarball's own package.json.

An install reads two things: the version document the registry serves (dependencies, bins, os/cpu,
whether there are install scripts…) and the files of the tarball. A reviewer reads the tarball
(`npm stage download`). If the two disagree ("manifest confusion"), what installs is not what was
reviewed. So every field in `INSTALL_FIELDS` of the document must be either the tarball's own value
or the value `npm publish` derives from it, or the publish is refused (400 `manifest.mismatch`,
naming the field and both values).

Why refuse instead of serving the fields from the tarball: the publisher is the one sending the
document, so a refusal reaches the only party who can fix it, at the moment they can; nothing is
stored that differs from what they sent; and the registry does not become a second implementation
of npm's normalization whose output could silently differ from what the publisher's client showed.
A stock client never sees the refusal: `npm publish` sends the package.json it packed, normalized
by `@npmcli/package-json` (npm pkg fix steps, then the publish "prepare" steps), and
`npm_publish_view` repeats exactly those normalizations for these fields (checked against npm 11's
own code in tests/unit/test_manifest_agreement.py). Clients that send the package.json unchanged
(yarn, pnpm, the stagegate action) match the tarball's own value.

Fields npm adds that do not change an install (`_id`, `dist`, `_npmVersion`, `_nodeVersion`,
`_npmUser`, `gitHead`, `readme`, `types`, `contributors` …) are not compared. `hasInstallScript` and
`_hasShrinkwrap` are the registry's to say: they are computed from the tarball, never taken from
the document (`registry_fields`).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from .tarball import PackageContents


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()

# Compared as maps or lists: absent, null, {} and [] all mean "none", to npm and to the others.
# ("bundle" is each half of the bundleDependencies/bundledDependencies pair.)
_COLLECTIONS = {"dependencies", "optionalDependencies", "peerDependencies", "peerDependenciesMeta", "scripts",
                "bin", "directories", "man", "os", "cpu", "libc", "engines", "bundle"}
_DEPENDENCY_MAPS = {"dependencies", "optionalDependencies", "peerDependencies"}
_BUNDLE_KEYS = ("bundleDependencies", "bundledDependencies")

# Every field that changes what an install does or runs. `exports` is compared with its key order:
# the first matching condition wins in Node, so reordering conditions changes what loads.
INSTALL_FIELDS = ("name", "version", "dependencies", "optionalDependencies", "peerDependencies",
                  "peerDependenciesMeta", "bundleDependencies", "scripts", "bin", "directories", "man", "os",
                  "cpu", "libc", "engines", "main", "exports", "type", "gypfile")

_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")


@dataclass(frozen=True)
class Mismatch:
    field: str
    document: Any
    tarball: Any

    def sentence(self, version: str) -> str:
        return (f"versions[{version!r}].{self.field} does not match the tarball's package.json: the document "
                f"says {_brief(self.document)}, the tarball says {_brief(self.tarball)}. An install would "
                "not do what a review of the tarball shows; publish the document built from the same "
                "package.json as the tarball (npm publish, npm stage publish)")


def disagreement(document: dict[str, Any], contents: PackageContents) -> Mismatch | None:
    """The first install field on which the document and the tarball disagree, or None.

    Raises RecursionError for values nested past what the comparison can walk.
    """
    raw = contents.manifest
    derived = npm_publish_view(raw, contents.files)
    for field in INSTALL_FIELDS:
        ours = _value(document, field)
        accepted = (_value(raw, field), _value(derived, field))
        if not any(_same(field, ours, theirs) for theirs in accepted):
            return Mismatch(field, ours, accepted[0])
    return None


def registry_fields(manifest: dict[str, Any], files: frozenset[str]) -> dict[str, Any]:
    """`_hasShrinkwrap` and `hasInstallScript` (present only when true) as the tarball makes them.

    npm trusts both when it installs: a false `hasInstallScript` keeps it from reading the scripts of
    an installed package.json, a false `_hasShrinkwrap` from honouring npm-shrinkwrap.json.
    """
    scripts = manifest.get("scripts") if isinstance(manifest.get("scripts"), dict) else {}
    runs = any(_truthy(scripts.get(s)) for s in _INSTALL_SCRIPTS) or _builds_with_gyp(manifest, scripts, files)
    return {"_hasShrinkwrap": "npm-shrinkwrap.json" in files, **({"hasInstallScript": True} if runs else {})}


def _value(manifest: dict[str, Any], field: str) -> Any:
    if field == "bundleDependencies":
        return tuple(manifest.get(k, MISSING) for k in _BUNDLE_KEYS)
    return manifest.get(field, MISSING)


def _same(field: str, ours: Any, theirs: Any) -> bool:
    if field in _DEPENDENCY_MAPS and isinstance(ours, dict) and isinstance(theirs, dict):
        ours, theirs = _hosted_specs(ours), _hosted_specs(theirs)
    return _canonical(field, ours) == _canonical(field, theirs)


def _canonical(field: str, value: Any) -> str:
    if field == "bundleDependencies":  # false bundles nothing, like an empty list
        return "|".join("(none)" if v is False else _canonical("bundle", v) for v in value)
    if field in _COLLECTIONS and (value is MISSING or value is None or value == {} or value == []):
        return "(none)"
    if value is MISSING:
        return "(absent)"
    if field == "man" and isinstance(value, list):
        value = sorted(value, key=str)  # npm lists them in the order the disk returns them
    return json.dumps(value, sort_keys=field != "exports", separators=(",", ":"))


def _brief(value: Any, limit: int = 160) -> str:
    if isinstance(value, tuple):  # the bundleDependencies pair
        value = next((v for v in value if v is not MISSING), MISSING)
    text = "(absent)" if value is MISSING else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit] + "…"


# --- What `npm publish` sends for a package.json ----------------------------------------------
# @npmcli/package-json 7 (npm 11): publish runs `fix` (npm pkg fix) on the file, then `prepare`.
# Each runs its file-reading steps first and the pure ones after; the order below is theirs.


def npm_publish_view(raw: dict[str, Any], files: frozenset[str]) -> dict[str, Any]:
    """The install fields of `raw` as npm 11 publishes them from a directory holding `files`."""
    data = {k: raw[k] for k in (*INSTALL_FIELDS, "bundledDependencies", "devDependencies") if k in raw}
    _normalize_bin(data)  # fix: binRefs
    _fix_bundle(data, delete_false=False)  # fix: bundleDependencies
    _clean_scripts(data)  # fix: scriptpath
    _fix_dependencies(data)  # fix: fixDependencies
    _derive_gyp_and_server(data, files)  # prepare: gypfile, serverjs
    _derive_man(data, files)  # prepare: mans
    if _truthy(_get(data.get("directories"), "bin")) and not _truthy(data.get("bin")):
        _derive_bin(data, files)  # prepare: binDir
    else:
        _normalize_bin(data)  # prepare: binRefs
    _clean_name_and_version(data)  # prepare: normalizeData (fixName, fixVersionField)
    if data.get("bundleDependencies", MISSING) is MISSING and "bundledDependencies" in data:
        data["bundleDependencies"] = data["bundledDependencies"]  # prepare: bundledDependencies
    data.pop("bundledDependencies", None)
    _fix_bundle(data, delete_false=True)  # prepare: bundleDependencies, bundleDependenciesDeleteFalse
    _clean_scripts(data)  # prepare: scriptpath
    _fix_dependencies(data)  # prepare: normalizeData
    _bundle_into_dependencies(data)  # prepare: normalizeData (fixBundleDependenciesField)
    return data


def _truthy(value: Any) -> bool:
    """JavaScript truthiness: an empty object or array is true."""
    if value is MISSING or value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == value and value != 0
    return True


def _get(container: Any, key: str) -> Any:
    return container.get(key, MISSING) if isinstance(container, dict) else MISSING


def _secure_path(ref: str) -> str:
    """secureAndUnixifyPath: a relative, normalized path that cannot climb out ('' when empty)."""
    unix = re.sub(r"[\\:]", "/", ref)
    joined = posixpath.normpath("/" + unix.lstrip("/"))
    if unix.endswith("/") and joined != "/":
        joined += "/"  # Node's path.join keeps a trailing separator
    return joined.lstrip("/")


def _basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def _normalize_bin(data: dict[str, Any]) -> None:
    bin_ = data.get("bin", MISSING)
    if _truthy(bin_):
        if isinstance(bin_, str) and _truthy(data.get("name")) and isinstance(data["name"], str):
            bin_ = {data["name"]: bin_}
        elif isinstance(bin_, list):
            bin_ = {_basename(k): k for k in bin_ if isinstance(k, str)}
        if isinstance(bin_, dict):
            data["bin"] = _normalized_bins(bin_)
            if not data["bin"]:
                del data["bin"]
            return
    data.pop("bin", None)


def _normalized_bins(bins: dict[str, Any]) -> dict[str, str]:
    out = dict(bins)
    for key in list(bins):
        if key not in out:
            continue
        target = out[key]
        base = _basename(_secure_path(key))
        secured = _secure_path(target) if isinstance(target, str) else ""
        if not base or not secured:
            del out[key]
            continue
        if base != key:
            del out[key]
        out[base] = secured
    return out


def _fix_bundle(data: dict[str, Any], *, delete_false: bool) -> None:
    bundle = data.get("bundleDependencies", MISSING)
    if bundle is False and not delete_false:
        data["bundleDependencies"] = []
    elif bundle is True:
        deps = data.get("dependencies")
        data["bundleDependencies"] = list(deps) if isinstance(deps, dict) else []
    elif isinstance(bundle, dict):
        data["bundleDependencies"] = list(bundle)
    elif isinstance(bundle, list):
        pass
    elif "bundleDependencies" in data:
        del data["bundleDependencies"]


_BIN_PREFIX = re.compile(r"^(\.[/\\])?node_modules[/\\].bin[\\/]")


def _clean_scripts(data: dict[str, Any]) -> None:
    scripts = data.get("scripts", MISSING)
    if scripts is MISSING or scripts is None:
        return
    if isinstance(scripts, dict):
        data["scripts"] = {k: _BIN_PREFIX.sub("", v, count=1) for k, v in scripts.items() if isinstance(v, str)}
    elif not isinstance(scripts, list):
        del data["scripts"]


def _fix_dependencies(data: dict[str, Any]) -> None:
    for kind in ("dependencies", "devDependencies", "optionalDependencies"):
        value = data.get(kind)
        if _truthy(value) and isinstance(value, str):
            value = re.split(r"[\n\r\s\t ,]+", value.strip())
        if _truthy(value) and isinstance(value, list):
            data[kind] = _dependency_list(value)
    if "dependencies" in data:
        deps = data["dependencies"]
        if not _truthy(deps) or not isinstance(deps, dict):
            del data["dependencies"]
        else:
            data["dependencies"] = {k: v for k, v in deps.items() if isinstance(v, str)}


def _dependency_list(items: list[Any]) -> dict[str, str]:
    out = {}
    for item in items:
        if isinstance(item, str):
            name, *rest = re.split(r"(:?[@\s><=])", item.strip())
            out[name] = re.sub(r"^@", "", "".join(rest)).strip()
    return out


def _derive_gyp_and_server(data: dict[str, Any], files: frozenset[str]) -> None:
    scripts = data.get("scripts") if _truthy(data.get("scripts")) and isinstance(data.get("scripts"), dict) else {}
    scripts = dict(scripts)
    if _builds_with_gyp(data, scripts, files, any_gyp=True):
        scripts["install"] = "node-gyp rebuild"
        data["scripts"], data["gypfile"] = scripts, True
    if not _truthy(scripts.get("start")) and "server.js" in files:
        scripts["start"] = "node server.js"
        data["scripts"] = scripts


def _builds_with_gyp(data: dict[str, Any], scripts: dict[str, Any], files: frozenset[str], *,
                     any_gyp: bool = False) -> bool:
    """npm runs `node-gyp rebuild` for a package with a gyp file and no install script of its own.

    At publish npm looks for any root `*.gyp` file; at install, for `binding.gyp`.
    """
    if _truthy(scripts.get("install")) or _truthy(scripts.get("preinstall")) or data.get("gypfile") is False:
        return False
    roots = {f.casefold() for f in files if "/" not in f and not f.startswith(".")}
    return any(f.endswith(".gyp") for f in roots) if any_gyp else "binding.gyp" in roots


def _under(files: frozenset[str], directory: str) -> list[str]:
    """Paths below `directory`, files and the directories between, as glob('**') lists them."""
    prefix = directory.rstrip("/") + "/" if directory.rstrip("/") else ""
    found = set()
    for path in files:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix):].split("/")
        if any(p.startswith(".") for p in parts):
            continue  # glob skips dot files and dot directories
        found.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(found)


def _derive_bin(data: dict[str, Any], files: frozenset[str]) -> None:
    directory = data["directories"]["bin"]
    if not isinstance(directory, str):
        return
    bin_dir = _secure_path(directory)
    data["bin"] = {_basename(path): f"{bin_dir}/{_secure_path(path)}" for path in _under(files, bin_dir)}


def _derive_man(data: dict[str, Any], files: frozenset[str]) -> None:
    directory = _get(data.get("directories"), "man")
    if _truthy(directory) and isinstance(directory, str) and not _truthy(data.get("man")):
        man_dir = _secure_path(directory)
        data["man"] = [f"{man_dir.rstrip('/')}/{p}".lstrip("/") for p in _under(files, man_dir)
                       if re.fullmatch(r"[^/]*\.[0-9]", _basename(p))]
    man = data.get("man", MISSING)
    if _truthy(man):
        mans = [_secure_path(m) for m in (man if isinstance(man, list) else [man]) if isinstance(m, str)]
        if mans:
            data["man"] = mans
            return
    data.pop("man", None)


def _clean_name_and_version(data: dict[str, Any]) -> None:
    if isinstance(data.get("name"), str):
        data["name"] = data["name"].strip()
    version = data.get("version")
    if isinstance(version, str):  # semver.clean(version, loose): build metadata is dropped
        data["version"] = re.sub(r"^[=v]+", "", version.strip()).split("+", 1)[0]


def _bundle_into_dependencies(data: dict[str, Any]) -> None:
    bundle = data.get("bundleDependencies", MISSING)
    if bundle is MISSING:
        return
    if _truthy(bundle) and not isinstance(bundle, list):
        del data["bundleDependencies"]
        return
    if not _truthy(bundle):
        return
    data["bundleDependencies"] = [b for b in bundle if isinstance(b, str) and b]
    if data["bundleDependencies"]:
        deps = data.get("dependencies") if _truthy(data.get("dependencies")) else {}
        data["dependencies"] = {**{b: "*" for b in data["bundleDependencies"]}, **deps}


# --- Git dependency specs that name the same repository and commit ---------------------------
# npm rewrites a hosted git spec to one canonical form ("user/repo" → "github:user/repo"); any
# form naming the same host, repository and committish fetches the same code.

_HOSTS = {"github": "github.com", "gitlab": "gitlab.com", "bitbucket": "bitbucket.org"}
_SHORTCUT = re.compile(r"^(github|gitlab|bitbucket):([\w.-]+)/([\w.-]+?)(?:\.git)?(#.*)?$")
_SHORTHAND = re.compile(r"^([\w-]+)/([\w.-]+?)(?:\.git)?(#.*)?$")
_URL = re.compile(r"^(?:git\+)?(?:https?|ssh|git\+ssh|git)://(?:[^@/]+@)?(github\.com|gitlab\.com|bitbucket\.org)"
                  r"[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?(#.*)?$")
_SCP = re.compile(r"^(?:git\+ssh://)?git@(github\.com|gitlab\.com|bitbucket\.org):"
                  r"([\w.-]+)/([\w.-]+?)(?:\.git)?(#.*)?$")


def hosted_key(spec: str) -> tuple[str, str, str, str] | None:
    """(host, user, project, committish) of a hosted git spec, or None for anything else."""
    if (m := _SHORTCUT.match(spec)):
        return _HOSTS[m[1]], m[2], m[3], m[4] or ""
    if (m := _SHORTHAND.match(spec)) and not spec.startswith("@"):
        return "github.com", m[1], m[2], m[3] or ""
    if (m := _URL.match(spec)) or (m := _SCP.match(spec)):
        return m[1], m[2], m[3], m[4] or ""
    return None


def _hosted_specs(deps: dict[str, Any]) -> dict[str, Any]:
    """The map with each hosted git spec replaced by what it names."""
    return {k: list(hosted_key(v) or (v,)) if isinstance(v, str) else v for k, v in deps.items()}
