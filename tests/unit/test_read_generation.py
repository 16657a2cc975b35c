"""The write generation and the whole responses kept against it (store/generation.py, api/readcache.py)."""

from __future__ import annotations

import multiprocessing

from broker.api.readcache import ReadyResponses
from broker.store.generation import Generation


def _bump_many(path, times: int) -> None:
    generation = Generation(path)
    for _ in range(times):
        generation.bump()
    generation.close()


def test_a_bump_in_one_mapping_is_seen_by_another(tmp_path):
    reader, writer = Generation(tmp_path / "gen"), Generation(tmp_path / "gen")
    before = reader.value()
    writer.bump()
    assert reader.value() == before + 1


def test_concurrent_bumps_from_processes_are_never_lost(tmp_path):
    path = tmp_path / "gen"
    workers = [multiprocessing.get_context("fork").Process(target=_bump_many, args=(path, 500)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert Generation(path).value() == 1500


def test_a_kept_response_is_served_only_at_its_generation():
    ready = ReadyResponses()
    ready.put((b"/pkg", False, False), 7, "/{pkg}", [(b"content-length", b"2")], b"{}")
    assert ready.get((b"/pkg", False, False), 7).body == b"{}"
    assert ready.get((b"/pkg", False, False), 8) is None
    assert ready.get((b"/pkg", True, False), 7) is None  # another representation


def test_a_revalidation_bound_retires_a_kept_response(monkeypatch):
    ready = ReadyResponses(revalidate=1.0)
    clock = [100.0]
    monkeypatch.setattr("broker.api.readcache.time.monotonic", lambda: clock[0])
    ready.put((b"/pkg", False, False), 1, "/{pkg}", [], b"x")
    clock[0] += 0.9
    assert ready.get((b"/pkg", False, False), 1) is not None
    clock[0] += 0.2
    assert ready.get((b"/pkg", False, False), 1) is None


def test_reads_from_memory_are_bounded_by_default_only_over_postgresql(tmp_path):
    from broker.settings import Settings

    assert Settings(data_dir=tmp_path).resolved_read_revalidate_seconds() is None  # one host: the file says all
    shared = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db/registry")
    assert shared.resolved_read_revalidate_seconds() == 1.0  # instances may be on hosts that share no file
    assert Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db/registry",
                    read_revalidate_seconds=0).resolved_read_revalidate_seconds() == 0
