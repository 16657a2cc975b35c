"""The version document must agree with the tarball's package.json on every install field."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import subprocess
from pathlib import Path

import pytest

from broker.domain.manifest import INSTALL_FIELDS, disagreement, hosted_key, npm_publish_view, registry_fields
from broker.domain.publish import InvalidDocument, parse_publish_document
from broker.domain.tarball import InvalidTarball, PackageContents, read_package
from tests.support.npm import NODE
from tests.support.packages import publish_document, tarball

BASE = {"name": "pkg", "version": "1.0.0"}


def contents(extra: dict, files: tuple[str, ...] = ()) -> PackageContents:
    return PackageContents({**BASE, **extra}, frozenset(("package.json", "index.js", *files)))


# (field, tarball's package.json, document's version, files in the tarball) → accepted?
AGREEMENT = [
    ("dependencies", {}, {"dependencies": {"evil": "*"}}, (), False),
    ("scripts", {}, {"scripts": {"postinstall": "curl x | sh"}}, (), False),
    ("scripts", {"scripts": {"test": "t"}}, {"scripts": {"test": "t", "install": "x"}}, (), False),
    ("scripts", {"scripts": {"postinstall": "a"}}, {"scripts": {"postinstall": "b"}}, (), False),
    ("scripts", {"scripts": {"postinstall": "a"}}, {}, (), False),  # hiding a script from review
    ("dependencies", {"dependencies": {"a": "1"}}, {"dependencies": {"a": "2"}}, (), False),
    ("optionalDependencies", {}, {"optionalDependencies": {"x": "1"}}, (), False),
    ("peerDependencies", {}, {"peerDependencies": {"x": "1"}}, (), False),
    ("peerDependenciesMeta", {}, {"peerDependenciesMeta": {"x": {"optional": True}}}, (), False),
    ("bundleDependencies", {}, {"bundleDependencies": ["x"]}, (), False),
    ("bundleDependencies", {}, {"bundledDependencies": ["x"]}, (), False),
    ("bin", {}, {"bin": {"ls": "index.js"}}, (), False),
    ("bin", {"bin": {"a": "a.js"}}, {"bin": {"a": "b.js"}}, (), False),
    ("directories", {}, {"directories": {"bin": "bin"}}, (), False),
    ("man", {}, {"man": ["man/x.1"]}, (), False),
    ("os", {"os": ["linux"]}, {"os": ["darwin"]}, (), False),
    ("cpu", {}, {"cpu": ["x64"]}, (), False),
    ("libc", {}, {"libc": ["glibc"]}, (), False),
    ("engines", {"engines": {"node": ">=18"}}, {"engines": {"node": ">=0"}}, (), False),
    ("main", {"main": "a.js"}, {"main": "b.js"}, (), False),
    ("exports", {"exports": "./a.js"}, {"exports": "./b.js"}, (), False),
    ("exports", {"exports": {"import": "./a.mjs", "require": "./a.cjs"}},
     {"exports": {"require": "./a.cjs", "import": "./a.mjs"}}, (), False),  # order picks the condition
    ("type", {}, {"type": "module"}, (), False),
    ("gypfile", {}, {"gypfile": True}, (), False),
    ("scripts", {"gypfile": False}, {"gypfile": True, "scripts": {"install": "node-gyp rebuild"}}, ("binding.gyp",),
     False),
    ("scripts", {}, {"scripts": {"install": "node-gyp rebuild"}, "gypfile": True}, (), False),  # no gyp file
    ("name", {"name": "other"}, {}, (), False),
    ("version", {"version": "1.0.1"}, {}, (), False),
    ("dependencies", {"dependencies": {"a": "user/repo"}}, {"dependencies": {"a": "user/other"}}, (), False),
    ("dependencies", {"dependencies": {"a": "user/repo#v1"}}, {"dependencies": {"a": "github:user/repo#v2"}}, (),
     False),
    # what npm derives or normalizes, and what other clients send unchanged
    (None, {"dependencies": {"a": "1"}}, {"dependencies": {"a": "1"}}, (), True),
    (None, {}, {"dependencies": {}, "scripts": {}}, (), True),
    (None, {"bin": "./cli.js"}, {"bin": {"pkg": "cli.js"}}, ("cli.js",), True),
    (None, {"bin": "./cli.js"}, {"bin": "./cli.js"}, ("cli.js",), True),
    (None, {"directories": {"bin": "./bin"}}, {"directories": {"bin": "./bin"}, "bin": {"one": "bin/one"}},
     ("bin/one",), True),
    (None, {}, {"scripts": {"install": "node-gyp rebuild"}, "gypfile": True}, ("binding.gyp",), True),
    (None, {}, {"scripts": {"start": "node server.js"}}, ("server.js",), True),
    (None, {"scripts": {"t": "node_modules/.bin/tap"}}, {"scripts": {"t": "tap"}}, (), True),
    (None, {"bundleDependencies": True, "dependencies": {"a": "1"}},
     {"bundleDependencies": ["a"], "dependencies": {"a": "1"}}, (), True),
    (None, {"bundledDependencies": ["a"]}, {"bundleDependencies": ["a"], "dependencies": {"a": "*"}}, (), True),
    (None, {"dependencies": {"a": "user/repo"}}, {"dependencies": {"a": "github:user/repo"}}, (), True),
    (None, {"dependencies": {"a": "https://github.com/user/repo"}},
     {"dependencies": {"a": "git+https://github.com/user/repo.git"}}, (), True),
    (None, {"version": "v1.0.0"}, {}, (), True),
    (None, {"bundleDependencies": False}, {}, (), True),  # `npm publish x.tgz` prepares without fixing
    (None, {"bundleDependencies": False}, {"bundleDependencies": []}, (), True),
    (None, {"directories": {"man": "man"}}, {"directories": {"man": "man"}, "man": ["man/x.1"]}, ("man/x.1",), True),
]


@pytest.mark.parametrize("field,packed,document,files,accepted", AGREEMENT)
def test_document_agrees_with_the_tarball(field, packed, document, files, accepted):
    mismatch = disagreement({**BASE, **document}, contents(packed, files))
    assert (mismatch is None) is accepted, mismatch
    if not accepted:
        assert mismatch.field == field


def test_a_mismatch_names_the_field_and_both_sides():
    mismatch = disagreement({**BASE, "dependencies": {"evil": "*"}}, contents({}))
    sentence = mismatch.sentence("1.0.0")
    assert "dependencies" in sentence and '{"evil":"*"}' in sentence and "(absent)" in sentence


def test_every_install_field_of_the_issue_is_checked():
    assert set(INSTALL_FIELDS) >= {"name", "version", "dependencies", "optionalDependencies", "peerDependencies",
                                   "peerDependenciesMeta", "bundleDependencies", "scripts", "bin", "directories",
                                   "os", "cpu", "engines", "main", "exports", "type", "gypfile"}


def test_publish_document_with_a_dependency_the_tarball_lacks_is_refused_with_its_code():
    data = tarball(BASE)
    doc = publish_document("pkg", "1.0.0", data=data, manifest_extra={"scripts": {"postinstall": "curl x | sh"}})
    with pytest.raises(InvalidDocument) as refused:
        parse_publish_document(doc, "pkg", 10**6)
    assert refused.value.code == "manifest.mismatch"
    assert "scripts" in str(refused.value)


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deeply_nested_package_json_is_refused_not_crashed(opening):
    data = tarball(BASE, {"package/package.json": (opening * 100_000).encode()})
    with pytest.raises(InvalidTarball, match="nested too deeply"):
        read_package(data)
    with pytest.raises(InvalidDocument, match="nested too deeply"):
        parse_publish_document(publish_document("pkg", "1.0.0", data=data), "pkg", 10**6)


def test_package_json_with_a_huge_integer_is_refused_not_crashed():
    data = tarball(BASE, {"package/package.json": b'{"name": "pkg", "version": "1.0.0", "n": ' + b"9" * 5000 + b"}"})
    with pytest.raises(InvalidTarball, match="not valid JSON"):
        read_package(data)


def tar_of(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("second", ["package/package.json", "other/package.json", "package/PACKAGE.JSON"])
def test_a_second_root_package_json_is_refused(second):
    """npm extracts with the first path component stripped: the last of these would win at install."""
    data = tar_of([("package/package.json", json.dumps(BASE).encode()),
                   (second, json.dumps({**BASE, "scripts": {"postinstall": "x"}}).encode())])
    with pytest.raises(InvalidTarball, match="more than one package.json"):
        read_package(data)


def test_deflate_data_corrupt_past_the_first_entries_is_an_invalid_tarball_not_a_crash():
    packed = gzip.decompress(tarball(BASE, {"package/big.bin": b"x" * 100_000}))
    invalid_block = bytes.fromhex("1f8b0800000000000003") + b"\x07" + b"\0" * 64  # deflate block type 3
    with pytest.raises(InvalidTarball, match="not a readable gzipped tarball"):
        read_package(gzip.compress(packed[:20480]) + invalid_block)  # inside big.bin, past the read-ahead


def test_files_are_listed_as_npm_extracts_them():
    data = tarball(BASE, {"package/bin/cli.js": b"", "package/binding.gyp": b"{}", "package/../evil": b""})
    assert read_package(data).files == {"package.json", "bin/cli.js", "binding.gyp"}


@pytest.mark.parametrize("manifest,files,expected", [
    ({"scripts": {"postinstall": "x"}}, (), {"_hasShrinkwrap": False, "hasInstallScript": True}),
    ({"scripts": {"test": "x"}}, (), {"_hasShrinkwrap": False}),
    ({}, ("binding.gyp",), {"_hasShrinkwrap": False, "hasInstallScript": True}),
    ({"gypfile": False}, ("binding.gyp",), {"_hasShrinkwrap": False}),
    ({}, ("npm-shrinkwrap.json",), {"_hasShrinkwrap": True}),
])
def test_registry_computes_install_script_and_shrinkwrap_flags(manifest, files, expected):
    assert registry_fields(manifest, frozenset(files)) == expected


def test_document_cannot_claim_registry_flags():
    doc = publish_document("pkg", "1.0.0", manifest_extra={"scripts": {"postinstall": "x"}})
    doc["versions"]["1.0.0"].update(hasInstallScript=False, _hasShrinkwrap=True)
    stored = parse_publish_document(doc, "pkg", 10**6).manifest
    assert (stored["hasInstallScript"], stored["_hasShrinkwrap"]) == (True, False)


@pytest.mark.parametrize("spec,key", [
    ("user/repo", ("github.com", "user", "repo", "")),
    ("github:user/repo#v1", ("github.com", "user", "repo", "#v1")),
    ("git+ssh://git@github.com/user/repo.git#v1", ("github.com", "user", "repo", "#v1")),
    ("git@gitlab.com:user/repo.git", ("gitlab.com", "user", "repo", "")),
    ("^1.2.3", None), ("npm:other@1", None), ("file:../x", None), ("https://example.com/x.tgz", None),
])
def test_hosted_git_specs(spec, key):
    assert hosted_key(spec) == key


# --- The same normalizations as npm 11's own code ------------------------------------------
# Each case is a package directory; npm's @npmcli/package-json (from the pinned CLI) prepares it
# the way `npm publish` does, and the result must equal npm_publish_view and be accepted.

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_JSON_MODULE = ROOT / ".tools/npm/node_modules/npm/node_modules/@npmcli/package-json"
PREPARE = ("const P = require(process.argv[1]);"
           "Promise.all(process.argv.slice(2).map(d => P.fix(d, {changes: []}).then(p => p.prepare())))"
           ".then(all => process.stdout.write(JSON.stringify(all.map(p => p.content))))")

NPM_CASES = {
    "plain": ({"dependencies": {"a": "^1"}}, ()),
    "bin string": ({"bin": "./cli.js"}, ("cli.js",)),
    "bin paths": ({"bin": {"x": "./a/../cli.js", "./sub/y": "bin\\y.js", "bad": 3, "z": ""}}, ("cli.js",)),
    "bin array": ({"bin": ["./bin/a.js", "b"]}, ("bin/a.js", "b")),
    "directories.bin": ({"directories": {"bin": "./bin"}}, ("bin/one", "bin/sub/two", "bin/.hidden")),
    "directories.bin trailing slash": ({"directories": {"bin": "tools/"}}, ("tools/run",)),
    "directories.bin missing": ({"directories": {"bin": "nope"}}, ()),
    "bin wins over directories.bin": ({"bin": "./cli.js", "directories": {"bin": "bin"}}, ("cli.js", "bin/x")),
    "binding.gyp": ({}, ("binding.gyp",)),
    "gyp with install": ({"scripts": {"install": "make"}}, ("binding.gyp",)),
    "gyp with preinstall": ({"scripts": {"preinstall": "make"}}, ("binding.gyp",)),
    "gyp off": ({"gypfile": False}, ("binding.gyp",)),
    "other gyp": ({"scripts": {"test": "t"}}, ("addon.gyp",)),
    "server.js": ({"scripts": {"test": "t"}}, ("server.js",)),
    "scripts cleaned": ({"scripts": {"a": "node_modules/.bin/tap", "b": "./node_modules/.bin/x y", "c": 1}}, ()),
    "scripts not an object": ({"scripts": "x"}, ()),
    "bundle true": ({"bundleDependencies": True, "dependencies": {"a": "1", "b": "2"}}, ()),
    "bundle false": ({"bundleDependencies": False}, ()),
    "bundled typo": ({"bundledDependencies": ["a"], "dependencies": {"b": "1"}}, ()),
    "bundled false": ({"bundledDependencies": False}, ()),
    "bundle object": ({"bundleDependencies": {"a": 1}}, ()),
    "bundle not a dep": ({"bundleDependencies": ["x", "", 3]}, ()),
    "deps as array": ({"dependencies": ["a@1", "b >=2", "c"]}, ()),
    "deps as string": ({"dependencies": "a@1, b"}, ()),
    "deps invalid": ({"dependencies": {"a": 1, "b": "2"}}, ()),
    "deps git": ({"dependencies": {"a": "user/repo", "b": "https://github.com/u/r", "c": "github:u/r#v1"}}, ()),
    "optional in deps": ({"dependencies": {"a": "1", "o": "1"}, "optionalDependencies": {"o": "1"}}, ()),
    "man string": ({"man": "./man/x.1"}, ("man/x.1",)),
    "directories.man": ({"directories": {"man": "./man"}}, ("man/x.1", "man/sub/y.5", "man/z.txt", "man/.h.1")),
    "version loose": ({"version": " v1.0.0 "}, ()),
    "everything else as is": ({"os": ["linux"], "cpu": ["x64"], "libc": ["glibc"], "engines": {"node": ">=18"},
                               "main": "./index.js", "exports": {".": {"import": "./a.mjs"}}, "type": "module",
                               "peerDependencies": {"p": "1"}, "peerDependenciesMeta": {"p": {"optional": True}}},
                              ()),
}


@pytest.fixture(scope="module")
def npm_views(tmp_path_factory):
    if shutil.which(NODE) is None or not PACKAGE_JSON_MODULE.exists():
        pytest.skip("needs node and the pinned npm CLI (scripts/bootstrap)")
    directories = []
    for fields, files in NPM_CASES.values():
        directory = tmp_path_factory.mktemp("pkg")
        (directory / "package.json").write_text(json.dumps({**BASE, **fields}))
        for path in files:
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_text("x")
        directories.append(str(directory))
    done = subprocess.run([NODE, "-e", PREPARE, str(PACKAGE_JSON_MODULE), *directories],
                          capture_output=True, text=True, timeout=120, check=True)
    return dict(zip(NPM_CASES, json.loads(done.stdout)))


def comparable(manifest: dict) -> dict:
    """Install fields, git specs by what they name (npm rewrites them to one form), man pages as a set."""
    found = {k: manifest[k] for k in (*INSTALL_FIELDS, "bundledDependencies") if k in manifest}
    for kind in ("dependencies", "optionalDependencies"):
        if isinstance(found.get(kind), dict):
            found[kind] = {k: hosted_key(v) or v for k, v in found[kind].items()}
    if isinstance(found.get("man"), list):
        found["man"] = sorted(found["man"])
    return found


@pytest.mark.parametrize("case", NPM_CASES)
def test_npm_publish_view_is_what_npm_sends(npm_views, case):
    fields, files = NPM_CASES[case]
    sent = npm_views[case]
    ours = npm_publish_view({**BASE, **fields}, frozenset(("package.json", *files)))
    assert comparable(ours) == comparable(sent)
    assert disagreement(sent, contents(fields, files)) is None

