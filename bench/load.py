"""Driving a server: one asyncio httpx client, bounded concurrency, rates and latency percentiles."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import uvloop


@dataclass
class Result:
    count: int
    seconds: float
    latencies: list[float]
    failures: int
    server_cpu: float = 0.0  # seconds of the server's CPU the workload cost

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu * 1000 / self.count if self.count else float("nan")

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)


async def drive(requests: list[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]], concurrency: int,
                ok: Callable[[httpx.Response], bool] = lambda r: r.status_code < 400) -> Result:
    """Run every request once over `concurrency` lanes; time each one and the whole.

    Each lane is an httpx AsyncClient with one keep-alive connection, all in this one event loop.
    One client with a shared pool of `concurrency` connections measured far less: httpcore rescans
    every pooled connection (a poll() each) for every request it assigns, which took 60% of the
    load generator's CPU and put a 70 ms p99 on a server that does nothing (bench/ceiling.py).
    """
    pending = iter(requests)
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # Built before the clock starts: each AsyncClient loads a TLS context (~15 ms of blocking CPU),
    # which inside the timed part stalled the first request of every lane by up to 300 ms.
    clients = [httpx.AsyncClient(timeout=120, limits=limits) for _ in range(concurrency)]

    async def lane(client: httpx.AsyncClient) -> None:
        nonlocal failures
        async with client:
            for make in pending:
                started = time.perf_counter()
                response = await make(client)
                latencies.append(time.perf_counter() - started)
                if not ok(response):
                    failures += 1
                    if failures <= 3:
                        print(f"  unexpected {response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(lane(client) for client in clients))
    return Result(len(requests), time.perf_counter() - started, latencies, failures)


def run(requests, concurrency: int, ok=lambda r: r.status_code < 400, pid: int | None = None) -> Result:
    """Drive the requests; with `pid`, also charge the server process's CPU time to the result."""
    from .servers import tree_cpu_seconds as cpu_seconds  # the broker and its workers

    # The collector would stop the client for tens of ms now and then (it walks every object this
    # process holds, the prepared request bodies included): leave it out of the timed part.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        before = cpu_seconds(pid) if pid else 0.0
        result = uvloop.run(drive(requests, concurrency, ok))
        if pid:
            result.server_cpu = cpu_seconds(pid) - before
    finally:
        gc.enable()
        gc.unfreeze()
    return result


def median(values: list[float]) -> float:
    return statistics.median(values)
