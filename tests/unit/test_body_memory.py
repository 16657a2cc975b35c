"""Request bodies in memory: up to IN_MEMORY_UP_TO each, within the worker's memory share, else a file."""

from __future__ import annotations

from broker.api.bodies import IN_MEMORY_UP_TO, Body, UploadBudget

KIB = 1024


def _body(budget: UploadBudget, tmp_path, chunks: list[bytes]) -> Body:
    body = Body(budget, tmp_path)
    for chunk in chunks:
        body.add(chunk)
    return body


def test_a_body_within_the_share_stays_in_memory_and_gives_the_share_back_at_close(tmp_path):
    budget = UploadBudget(capacity=10 * IN_MEMORY_UP_TO, memory=1024 * KIB)
    body = _body(budget, tmp_path, [b"a" * 64 * KIB, b"b" * 64 * KIB])
    assert budget.in_memory == 128 * KIB and not list(tmp_path.iterdir())
    assert body.read() == b"a" * 64 * KIB + b"b" * 64 * KIB
    assert body.read() == b""
    assert budget.in_memory == 128 * KIB  # given back on the event loop only, at close()
    body.close()
    assert budget.in_memory == 0


def test_a_body_goes_to_a_file_when_the_share_is_spent_and_gives_back_what_it_held(tmp_path):
    budget = UploadBudget(capacity=10 * IN_MEMORY_UP_TO, memory=100 * KIB)
    other = _body(budget, tmp_path, [b"x" * 60 * KIB])
    body = _body(budget, tmp_path, [b"a" * 30 * KIB, b"b" * 30 * KIB])
    assert budget.in_memory == 60 * KIB  # its second chunk did not fit: the body went to a file, its share back
    assert body.file().read() == b"a" * 30 * KIB + b"b" * 30 * KIB
    body.close()
    other.close()
    assert budget.in_memory == 0


def test_a_body_past_the_in_memory_size_goes_to_a_file(tmp_path):
    budget = UploadBudget(capacity=10 * IN_MEMORY_UP_TO, memory=4 * IN_MEMORY_UP_TO)
    chunk = b"z" * (IN_MEMORY_UP_TO // 2)
    body = _body(budget, tmp_path, [chunk, chunk, b"!"])
    assert budget.in_memory == 0
    assert body.read() == chunk + chunk + b"!"
    body.close()


def test_a_body_that_trickles_in_as_many_small_pieces_goes_to_a_file(tmp_path):
    from broker.api.bodies import MAX_CHUNKS_IN_MEMORY

    budget = UploadBudget(capacity=10 * IN_MEMORY_UP_TO, memory=4 * IN_MEMORY_UP_TO)
    body = _body(budget, tmp_path, [b"ab"] * (MAX_CHUNKS_IN_MEMORY + 1))  # each piece's overhead is not charged
    assert budget.in_memory == 0 and body.file().read() == b"ab" * (MAX_CHUNKS_IN_MEMORY + 1)
    body.close()


def test_long_accept_headers_are_not_kept_in_the_variant_cache():
    from broker.api.http import _request_variant, request_variant

    before = _request_variant.cache_info().currsize
    assert request_variant("application/vnd.npm.install-v1+json;" + "x" * 1000, "gzip") == (True, True)
    assert _request_variant.cache_info().currsize == before
