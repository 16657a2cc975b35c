"""The benchmark's verdicts (bench/report.py): what counts as met, and what the client could show."""

from __future__ import annotations

from bench.load import Result
from bench.report import table

MEMORY = {"idle_mib": 80, "peak_mib": 300, "growth_ratio": 2.5, "over_limit_status": 413, "over_limit_ms": 1,
          "peak_after_refusal_mib": 300}


def result(rate: float, p99_ms: float = 10.0, count: int = 1000) -> Result:
    latencies = [p99_ms / 2000] * (count - 20) + [p99_ms / 1000] * 20
    return Result(count, count / rate, latencies, 0)


def row(text: str, workload: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {workload} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def extra(exchange_rate: float, exchange_p99: float, floor: float = 1000.0) -> dict:
    return {"stage": result(200), "exchange": result(exchange_rate, exchange_p99), "floor": floor}


def test_a_read_row_is_met_only_at_five_times_the_peer_with_a_p99_no_worse():
    results = {"GET tarball": {"stagegate": result(5000, 20), "verdaccio": result(900, 30)},
               "GET packument (full)": {"stagegate": result(4000, 40), "verdaccio": result(700, 30)}}
    text = table(results, extra(600, 20), MEMORY)
    assert row(text, "GET tarball")[7] == "yes"
    assert row(text, "GET packument (full)")[7] == "no"  # 5.7× but a worse p99


def test_the_ceiling_column_says_when_a_target_is_beyond_what_the_client_can_send():
    results = {"GET tarball": {"stagegate": result(1500), "verdaccio": result(800)},
               "GET packument (full)": {"stagegate": result(1200), "verdaccio": result(150)}}
    limits = {"GET tarball": result(1800), "GET packument (full)": result(1800)}
    text = table(results, extra(600, 20), MEMORY, limits)
    assert row(text, "GET tarball")[-1] == "no: needs 4000/s"
    assert row(text, "GET packument (full)")[-1] == "yes"


def test_the_exchange_needs_half_the_floor_and_a_p99_under_25_ms():
    results = {"GET tarball": {"stagegate": result(1500), "verdaccio": result(800)}}
    assert row(table(results, extra(600, 20), MEMORY), "OIDC exchange (c16)")[-1] == "yes"
    assert row(table(results, extra(600, 30), MEMORY), "OIDC exchange (c16)")[-1] == "no"
    assert row(table(results, extra(400, 20), MEMORY), "OIDC exchange (c16)")[-1] == "no"
