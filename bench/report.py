"""The benchmark's one table (markdown): ratios against the peer, fractions of the floor, targets."""

from __future__ import annotations

TARGETS = {"publish 16 KiB (sequential)": 3.0, "publish 1 MiB (8 concurrent)": 2.0}
GET_TARGET = 5.0
TARBALL_FLOOR_SHARE = 0.30
EXCHANGE_FLOOR_SHARE, EXCHANGE_P99_MS, EXCHANGE_CONCURRENCY = 0.5, 25.0, 16
UPLOAD_GROWTH = 1.5
ACCESS_LOG_COST = 0.10


def target(workload: str) -> float:
    return TARGETS.get(workload, GET_TARGET)


def _latency(result) -> str:
    return f"{result.p50:.1f}/{result.p99:.1f}"


def _row(workload: str, results: dict) -> str:
    sg, vd = results["stagegate"][workload], results["verdaccio"][workload]
    default = results.get("verdaccio-default", {}).get(workload)
    floor = results.get("floor", {}).get(workload)
    ratio = sg.rate / vd.rate if vd.rate else float("inf")
    met = ratio >= target(workload) and not sg.failures
    floor_cell, share_cell = "—", "—"
    if floor is not None:
        share = sg.rate / floor.rate
        floor_cell = f"{floor.rate:.0f} ({floor.cpu_ms_per_request:.3f})"
        share_cell = f"{share:.0%}" + (f" (≥{TARBALL_FLOOR_SHARE:.0%})" if workload.startswith("GET tarball") else "")
        if workload.startswith("GET tarball"):
            met = met and share >= TARBALL_FLOOR_SHARE
    publish_floor = results.get("publish floors", {}).get(workload)
    if publish_floor is not None:
        durable, received = publish_floor["durable"], publish_floor["receive"]
        floor_cell = (f"durable {durable.rate:.0f} ({durable.cpu_ms_per_request:.3f}); "
                      f"receive {received.rate:.0f} ({received.cpu_ms_per_request:.3f})")
        share_cell = f"{sg.rate / durable.rate:.0%} of durable"
    default_cell = f"{default.rate:.0f}" if default is not None else "—"
    failures = f" ({sg.failures} failed)" if sg.failures else ""
    return (f"| {workload} | {sg.rate:.0f}{failures} | {vd.rate:.0f} | **{ratio:.1f}×** (≥{target(workload):.0f}×) | "
            f"{default_cell} | {_latency(sg)} / {_latency(vd)} | {sg.cpu_ms_per_request:.3f} / "
            f"{vd.cpu_ms_per_request:.3f} | {floor_cell} | {share_cell} | {_verdict(met, workload, vd, publish_floor)} |")


def _verdict(met: bool, workload: str, peer, publish_floor: dict | None) -> str:
    """"yes", or "no", and for a publish whose target even the durable floor misses: by how much."""
    if met:
        return "yes"
    if publish_floor is None or not peer.rate:
        return "no"
    reach = publish_floor["durable"].rate / peer.rate
    if reach >= target(workload):
        return "no"
    return f"no: out of reach, the durable floor is {reach:.1f}× Verdaccio"


def _exchange_verdict(met: bool, exchange, floor: float) -> str:
    """"yes", or "no", and when the p99 target asks for more than the floor does: by how much.

    c clients, each sending its next exchange when the last is answered, wait c ÷ rate on average
    (Little's law), and the p99 is at least the mean: a p99 under 25 ms at c16 needs 640/s or more."""
    if met:
        return "yes"
    needed = EXCHANGE_CONCURRENCY / (EXCHANGE_P99_MS / 1000)
    if exchange.p99 >= EXCHANGE_P99_MS and floor < needed:
        return (f"no: p99 < {EXCHANGE_P99_MS:.0f} ms at c{EXCHANGE_CONCURRENCY} needs ≥{needed:.0f}/s "
                f"(c ÷ p99), more than the one-core floor's {floor:.0f}/s on this machine")
    return "no"


