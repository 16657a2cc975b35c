"""The bench client (bench/load.py) times requests, not its own setup."""

from __future__ import annotations

import httpx
import pytest

from bench import load


def test_building_the_lane_clients_is_left_out_of_the_timed_part(monkeypatch):
    clock = {"now": 0.0}  # a fake clock that only the client's setup and the requests move
    monkeypatch.setattr(load.time, "perf_counter", lambda: clock["now"])
    real_client = httpx.AsyncClient

    def client_loading_a_tls_context(**options):
        clock["now"] += 0.015  # what each AsyncClient's TLS context cost, blocking, when it was timed
        return real_client(**options)

    monkeypatch.setattr(load.httpx, "AsyncClient", client_loading_a_tls_context)

    async def answered_in_a_millisecond(client):
        clock["now"] += 0.001
        return httpx.Response(200)

    result = load.run([answered_in_a_millisecond] * 32, concurrency=16)
    assert result.count == 32 and result.failures == 0
    assert result.seconds == pytest.approx(0.032)
    assert max(result.latencies) == pytest.approx(0.001)
    assert result.rate == pytest.approx(1000)
