"""The action packs exactly what `npm pack` packs: same files, sizes, modes, order, tar bytes.

The gzip layer differs: node's bundled zlib (1.3.1, Chromium's) and Python's compress the same
tar to different bytes, so integrities differ; the terminal summary reports the rates."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from action.pack import pack
from tests.support.npm import base_env, npm_command
from tests.support.pack_fixtures import FIXTURES, write_fixture

RESULTS: dict[str, dict] = {}


def npm_pack(directory: Path, cache: Path) -> tuple[dict, bytes]:
    env = base_env(directory, cache)
    env["npm_config_userconfig"] = str(directory / ".no-npmrc")
    proc = subprocess.run([*npm_command(), "pack", "--json", "--ignore-scripts", "--pack-destination", str(directory.parent)],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)[0]
    return report, (directory.parent / report["filename"]).read_bytes()


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_packing_matches_npm_pack(name, tmp_path):
    directory = write_fixture(tmp_path, name)
    ours = pack(directory)  # before npm writes anything next to it
    report, npm_tarball = npm_pack(directory, tmp_path / "cache")
    assert {(f["path"], f["size"], f["mode"]) for f in report["files"]} == \
        {(f.path, f.size, f.mode) for f in ours.files}
    same_tar = gzip.decompress(ours.tarball) == gzip.decompress(npm_tarball)
    RESULTS[name] = {"tar": same_tar, "integrity": ours.integrity == report["integrity"],
                     "order": [f["path"] for f in report["files"]] == [f.path for f in ours.files]}
    assert same_tar, "the uncompressed tar must be byte-identical to npm's"
    assert RESULTS[name]["order"], "files are listed in npm's order"
