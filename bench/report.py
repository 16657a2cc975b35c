"""The benchmark's table (markdown) and plot (PNG) of ratios against the peer and targets."""

from __future__ import annotations

import platform
from pathlib import Path

from .load import Result

TARGETS = {"publish": 3.0, "GET": 5.0}


def _target(workload: str) -> float:
    return TARGETS["publish"] if workload.startswith("publish") else TARGETS["GET"]


def table(results: dict[str, dict[str, Result]], extra: dict, mem: dict,
          limits: dict[str, Result] | None = None) -> str:
    limits = limits or {}
    lines = [f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
             f"{__import__('os').cpu_count()} cores; one run, loopback. Server CPU is the registry process's "
             "user+system time per request (all threads), measured from /proc: it does not depend on how fast "
             "the load generator is. Client ceiling: the same requests against bench/ceiling.py, a server "
             "that does no work; a ratio that needs more than it is out of this client's reach on this "
             "machine, whatever the registry does.", "",
             "| workload | stagegate req/s | Verdaccio req/s | ratio | target | stagegate p50/p99 ms | "
             "Verdaccio p50/p99 ms | met | server CPU ms/req (sg / vd) | CPU ratio | client ceiling req/s "
             "(p99 ms) | target within the ceiling |",
             "|---|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|:---:|"]
    for workload, by in results.items():
        sg, vd = by["stagegate"], by["verdaccio"]
        ratio = sg.rate / vd.rate if vd.rate else float("inf")
        target = _target(workload)
        p99_ok = workload.startswith("publish") or sg.p99 <= vd.p99
        met = "yes" if ratio >= target and p99_ok and not sg.failures else "no"
        cpu_ratio = vd.cpu_ms_per_request / sg.cpu_ms_per_request if sg.cpu_ms_per_request else float("nan")
        ceiling, reachable = "—", "—"
        if workload in limits:
            limit = limits[workload]
            ceiling = f"{limit.rate:.0f} ({limit.p99:.1f})"
            needed = target * vd.rate
            reachable = "yes" if limit.rate >= needed else f"no: needs {needed:.0f}/s"
        lines.append(f"| {workload} | {sg.rate:.0f} | {vd.rate:.0f} | {ratio:.1f}× | ≥{target:.0f}× | "
                     f"{sg.p50:.1f}/{sg.p99:.1f} | {vd.p50:.1f}/{vd.p99:.1f} | {met} | "
                     f"{sg.cpu_ms_per_request:.2f} / {vd.cpu_ms_per_request:.2f} | {cpu_ratio:.1f}× | "
                     f"{ceiling} | {reachable} |")
    exchange, floor = extra["exchange"], extra["floor"]
    share = exchange.rate / floor
    exchange_limit = limits.get("OIDC exchange")
    within = ""
    if exchange_limit is not None:
        within = (f"; client ceiling {exchange_limit.rate:.0f}/s, p50/p99 {exchange_limit.p50:.1f}/"
                  f"{exchange_limit.p99:.1f} ms against a server that does nothing")
    lines += ["", "| stagegate only | rate | p50/p99 ms | against | met |", "|---|---:|---:|---|:---:|",
              f"| stage publish (sequential, 16 KiB) | {extra['stage'].rate:.0f}/s | "
              f"{extra['stage'].p50:.1f}/{extra['stage'].p99:.1f} | — | — |",
              f"| OIDC exchange (c16) | {exchange.rate:.0f}/s | {exchange.p50:.1f}/{exchange.p99:.1f} | "
              f"{share:.0%} of the in-process floor ({floor:.0f}/s; broker CPU {exchange.cpu_ms_per_request:.2f} "
              f"ms/exchange vs floor {1000 / floor:.2f}); target ≥50%, p99 < 25 ms{within} | "
              f"{'yes' if share >= 0.5 and exchange.p99 < 25 and not exchange.failures else 'no'} |",
              f"| 100 MiB stage upload | idle {mem['idle_mib']:.0f} MiB, peak {mem['peak_mib']:.0f} MiB | — | "
              f"growth {mem['growth_ratio']:.2f}× the tarball; target < 3× | "
              f"{'yes' if mem['growth_ratio'] < 3 else 'no'} |",
              f"| body over the limit | {mem['over_limit_status']} in {mem['over_limit_ms']:.0f} ms | — | "
              f"peak afterwards {mem['peak_after_refusal_mib']:.0f} MiB (unchanged: not read) | "
              f"{'yes' if mem['over_limit_status'] == 413 else 'no'} |"]
    return "\n".join(lines)


def plot(results: dict[str, dict[str, Result]], extra: dict, mem: dict, path: Path,
         limits: dict[str, Result] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limits = limits or {}
    labels, ratios, targets, reachable, met = [], [], [], [], []
    for workload, by in results.items():
        labels.append(workload.replace(" (", "\n("))
        ratios.append(by["stagegate"].rate / by["verdaccio"].rate)
        targets.append(_target(workload))
        met.append(ratios[-1] >= targets[-1] and (workload.startswith("publish") or
                                                  by["stagegate"].p99 <= by["verdaccio"].p99))
        if workload in limits:  # the highest ratio this client could show against this Verdaccio
            reachable.append((len(labels) - 1, limits[workload].rate / by["verdaccio"].rate))
    labels.append("OIDC exchange\n(÷ floor; p99 < 25 ms too)")
    ratios.append(extra["exchange"].rate / extra["floor"])
    targets.append(0.5)
    met.append(ratios[-1] >= 0.5 and extra["exchange"].p99 < 25)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars = ax.bar(range(len(labels)), ratios, color=["#2e7d32" if ok else "#c62828" for ok in met])
    ax.scatter(range(len(labels)), targets, marker="_", s=900, color="black", label="target", zorder=3)
    if reachable:
        ax.scatter([i for i, _ in reachable], [r for _, r in reachable], marker="v", s=60, color="#555555",
                   label="client ceiling ÷ Verdaccio: the most this client can show", zorder=3)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("ratio (stagegate ÷ Verdaccio)")
    ax.set_title("stagegate vs Verdaccio 6.8.0, same machine, one run")
    for bar, ratio in zip(bars, ratios, strict=True):
        label = f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.2f}×"
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), label, ha="center", va="bottom")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
