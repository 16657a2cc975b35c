"""python -m bench: stagegate vs Verdaccio 6.8.0 on this machine, in one run, as ratios.

Workloads: sequential publishes of one package (16 KiB tarballs), concurrent publishes of distinct
packages (1 MiB), full and abbreviated packument GETs and tarball GETs at concurrency 16; for
stagegate alone: stage publish, the OIDC exchange against its in-process floor, and the broker's
peak memory while it receives a 100 MiB stage upload.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.issuer import FakeIssuer
from tests.support.otp import Authenticator
from tests.support.packages import publish_document, tarball

from . import load, report
from .floor import exchange_floor
from .servers import Server, create_user, rss_kib, start_ceiling, start_stagegate, start_verdaccio

MIB = 1024 * 1024
WARMUP = 100  # requests sent, and not timed, before each measured workload (both registries alike)
CORGI = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


def doc_with_random_payload(name: str, version: str, size: int) -> dict:
    return publish_document(name, version, data=tarball({"name": name, "version": version},
                                                        {"package/payload.bin": os.urandom(size)}))


def put(server: Server, token: str, name: str, doc: dict):
    body = json.dumps(doc).encode()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return lambda client: client.put(server.url + name.replace("/", "%2f"), content=body, headers=headers)


def get(url: str, accept: str = "application/json"):
    return lambda client: client.get(url, headers={"accept": accept})


def publish_sequential(server: Server, token: str, name: str, versions: int) -> load.Result:
    docs = [doc_with_random_payload(name, f"1.{i}.0", 16 * 1024) for i in range(versions)]
    return load.run([put(server, token, name, d) for d in docs], concurrency=1, pid=server.pid)


def publish_concurrent(server: Server, token: str, prefix: str, count: int) -> load.Result:
    docs = [(f"{prefix}-{i}", doc_with_random_payload(f"{prefix}-{i}", "1.0.0", MIB)) for i in range(count)]
    return load.run([put(server, token, n, d) for n, d in docs], concurrency=8, pid=server.pid)


def reads(server: Server, name: str, count: int) -> dict[str, load.Result]:
    url = server.url + name
    packument = httpx.get(url).json()
    tarballs = [v["dist"]["tarball"] for v in packument["versions"].values()]
    load.run([get(url) for _ in range(WARMUP)] + [get(url, CORGI) for _ in range(WARMUP)] +
             [get(tarballs[i % len(tarballs)], "*/*") for i in range(WARMUP)], 16)  # caches, JIT, pools
    return {
        "packument (full)": load.run([get(url) for _ in range(count)], 16, pid=server.pid),
        "packument (abbreviated)": load.run([get(url, CORGI) for _ in range(count)], 16, pid=server.pid),
        "tarball": load.run([get(tarballs[i % len(tarballs)], "*/*") for i in range(count)], 16, pid=server.pid),
    }


def wire_bytes(url: str, accept: str) -> int:
    """The size of a response body as sent (compressed, if the server compressed it)."""
    response = httpx.get(url, headers={"accept": accept})
    response.raise_for_status()
    return response.num_bytes_downloaded


def client_ceiling(workdir: Path, size: int, requests: Callable[[str], list]) -> load.Result:
    """The same requests sent to bench/ceiling.py answering `size` bytes: the client's own limit."""
    server = start_ceiling(workdir, size)
    try:
        return load.run(requests(server.url), 16)
    finally:
        server.stop()


def ceilings(workdir: Path, stagegate: Server, name: str, count: int, jwts: list[str]) -> dict[str, load.Result]:
    url = stagegate.url + name
    tarball_url = next(iter(httpx.get(url).json()["versions"].values()))["dist"]["tarball"]
    shapes = {"GET packument (full)": (wire_bytes(url, "application/json"), "application/json"),
              "GET packument (abbreviated)": (wire_bytes(url, CORGI), CORGI),
              "GET tarball": (wire_bytes(tarball_url, "*/*"), "*/*")}
    found = {workload: client_ceiling(workdir, size, lambda base, a=accept: [get(base + name, a)] * count)
             for workload, (size, accept) in shapes.items()}
    found["OIDC exchange"] = client_ceiling(workdir, 100, lambda base: [
        lambda c, j=j: c.post(f"{base}-/npm/v1/oidc/token/exchange/package/{name}",
                              headers={"authorization": f"Bearer {j}"}) for j in jwts])
    return found


