"""python -m bench: stagegate vs Verdaccio 6.8.0 on this machine, in one run, as ratios, and every read
also as a fraction of its floor (the broker's server stack answering a canned body of the same size).

Workloads: sequential publishes of one package (16 KiB tarballs) and concurrent publishes of distinct
packages (1 MiB), stagegate, Verdaccio and the publish floors taking turns in rounds, each publish
also as a fraction of its floors (bench/publish_floor.py); then GETs driven by wrk: tarballs, and full and abbreviated packuments of a small
package and of a realistic one (300 versions, readme, dependencies); for stagegate alone: the OIDC
exchange against its in-process floor, and peak memory while it receives a 100 MiB stage upload.
Verdaccio runs in its fastest configuration as secure as ours (JWT API tokens) and, as a second
column, with its default token handling.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.issuer import FakeIssuer
from tests.support.otp import Authenticator
from tests.support.packages import publish_document, tarball

from . import load, report, wrk
from .floor import exchange_floor
from .servers import (Server, VERDACCIO_VERSION, create_user, rss_kib, start_floor, start_publish_floor,
                      start_stagegate, start_verdaccio, tree_cpu_seconds)
from .shapes import realistic_document, sized_document

MIB = 1024 * 1024
WARMUP = 100  # exchanges sent, and not timed, before the measured ones (the publishes warm up in publish_rounds)
CORGI = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
GZIP = "gzip, deflate"  # what the npm CLI sends (minipass-fetch)
SMALL, REALISTIC = "bench-pkg", "bench-realistic"


def prepared_put(server: Server, token: str, name: str, doc: dict) -> load.Prepared:
    """The publish as wire bytes, serialized before the clock starts (bench/load.py run_prepared)."""
    return load.prepare("PUT", server.url + name.replace("/", "%2f"), {
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}, json.dumps(doc).encode())


def publish_sequential(server: Server, token: str, name: str, versions: int) -> load.Result:
    docs = [sized_document(name, f"1.{i}.0", 16 * 1024) for i in range(versions)]
    return load.run_prepared([prepared_put(server, token, name, d) for d in docs], concurrency=1, pid=server.pid)


def publish_concurrent(server: Server, token: str, prefix: str, count: int) -> load.Result:
    docs = [(f"{prefix}-{i}", sized_document(f"{prefix}-{i}", "1.0.0", MIB)) for i in range(count)]
    return load.run_prepared([prepared_put(server, token, n, d) for n, d in docs], concurrency=8, pid=server.pid)


def publish_realistic(server: Server, token: str, versions: int) -> None:
    docs = [realistic_document(REALISTIC, f"{i // 20}.{i % 20}.0", i) for i in range(versions)]
    result = load.run_prepared([prepared_put(server, token, REALISTIC, d) for d in docs], concurrency=1)
    if result.failures:
        raise RuntimeError(f"{server.name}: {result.failures} realistic publishes failed")


def read_shapes(server: Server) -> dict[str, tuple[str, dict[str, str], list[str] | None]]:
    """Each read workload: (URL, request headers, paths to rotate through or None)."""
    packument = httpx.get(server.url + SMALL).json()
    tarballs = ["/" + v["dist"]["tarball"].split("/", 3)[3] for v in packument["versions"].values()]
    return {
        "GET tarball (16 KiB)": (server.url + SMALL, {"accept": "*/*"}, tarballs),
        "GET small packument (full)": (server.url + SMALL, {"accept": "application/json", "accept-encoding": GZIP},
                                       None),
        "GET small packument (abbreviated)": (server.url + SMALL, {"accept": CORGI, "accept-encoding": GZIP}, None),
        "GET realistic packument (full)": (server.url + REALISTIC, {"accept": "application/json",
                                                                    "accept-encoding": GZIP}, None),
        "GET realistic packument (abbreviated)": (server.url + REALISTIC, {"accept": CORGI, "accept-encoding": GZIP},
                                                  None),
    }


def wire_bytes(url: str, headers: dict[str, str]) -> int:
    """The size of a response body as sent (compressed, if the server compressed it)."""
    response = httpx.get(url, headers=headers)
    response.raise_for_status()
    return response.num_bytes_downloaded


def reads(server: Server, seconds: int, workdir: Path) -> dict[str, wrk.WrkResult]:
    found = {}
    for workload, (url, headers, paths) in read_shapes(server).items():
        wrk.run(url, 2, headers=headers, paths=paths, workdir=workdir)  # warm: caches, JIT, pools
        found[workload] = wrk.run(url, seconds, headers=headers, paths=paths, workdir=workdir,
                                  cpu=lambda: tree_cpu_seconds(server.pid))
        print(f"  {workload}: {found[workload].rate:.0f}/s", flush=True)
    return found


def floors(stagegate: Server, seconds: int, workdir: Path, workers: int) -> dict[str, wrk.WrkResult]:
    """Each read's floor: the same request against the bare stack answering the same number of bytes."""
    found = {}
    for workload, (url, headers, paths) in read_shapes(stagegate).items():
        size = wire_bytes(url if paths is None else stagegate.url + paths[0][1:], headers)
        floor = start_floor(workdir, size, workers)
        try:
            wrk.run(floor.url, 2)
            found[workload] = wrk.run(floor.url + "x", seconds, headers=headers,
                                      cpu=lambda: tree_cpu_seconds(floor.pid))
        finally:
            floor.stop()
        print(f"  floor of {workload} ({size} bytes): {found[workload].rate:.0f}/s", flush=True)
    return found