def table(results: dict, extra: dict, mem: dict, info: dict[str, str]) -> str:
    lines = ["Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()) + ".", "",
             "| workload | stagegate /s | Verdaccio (JWT) /s | ratio (target) | Verdaccio (default) /s | "
             "p50/p99 ms, stagegate / Verdaccio (JWT) | server CPU ms/req, stagegate / Verdaccio (JWT) | "
             "floor /s (CPU ms/req) | stagegate ÷ floor | met |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    lines += [_row(workload, results) for workload in results["stagegate"]]
    stage, exchange, floor = extra["stage"], extra["exchange"], extra["floor"]
    share = exchange.rate / floor
    exchange_met = share >= EXCHANGE_FLOOR_SHARE and exchange.p99 < EXCHANGE_P99_MS and not exchange.failures
    growth_met = mem["growth_ratio"] <= UPLOAD_GROWTH
    lines += [
        f"| stage publish 16 KiB (sequential) | {stage.rate:.0f} | — | — | — | {_latency(stage)} / — | "
        f"{stage.cpu_ms_per_request:.3f} / — | — | — | — |",
        f"| OIDC exchange (c{EXCHANGE_CONCURRENCY}; floor: in-process RS256 verify + the three inserts) | "
        f"{exchange.rate:.0f} | — | — | — | "
        f"{_latency(exchange)} (p99 < {EXCHANGE_P99_MS:.0f}) / — | {exchange.cpu_ms_per_request:.3f} / — | "
        f"{floor:.0f} ({1000 / floor:.3f}) | {share:.0%} (≥{EXCHANGE_FLOOR_SHARE:.0%}) | "
        f"{_exchange_verdict(exchange_met, exchange, floor)} |",
        _access_log_row(extra["access log"]) if "access log" in extra else None,
        f"| 100 MiB stage upload: peak RSS growth | idle {mem['idle_mib']:.0f} MiB, peak {mem['peak_mib']:.0f} MiB | "
        f"— | **{mem['growth_ratio']:.2f}×** the tarball (≤{UPLOAD_GROWTH}×) | — | — | — | — | — | "
        f"{'yes' if growth_met else 'no'} |",
        f"| body over the limit | {mem['over_limit_status']} in {mem['over_limit_ms']:.0f} ms | — | — | — | — | — | — | "
        f"— | {'yes' if mem['over_limit_status'] == 413 else 'no'} |",
    ]
    note = _client_note(results)
    lines += ["", note] if note else []
    return "\n".join(line for line in lines if line is not None)


def _client_note(results: dict) -> str:
    """The bench's own client's CPU per publish: it shares the cores with the server, so it must be small
    against the server CPU column for the ratio to be the servers' (wrk drives the reads)."""
    cells = []
    for workload, sg in results["stagegate"].items():
        vd = results["verdaccio"].get(workload)
        if hasattr(sg, "client_cpu_ms_per_request") and vd is not None:
            cells.append(f"{workload} {sg.client_cpu_ms_per_request:.3f} / {vd.client_cpu_ms_per_request:.3f}")
    return ("Load generator CPU ms/req (this process, all threads), stagegate / Verdaccio (JWT): " + "; ".join(cells)
            + ".") if cells else ""


def _access_log_row(found: dict) -> str:
    """Tarball GETs of two fresh brokers, access log on and off. The log may be on by default only if
    it costs under 10% of the rate and of the CPU per request; the row checks the default agrees."""
    from broker.settings import Settings

    on, off = found["on"], found["off"]
    cost = 1 - on.rate / off.rate
    cpu = on.cpu_ms_per_request / off.cpu_ms_per_request - 1 if off.cpu_ms_per_request else float("nan")
    implied = "on" if cost < ACCESS_LOG_COST and not cpu >= ACCESS_LOG_COST else "off"
    actual = "on" if Settings.model_fields["access_log"].default else "off"
    return (f"| GET tarball, access log on vs off | {on.rate:.0f} / {off.rate:.0f} | — | — | — | "
            f"{_latency(on)} / {_latency(off)} | {on.cpu_ms_per_request:.3f} / {off.cpu_ms_per_request:.3f} | — | "
            f"costs {cost:.0%} of the rate, {cpu:.0%} more CPU: default {implied} (< {ACCESS_LOG_COST:.0%} for on); "
            f"it is {actual} | {'yes' if implied == actual else 'no'} |")
