"""A real `stagegate-broker serve` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BrokerProcess:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_level: str = "info"  # info: the access log is written, so the suite can check it never shows a secret
    # One process unless a test is about workers: the suite starts dozens of brokers on a few cores.
    workers: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def database_url(self) -> str:
        return self.env.get("STAGEGATE_DATABASE_URL") or f"sqlite:///{self.data_dir / 'stagegate.db'}"

    def audit(self, event_like: str, package: str) -> list[tuple[str, str, dict]]:
        """(event, actor, detail) rows of the audit log, oldest first, read straight from the database."""
        import json

        import sqlalchemy

        engine = sqlalchemy.create_engine(self.database_url)
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "select event, actor, detail from audit_log where event like :e and package = :p order by id"),
                {"e": event_like, "p": package}).all()
        engine.dispose()
        return [(event, actor, json.loads(detail)) for event, actor, detail in rows]

    def start(self) -> "BrokerProcess":
        # The access log is on in every test broker, so the suite checks it never shows a secret.
        env = {**os.environ, "STAGEGATE_DATA_DIR": str(self.data_dir), "STAGEGATE_ACCESS_LOG": "true", **self.env}
        self.log_path = self.data_dir.parent / f"broker-{self.data_dir.name}-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "serve", "--port", str(self.port), "--log-level", self.log_level,
             "--workers", str(self.workers)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60  # a loaded 2-core machine can take 20 s and more
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "-/ping", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("broker did not answer /-/ping in 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
