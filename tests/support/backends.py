"""Where a test broker keeps its state: embedded SQLite + files, or PostgreSQL + S3 (SeaweedFS).

STAGEGATE_TEST_BACKEND=postgres runs the suite against this machine's PostgreSQL (127.0.0.1:5432,
trust authentication) and a SeaweedFS S3 server the tests start on loopback; every broker the
tests start gets its own fresh database and bucket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy

from .broker import ROOT, BrokerProcess

PG_ADMIN_URL = os.environ.get("STAGEGATE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
S3_KEY, S3_SECRET = "stagegate", "stagegate-secret"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_pair() -> int:
    """A port p with p and p + 10000 free (SeaweedFS puts gRPC at +10000)."""
    for _ in range(200):
        port = int.from_bytes(os.urandom(2), "big") % 20000 + 20000
        if port + 10000 < 65535 and _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair")


class SeaweedFS:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {name: _port_pair() for name in ("master", "volume", "filer", "s3")}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "SeaweedFS":
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text('{"identities":[{"name":"stagegate","credentials":[{"accessKey":"%s","secretKey":"%s"}],'
                          '"actions":["Admin","Read","Write","List","Tagging"]}]}' % (S3_KEY, S3_SECRET))
        weed = Path(sys.executable).parent / "weed"
        p = self.ports
        self.process = subprocess.Popen(
            [str(weed), "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
             "-filer=true", "-s3", f"-s3.port={p['s3']}", f"-s3.config={config}", "-volume.max=1000", "-master.volumeSizeLimitMB=16",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"],
            stdout=open(self.root / "weed.log", "ab"), stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.create_bucket("stagegate-probe")
                return self
            except Exception:  # not up yet: SeaweedFS takes a few seconds to elect and serve
                if self.process.poll() is not None:
                    raise RuntimeError((self.root / "weed.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        raise RuntimeError("SeaweedFS S3 did not come up in 60 s")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()  # its data is throwaway: no need to wait for a graceful stop


@dataclass
class Backends:
    """Makes storage for test brokers; `kind` is "sqlite" or "postgres"."""

    root: Path
    kind: str = field(default_factory=lambda: os.environ.get("STAGEGATE_TEST_BACKEND", "sqlite"))
    seaweed: SeaweedFS | None = None
    databases: list[str] = field(default_factory=list)

    def _s3(self) -> SeaweedFS:
        if self.seaweed is None:
            self.seaweed = SeaweedFS(self.root / "seaweedfs").start()
        return self.seaweed

    def storage(self, kind: str | None = None) -> dict[str, str]:
        """The environment of a fresh, empty store for one broker (or several sharing it)."""
        kind = kind or self.kind
        data_dir = self.root / f"data-{uuid.uuid4().hex[:8]}"
        env = {"STAGEGATE_DATA_DIR": str(data_dir)}
        if kind == "sqlite":
            return env
        name = f"stagegate_{uuid.uuid4().hex[:12]}"
        engine = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        self.databases.append(name)
        bucket = name.replace("_", "-")
        seaweed = self._s3()
        seaweed.create_bucket(bucket)
        env.update(STAGEGATE_DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name,
                   STAGEGATE_BLOB_URL=f"s3://{bucket}/tarballs", STAGEGATE_S3_ENDPOINT_URL=seaweed.endpoint,
                   AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET, AWS_DEFAULT_REGION="us-east-1",
                   STAGEGATE_SECRET_KEY=uuid.uuid4().hex)
        return env

    def upgrade(self, storage: dict[str, str]) -> None:
        if "STAGEGATE_DATABASE_URL" in storage:
            subprocess.run([sys.executable, "-m", "broker.cli", "db", "upgrade"], cwd=ROOT,
                           env={**os.environ, **storage}, check=True, capture_output=True, timeout=120)

    def broker(self, storage: dict[str, str] | None = None, env: dict[str, str] | None = None,
               port: int | None = None, workers: int = 1) -> BrokerProcess:
        """A started broker over `storage` (a fresh one unless given), schema upgraded as a deployer would."""
        storage = storage if storage is not None else self.storage()
        self.upgrade(storage)
        process = BrokerProcess(Path(storage["STAGEGATE_DATA_DIR"]), env={**storage, **(env or {})}, workers=workers)
        if port is not None:
            process.port = port
        return process.start()

    def close(self) -> None:
        if self.seaweed:
            self.seaweed.stop()
        if self.databases:
            engine = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                for name in self.databases:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            engine.dispose()