SEQUENTIAL, CONCURRENT = "publish 16 KiB (sequential)", "publish 1 MiB (8 concurrent)"


def publish_rounds(contenders: dict[str, tuple[Server, str]], args) -> dict[str, dict[str, load.Result]]:
    """Both publish workloads on every contender ({label: (server, token)}), in `args.rounds` rounds that
    take turns, a new package (or packages) per round: the machine's speed drifts by tens of percent over
    seconds, and a workload that takes a second or two would otherwise be compared with another measured
    minutes apart. Each contender first publishes SMALL untimed (what the reads read), which warms it.
    Returns {label: {workload: the rounds' results merged}}."""
    for server, token in contenders.values():
        publish_sequential(server, token, SMALL, args.versions)
        publish_concurrent(server, token, "bench-warm-big", 16)
    rounds: dict[str, dict[str, list[load.Result]]] = {label: {SEQUENTIAL: [], CONCURRENT: []} for label in contenders}
    order = list(contenders)
    for number in range(args.rounds):
        for label in order[number % len(order):] + order[:number % len(order)]:
            server, token = contenders[label]
            rounds[label][SEQUENTIAL].append(publish_sequential(server, token, f"bench-seq-{number}", args.versions))
            rounds[label][CONCURRENT].append(
                publish_concurrent(server, token, f"bench-big-{number}", args.packages))
        print("  round " + str(number + 1) + ": " + "; ".join(
            f"{label} {rounds[label][SEQUENTIAL][-1].rate:.0f}/s, {rounds[label][CONCURRENT][-1].rate:.0f}/s"
            for label in order), flush=True)
    return {label: {workload: load.merged(results) for workload, results in found.items()}
            for label, found in rounds.items()}


def publish_phase(stagegate: Server, peer: Server, workdir: Path, args) -> tuple[dict, dict]:
    """stagegate, Verdaccio (JWT) and the two publish floors (bench/publish_floor.py), all running, take
    turns (`publish_rounds`). Returns the registries' publish results and the floors'
    ({workload: {"receive": result, "durable": result}})."""
    floors_ = {mode: start_publish_floor(workdir, mode, args.workers) for mode in ("receive", "durable")}
    try:
        contenders = {"stagegate": (stagegate, create_user(stagegate, "bench")),
                      peer.name: (peer, create_user(peer, "bench")),
                      **{f"{mode} floor": (floor, "unused") for mode, floor in floors_.items()}}
        found = publish_rounds(contenders, args)
    finally:
        for floor in floors_.values():
            floor.stop()
    floor_results = {workload: {mode: found[f"{mode} floor"][workload] for mode in floors_}
                     for workload in (SEQUENTIAL, CONCURRENT)}
    return {label: found[label] for label in ("stagegate", peer.name)}, floor_results


