"""The two registries under test, each a real server process on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / ".cache"
VERDACCIO_VERSION = "6.8.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_stagegate(workdir: Path, env: dict[str, str] | None = None, log_level: str = "info",
                    workers: int | None = None) -> Server:
    """The broker as deployed by default (log level info; the access log is off unless `env` says so)."""
    port = free_port()
    data = workdir / f"stagegate-{port}"
    full_env = {**os.environ, "STAGEGATE_DATA_DIR": str(data), "STAGEGATE_OPEN_SIGNUP": "true", **(env or {})}
    log = open(workdir / f"stagegate-{port}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "broker.cli", "serve", "--port", str(port),
                                "--log-level", log_level,
                                *(["--workers", str(workers)] if workers else [])], cwd=ROOT, env=full_env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    wait_for(url + "-/ping", process)
    return Server("stagegate", url, process)


def install_verdaccio() -> Path:
    """Verdaccio 6.8.0 (the newest that runs on Node 20) into bench/.cache with npm."""
    folder = CACHE / "verdaccio"
    entry = folder / "node_modules" / "verdaccio" / "bin" / "verdaccio"
    if entry.exists():
        return entry
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(
        '{"name": "stagegate-bench-verdaccio", "private": true, '
        f'"dependencies": {{"verdaccio": "{VERDACCIO_VERSION}"}}, "overrides": {{"node-fetch": "2.7.0"}}}}\n')
    from tests.support.npm import NPM_CLI  # the pinned npm the suite uses, not whatever is on PATH

    subprocess.run(["node", str(NPM_CLI), "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder,
                   check=True)
    return entry


# Verdaccio's fastest configuration that is as secure as ours: JWT API tokens (`security.api.jwt`),
# checked by signature, instead of its legacy default, which re-checks the password with bcrypt on
# every authenticated request (~60-95 ms of CPU). Logs at fatal, no web UI, no uplinks, no audit
# middleware; Express in production mode (NODE_ENV=production, Express's own first speed advice).
FAST_SECURITY = """security:
  api:
    legacy: false
    jwt:
      sign:
        expiresIn: 7d
"""


def start_verdaccio(workdir: Path, fast: bool = True) -> Server:
    """Verdaccio in its fastest secure configuration (`fast`), or with its default token handling."""
    entry = install_verdaccio()
    port = free_port()
    home = workdir / f"verdaccio-{port}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    config = home / "config.yaml"
    config.write_text(f"""storage: {home / 'storage'}
auth:
  htpasswd:
    file: {home / 'htpasswd'}
    max_users: 1000
uplinks: {{}}
packages:
  '@*/*':
    access: $all
    publish: $authenticated
  '**':
    access: $all
    publish: $authenticated
max_body_size: 300mb
web:
  enable: false
log: {{type: stdout, format: pretty, level: fatal}}
""" + (FAST_SECURITY if fast else ""))
    log = open(workdir / f"verdaccio-{port}.log", "ab")
    env = {**os.environ, **({"NODE_ENV": "production"} if fast else {})}
    process = subprocess.Popen(["node", str(entry), "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                               cwd=home, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}/"
    wait_for(url + "-/ping", process)
    return Server("verdaccio" if fast else "verdaccio-default", url, process)


def start_floor(workdir: Path, size: int, workers: int) -> Server:
    """bench/asgi_floor.py: the broker's server stack answering `size` canned bytes, `workers` processes."""
    return _start_module("floor", "bench.asgi_floor", workdir, "--size", str(size), "--workers", str(workers))


def start_publish_floor(workdir: Path, mode: str, workers: int) -> Server:
    """bench/publish_floor.py: the broker's server stack answering publishes with the least work."""
    return _start_module(f"publish floor ({mode})", "bench.publish_floor", workdir, "--mode", mode,
                         "--folder", tempfile.mkdtemp(prefix=f"publish-floor-{mode}-", dir=workdir), "--workers", str(workers))


def _start_module(name: str, module: str, workdir: Path, *options: str) -> Server:
    """`python -m module --port P *options` from the checkout, once it answers on P."""
    port = free_port()
    log = open(workdir / f"{module.rsplit('.', 1)[-1]}-{port}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", module, "--port", str(port), *options], cwd=ROOT, stdout=log,
                               stderr=log)
    url = f"http://127.0.0.1:{port}/"
    wait_for(url + "-/ping", process)
    return Server(name, url, process)


def create_user(server: Server, name: str, password: str = "bench password 1") -> str:
    response = httpx.put(f"{server.url}-/user/org.couchdb.user:{name}", timeout=30,
                         json={"_id": f"org.couchdb.user:{name}", "name": name, "password": password,
                               "email": f"{name}@bench.test", "type": "user", "roles": []})
    response.raise_for_status()
    return response.json()["token"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (a broker's workers, uvicorn's supervisor)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (live ones: workers outlive a run)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            pass
    return total


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")
