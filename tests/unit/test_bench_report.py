"""The benchmark's verdicts (bench/report.py): what counts as met against the peer and the floor."""

from __future__ import annotations

from bench.load import Result
from bench.report import table
from bench.wrk import WrkResult

MEMORY = {"idle_mib": 80, "peak_mib": 200, "growth_ratio": 1.2, "over_limit_status": 413, "over_limit_ms": 1,
          "peak_after_refusal_mib": 200}
INFO = {"cpu": "test", "load before": "0.1 0.1 0.1"}


def result(rate: float, p99_ms: float = 10.0, count: int = 1000) -> Result:
    latencies = [p99_ms / 2000] * (count - 20) + [p99_ms / 1000] * 20
    return Result(count, count / rate, latencies, 0)


def reads(rate: float) -> WrkResult:
    return WrkResult(int(rate * 8), 8.0, 0.5, 2.0, 0)


def row(text: str, workload: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {workload}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def extra(exchange_rate: float, exchange_p99: float, floor: float = 1000.0) -> dict:
    return {"stage": result(200), "exchange": result(exchange_rate, exchange_p99), "floor": floor}


def results(sg: float, vd: float, floor: float) -> dict:
    return {"stagegate": {"GET tarball (16 KiB)": reads(sg), "publish 16 KiB (sequential)": result(sg / 10)},
            "verdaccio": {"GET tarball (16 KiB)": reads(vd), "publish 16 KiB (sequential)": result(vd / 10)},
            "floor": {"GET tarball (16 KiB)": reads(floor)}}


def test_a_tarball_row_needs_five_times_the_peer_and_thirty_percent_of_the_floor():
    assert row(table(results(6000, 1000, 20000), extra(600, 20), MEMORY, INFO), "GET tarball")[-1] == "yes"
    assert row(table(results(4000, 1000, 10000), extra(600, 20), MEMORY, INFO), "GET tarball")[-1] == "no"
    assert row(table(results(6000, 1000, 30000), extra(600, 20), MEMORY, INFO), "GET tarball")[-1] == "no"


def test_a_publish_row_needs_three_times_the_peer():
    assert row(table(results(3100, 1000, 20000), extra(600, 20), MEMORY, INFO), "publish 16 KiB")[-1] == "yes"
    assert row(table(results(2900, 1000, 20000), extra(600, 20), MEMORY, INFO), "publish 16 KiB")[-1] == "no"


def test_the_exchange_needs_half_the_floor_and_a_p99_under_25_ms():
    base = results(6000, 1000, 20000)
    assert row(table(base, extra(600, 20), MEMORY, INFO), "OIDC exchange")[-1] == "yes"
    assert row(table(base, extra(600, 30), MEMORY, INFO), "OIDC exchange")[-1] == "no"
    assert row(table(base, extra(400, 20), MEMORY, INFO), "OIDC exchange")[-1] == "no"


def test_a_p99_target_that_asks_more_than_the_floor_does_says_by_how_much():
    base = results(6000, 1000, 20000)
    # 16 clients under 25 ms need 640/s: a floor of 620/s cannot give it, one of 1000/s could
    slow = row(table(base, extra(320, 70, floor=620.0), MEMORY, INFO), "OIDC exchange")[-1]
    assert slow.startswith("no: p99 < 25 ms at c16 needs ≥640/s") and "floor's 620/s" in slow
    assert row(table(base, extra(320, 70, floor=1000.0), MEMORY, INFO), "OIDC exchange")[-1] == "no"
    assert row(table(base, extra(200, 20, floor=620.0), MEMORY, INFO), "OIDC exchange")[-1] == "no"


def test_the_upload_needs_at_most_one_and_a_half_times_the_tarball():
    base = results(6000, 1000, 20000)
    assert row(table(base, extra(600, 20), MEMORY, INFO), "100 MiB")[-1] == "yes"
    assert row(table(base, extra(600, 20), {**MEMORY, "growth_ratio": 1.6}, INFO), "100 MiB")[-1] == "no"


def test_the_access_log_is_off_by_default_when_it_costs_a_tenth_or_more():
    base = results(6000, 1000, 20000)
    cheap = {**extra(600, 20), "access log": {"on": reads(9500), "off": reads(10000)}}
    dear = {**extra(600, 20), "access log": {"on": reads(8500), "off": reads(10000)}}
    assert row(table(base, cheap, MEMORY, INFO), "GET tarball, access log")[-1] == "no"  # it is off
    assert row(table(base, dear, MEMORY, INFO), "GET tarball, access log")[-1] == "yes"


def test_a_missed_publish_says_whether_even_the_durable_floor_misses_the_target():
    def with_floors(durable: float) -> dict:
        found = results(2000, 1000, 20000)  # publishes: 200/s against the peer's 100/s, target 3x
        found["publish floors"] = {"publish 16 KiB (sequential)": {"durable": result(durable),
                                                                   "receive": result(5000)}}
        return found

    out_of_reach = row(table(with_floors(250), extra(600, 20), MEMORY, INFO), "publish 16 KiB")
    assert out_of_reach[-1] == "no: out of reach, the durable floor is 2.5× Verdaccio"
    assert out_of_reach[-2] == "80% of durable"
    assert "durable 250" in out_of_reach[-3] and "receive 5000" in out_of_reach[-3]
    assert row(table(with_floors(400), extra(600, 20), MEMORY, INFO), "publish 16 KiB")[-1] == "no"