def stagegate_only(server: Server, issuer: FakeIssuer, workdir: Path, exchanges: int) -> dict:
    token = create_user(server, "stager")
    auth = {"authorization": f"Bearer {token}"}
    name = "bench-staged"
    httpx.put(server.url + name, json=publish_document(name, "0.0.1"), headers=auth).raise_for_status()
    docs = [sized_document(name, f"2.{i}.0", 16 * 1024) for i in range(100)]
    stage = load.run_prepared([load.prepare("POST", f"{server.url}-/stage/package/{name}", {
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}, json.dumps(d).encode()) for d in docs],
        concurrency=1, pid=server.pid)
    started = httpx.post(server.url + "-/npm/v1/user", headers=auth,
                         json={"tfa": {"mode": "auth-and-writes", "password": "bench password 1"}})
    authenticator = Authenticator.from_otpauth(started.json()["tfa"])
    httpx.post(server.url + "-/npm/v1/user", headers=auth, json={"tfa": [authenticator.code()]})
    httpx.post(f"{server.url}-/package/{name}/trust", headers={**auth, "npm-otp": authenticator.code()},
               json=[{"type": "github", "claims": {"repository": "acme/widget", "workflow_ref": {
                   "file": "release.yml"}}, "permissions": ["createStagedPackage"]}]).raise_for_status()
    def exchanges_of(jwts: list[str]) -> list[load.Prepared]:
        return [load.prepare("POST", f"{server.url}-/npm/v1/oidc/token/exchange/package/{name}",
                             {"Authorization": f"Bearer {j}"}) for j in jwts]

    clients = report.EXCHANGE_CONCURRENCY
    load.run_prepared(exchanges_of([issuer.token() for _ in range(WARMUP)]), clients)  # the JWKS fetch, statement caches
    exchange = load.run_prepared(exchanges_of([issuer.token() for _ in range(exchanges)]), clients, pid=server.pid)
    floor_rate = exchange_floor(workdir, [issuer.token() for _ in range(WARMUP + exchanges)],
                                issuer.key.public_key(), issuer.url, "npm:127.0.0.1", warmup=WARMUP)
    return {"stage": stage, "exchange": exchange, "floor": floor_rate}


def memory(workdir: Path, size: int) -> dict:
    """Peak RSS growth of a fresh broker while it receives one stage upload of `size` bytes."""
    server = start_stagegate(workdir, {"STAGEGATE_MAX_TARBALL_BYTES": str(size + 8 * MIB)}, workers=1)
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


def document_sizes(server: Server) -> str:
    """The packuments' sizes as served (decoded, and on the wire with gzip), to say what was read."""
    found = []
    for name in (SMALL, REALISTIC):
        for label, accept in (("full", "application/json"), ("abbreviated", CORGI)):
            response = httpx.get(server.url + name, headers={"accept": accept, "accept-encoding": GZIP})
            found.append(f"{name} {label} {len(response.content) / 1024:.0f} KiB "
                         f"({response.num_bytes_downloaded / 1024:.0f} KiB gzipped)")
    return ", ".join(found)


def access_log_cost(workdir: Path, seconds: int, workers: int) -> dict[str, wrk.WrkResult]:
    """Tarball GETs from two fresh brokers in turn, the access log on (the default) and off."""
    found = {}
    for label, enabled in (("on", "true"), ("off", "false")):
        server = start_stagegate(workdir, {"STAGEGATE_ACCESS_LOG": enabled}, workers=workers)
        try:
            token = create_user(server, "logs")
            if load.run_prepared([prepared_put(server, token, SMALL, sized_document(SMALL, f"1.{index}.0", 16 * 1024))
                                  for index in range(10)], concurrency=1).failures:
                raise RuntimeError("the access log's brokers refused a publish")
            url, headers, paths = read_shapes(server)["GET tarball (16 KiB)"]
            wrk.run(url, 2, headers=headers, paths=paths, workdir=workdir)
            found[label] = wrk.run(url, seconds, headers=headers, paths=paths, workdir=workdir,
                                   cpu=lambda: tree_cpu_seconds(server.pid))
        finally:
            server.stop()
    return found


