"""The packages the bench publishes: a small one (the sequential-publish package: 16 KiB tarballs,
bare manifests) and a realistic one, shaped like a popular package's packument: hundreds of versions,
each with a description, scripts, a dozen dependencies and more devDependencies, keywords, people and
links, and a readme of several KiB (npm sends it in the manifest; registries keep the latest's)."""

from __future__ import annotations

import os

from tests.support.packages import publish_document, tarball

README = "\n".join(["# widget", "", "A realistic readme: install, usage, API, options and a changelog.", ""] +
                   [f"## Section {i}\n\nSome prose about option {i}, with `code`, [a link](https://example.com/{i}) "
                    "and a short example:\n\n```js\nconst widget = require('widget')\nwidget.configure({ level: "
                    f"{i} }})\n```\n" for i in range(40)])


def realistic_manifest(name: str, version: str, index: int) -> dict:
    return {
        "description": "A widget for building other widgets, with plugins, streams and a CLI",
        "main": "lib/index.js", "types": "lib/index.d.ts", "bin": {"widget": "bin/widget.js"},
        "scripts": {"test": "node --test", "build": "tsc -p .", "lint": "eslint .", "prepare": "npm run build"},
        "repository": {"type": "git", "url": "git+https://github.com/example/widget.git"},
        "keywords": ["widget", "plugin", "stream", "cli", "build", "tooling", "framework", "fast"],
        "author": {"name": "Ada Example", "email": "ada@example.com", "url": "https://example.com"},
        "contributors": [{"name": f"Contributor {i}", "email": f"c{i}@example.com"} for i in range(4)],
        "license": "MIT", "bugs": {"url": "https://github.com/example/widget/issues"},
        "homepage": "https://github.com/example/widget#readme", "engines": {"node": ">=18"},
        "files": ["lib", "bin", "README.md"],
        "dependencies": {f"dependency-{k}": f"^{k % 7}.{index % 13}.{k}" for k in range(12)},
        "devDependencies": {f"dev-tool-{k}": f"~{k % 5}.{k}.0" for k in range(18)},
        "peerDependencies": {"widget-core": ">=2"}, "peerDependenciesMeta": {"widget-core": {"optional": True}},
        "readme": README,
    }


def realistic_document(name: str, version: str, index: int) -> dict:
    extra = realistic_manifest(name, version, index)
    data = tarball({"name": name, "version": version, **{k: v for k, v in extra.items() if k != "readme"}},
                   {"package/lib/index.js": b"module.exports = {}\n" * 20, "package/README.md": README.encode()})
    return publish_document(name, version, data=data, manifest_extra=extra)


def sized_document(name: str, version: str, size: int) -> dict:
    """A bare manifest and a tarball of `size` random (incompressible) bytes."""
    return publish_document(name, version, data=tarball({"name": name, "version": version},
                                                        {"package/payload.bin": os.urandom(size)}))