def stagegate_only(server: Server, issuer: FakeIssuer, workdir: Path, versions: int, exchanges: int) -> dict:
    token = create_user(server, "stager")
    auth = {"authorization": f"Bearer {token}"}
    name = "bench-staged"
    httpx.put(server.url + name, json=publish_document(name, "0.0.1"), headers=auth).raise_for_status()
    docs = [doc_with_random_payload(name, f"2.{i}.0", 16 * 1024) for i in range(versions)]
    stage = load.run([lambda c, d=d: c.post(f"{server.url}-/stage/package/{name}", json=d, headers=auth)
                      for d in docs], concurrency=1)
    started = httpx.post(server.url + "-/npm/v1/user", headers=auth,
                         json={"tfa": {"mode": "auth-and-writes", "password": "bench password 1"}})
    authenticator = Authenticator.from_otpauth(started.json()["tfa"])
    httpx.post(server.url + "-/npm/v1/user", headers=auth, json={"tfa": [authenticator.code()]})
    httpx.post(f"{server.url}-/package/{name}/trust", headers={**auth, "npm-otp": authenticator.code()},
               json=[{"type": "github", "claims": {"repository": "acme/widget", "workflow_ref": {
                   "file": "release.yml"}}, "permissions": ["createStagedPackage"]}]).raise_for_status()
    def exchanges_of(jwts: list[str]) -> list:
        return [lambda c, j=j: c.post(f"{server.url}-/npm/v1/oidc/token/exchange/package/{name}",
                                      headers={"authorization": f"Bearer {j}"}) for j in jwts]

    load.run(exchanges_of([issuer.token() for _ in range(WARMUP)]), 16)  # the JWKS fetch, statement caches
    exchange = load.run(exchanges_of([issuer.token() for _ in range(exchanges)]), 16, pid=server.pid)
    floor_rate = exchange_floor(workdir, [issuer.token() for _ in range(WARMUP + exchanges)],
                                issuer.key.public_key(), issuer.url, "npm:127.0.0.1", warmup=WARMUP)
    return {"stage": stage, "exchange": exchange, "floor": floor_rate}


def memory(workdir: Path, size: int) -> dict:
    """Peak RSS growth of a fresh broker while it receives one stage upload of `size` bytes."""
    server = start_stagegate(workdir, {"STAGEGATE_MAX_TARBALL_BYTES": str(size + 8 * MIB)})
    try:
        token = create_user(server, "big")
        auth = {"authorization": f"Bearer {token}"}
        httpx.put(server.url + "big", json=publish_document("big", "0.0.1"), headers=auth).raise_for_status()
        httpx.get(server.url + "big")
        time.sleep(0.5)
        idle = rss_kib(server.pid)
        body = json.dumps(publish_document("big", "1.0.0", data=tarball(
            {"name": "big", "version": "1.0.0"}, {"package/payload.bin": os.urandom(size)}))).encode()
        response = httpx.post(f"{server.url}-/stage/package/big", content=body, timeout=300,
                              headers={**auth, "content-type": "application/json"})
        response.raise_for_status()
        peak = rss_kib(server.pid, "VmHWM")
        del body
        started = time.perf_counter()
        status = _declared_oversize(server, token, size * 4)
        refusal_ms = (time.perf_counter() - started) * 1000
        return {"idle_mib": idle / 1024, "peak_mib": peak / 1024, "growth_ratio": (peak - idle) * 1024 / size,
                "over_limit_status": status, "over_limit_ms": refusal_ms,
                "peak_after_refusal_mib": rss_kib(server.pid, "VmHWM") / 1024}
    finally:
        server.stop()


def _declared_oversize(server: Server, token: str, length: int) -> int:
    """Announce a body larger than the limit, send a little of it, and read the answer."""
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall((f"POST /-/stage/package/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode())
        sock.sendall(b"{" + b" " * 65536)
        answer = sock.recv(4096).decode(errors="replace")
    return int(answer.split()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--versions", type=int, default=300, help="versions of the read-heavy package")
    parser.add_argument("--packages", type=int, default=40, help="distinct 1 MiB packages published concurrently")
    parser.add_argument("--reads", type=int, default=2000, help="requests per read workload")
    parser.add_argument("--exchanges", type=int, default=2000)
    parser.add_argument("--upload-mib", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="stagegate-bench-"))
    issuer = FakeIssuer().start()
    servers = {"stagegate": start_stagegate(workdir, {"STAGEGATE_OIDC_GITHUB_ISSUER": issuer.url}),
               "verdaccio": start_verdaccio(workdir)}
    results: dict[str, dict[str, load.Result]] = {}
    try:
        for label, server in servers.items():
            print(f"== {label}")
            token = create_user(server, "bench")
            results.setdefault("publish (sequential, 16 KiB)", {})[label] = publish_sequential(
                server, token, "bench-pkg", args.versions)
            results.setdefault("publish (concurrent, 1 MiB)", {})[label] = publish_concurrent(
                server, token, "bench-big", args.packages)
            for workload, result in reads(server, "bench-pkg", args.reads).items():
                results.setdefault(f"GET {workload}", {})[label] = result
        print("== stagegate only")
        extra = stagegate_only(servers["stagegate"], issuer, workdir, 100, args.exchanges)
        print("== the client's ceiling")
        limits = ceilings(workdir, servers["stagegate"], "bench-pkg", args.reads,
                          [issuer.token() for _ in range(args.exchanges)])
    finally:
        for server in servers.values():
            server.stop()
        issuer.stop()
    print("== memory")
    mem = memory(workdir, args.upload_mib * MIB)
    table = report.table(results, extra, mem, limits)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(table + "\n")
    report.plot(results, extra, mem, args.out / "ratios.png", limits)
    print(f"wrote {args.out / 'latest.md'} and {args.out / 'ratios.png'}")
    return 0