def machine() -> dict[str, str]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": f"{model}, {os.cpu_count()} cores", "os": platform.platform(),
            "python": f"{platform.python_implementation()} {platform.python_version()}", "node": node,
            "verdaccio": VERDACCIO_VERSION, "wrk": wrk.version(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                        time.gmtime())}


def fsync_ms(folder: Path, rounds: int = 50) -> float:
    """What one durable 16 KiB write costs on this disk (write + fsync), in ms: stagegate pays three of
    these per publish (the blob, its directory, SQLite's commit); Verdaccio never fsyncs."""
    started = time.perf_counter()
    for index in range(rounds):
        fd = os.open(folder / f"fsync-{index}", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"x" * 16384)
            os.fsync(fd)
        finally:
            os.close(fd)
    return (time.perf_counter() - started) * 1000 / rounds


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure_reads(server: Server, args, workdir: Path) -> dict:
    """The realistic package published (untimed), then the reads."""
    print(f"== {server.name}: reads", flush=True)
    publish_realistic(server, create_user(server, "reader"), args.realistic_versions)
    return reads(server, args.seconds, workdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--versions", type=int, default=100, help="16 KiB versions published sequentially")
    parser.add_argument("--realistic-versions", type=int, default=300, help="versions of the realistic package")
    parser.add_argument("--packages", type=int, default=40, help="distinct 1 MiB packages published concurrently")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both publish workloads, contenders taking turns")
    parser.add_argument("--seconds", type=int, default=8, help="seconds of each wrk read run")
    parser.add_argument("--exchanges", type=int, default=2000)
    parser.add_argument("--upload-mib", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="stagegate's workers (default: its own default, one per core)")
    parser.add_argument("--no-default-verdaccio", action="store_true",
                        help="skip the column of Verdaccio with its default (legacy, bcrypt-checked) tokens")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    wrk.ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="stagegate-bench-"))
    info = {**machine(), "fsync of 16 KiB": f"{fsync_ms(workdir):.2f} ms", "load before": load_average(),
            "stagegate workers": str(args.workers)}
    issuer = FakeIssuer().start()
    results: dict[str, dict] = {}
    try:
        stagegate = start_stagegate(workdir, {"STAGEGATE_OIDC_GITHUB_ISSUER": issuer.url}, workers=args.workers)
        try:
            verdaccio = start_verdaccio(workdir, fast=True)
            try:
                print("== publishes: stagegate, Verdaccio (JWT) and the publish floors, taking turns", flush=True)
                publishes, results["publish floors"] = publish_phase(stagegate, verdaccio, workdir, args)
                results["stagegate"] = {**publishes["stagegate"], **measure_reads(stagegate, args, workdir)}
                info["packuments"] = document_sizes(stagegate)
                results[verdaccio.name] = {**publishes[verdaccio.name], **measure_reads(verdaccio, args, workdir)}
            finally:
                verdaccio.stop()
            print("== the floors", flush=True)
            results["floor"] = floors(stagegate, args.seconds, workdir, args.workers)
            print("== stagegate only", flush=True)
            extra = stagegate_only(stagegate, issuer, workdir, args.exchanges)
        finally:
            stagegate.stop()
        print("== the access log's cost", flush=True)
        extra["access log"] = access_log_cost(workdir, args.seconds, args.workers)
        if not args.no_default_verdaccio:  # a second column only: one round, then its reads
            default = start_verdaccio(workdir, fast=False)
            try:
                token = create_user(default, "bench")
                publish_sequential(default, token, SMALL, args.versions)
                results[default.name] = {
                    SEQUENTIAL: publish_sequential(default, token, "bench-seq-0", args.versions),
                    CONCURRENT: publish_concurrent(default, token, "bench-big-0", args.packages),
                    **measure_reads(default, args, workdir)}
            finally:
                default.stop()
    finally:
        issuer.stop()
    print("== memory", flush=True)
    mem = memory(workdir, args.upload_mib * MIB)
    info["load after"] = load_average()
    table = report.table(results, extra, mem, info)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(table + "\n")
    print(f"wrote {args.out / 'latest.md'}")
    return 0
