"""The publish floors: the broker's server stack (uvicorn, httptools, the broker's protocol class)
answering an npm publish with the least work, in two steps.

- `receive`: read the whole body, answer `{"success":true}`. No registry on this stack publishes faster.
- `durable`: also what any registry that keeps its promises must do with a publish: parse the JSON,
  decode the tarball, hash it (sha512 for `integrity`, sha1 for `shasum`), write it to a file made
  durable (fsync, rename, fsync of the folder) and commit one row to SQLite (WAL, synchronous=FULL),
  on a worker thread as the broker does. No authentication, no tarball check, no audit record.

Each publish workload is also reported as a fraction of these (bench/report.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
from pathlib import Path

import orjson
import pybase64
from anyio import to_thread

from .asgi_floor import serve_stack

OK = {"type": "http.response.start", "status": 200,
      "headers": [(b"content-type", b"application/json"), (b"content-length", b"16")]}
OK_BODY = {"type": "http.response.body", "body": b'{"success":true}'}


async def _body(receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


def receive_app():
    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        await _body(receive)
        await send(OK)
        await send(OK_BODY)

    return app


class _Durable:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.local = threading.local()

    def db(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = sqlite3.connect(self.folder / "floor.db", isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE IF NOT EXISTS versions (package TEXT, version TEXT, manifest TEXT, "
                         "blob TEXT, PRIMARY KEY (package, version))")
        return conn

    def publish(self, body: bytes) -> None:
        doc = orjson.loads(body)  # as the broker parses a request body
        (attachment,) = doc["_attachments"].values()
        tarball = pybase64.b64decode(attachment["data"], validate=True)
        key, _ = hashlib.sha512(tarball).hexdigest(), hashlib.sha1(tarball).hexdigest()
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".incoming-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(tarball)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.folder / key)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        (version, manifest), = doc["versions"].items()
        conn = self.db()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?)",
                     (doc["name"], version, json.dumps(manifest), key))
        conn.execute("COMMIT")


def durable_app(folder: Path):
    durable = _Durable(folder)

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await _body(receive)
        if scope["method"] == "PUT":  # anything else (the readiness probe) is answered without work
            await to_thread.run_sync(durable.publish, body)
        await send(OK)
        await send(OK_BODY)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("receive", "durable"), required=True)
    parser.add_argument("--folder", type=Path, required=True, help="where `durable` keeps its blobs and database")
    parser.add_argument("--workers", type=int, default=1, help="processes, as `stagegate-broker serve --workers`")
    args = parser.parse_args()
    os.environ["BENCH_FLOOR_MODE"], os.environ["BENCH_FLOOR_FOLDER"] = args.mode, str(args.folder)
    serve_stack("bench.publish_floor:_from_environment", args.port, args.workers, timeout_keep_alive=30)


def _from_environment():
    if os.environ["BENCH_FLOOR_MODE"] == "receive":
        return receive_app()
    return durable_app(Path(os.environ["BENCH_FLOOR_FOLDER"]))


if __name__ == "__main__":
    main()
