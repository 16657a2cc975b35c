"""The bench's pure parts: reading wrk's output and the path-rotation script it is given."""

from __future__ import annotations

import pytest

from bench.wrk import parse, rotation_script

OUTPUT = """Running 8s test @ http://127.0.0.1:4873/pkg
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   580.12us  301.44us  12.01ms   91.02%
    Req/Sec    27.61k     1.20k   29.01k    80.00%
  Latency Distribution
     50%  521.00us
     75%  640.00us
     90%  800.00us
     99%    1.71ms
  219800 requests in 8.00s, 3.41GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  27475.00
Transfer/sec:    436.44MB
"""


def test_rate_percentiles_and_failures_come_from_wrks_text():
    result = parse(OUTPUT)
    assert result.count == 219800 and result.seconds == 8.0 and result.rate == 27475.0
    assert result.p50 == pytest.approx(0.521) and result.p99 == pytest.approx(1.71)
    assert result.failures == 7


def test_text_that_is_not_wrks_is_refused():
    with pytest.raises(ValueError):
        parse("wrk: command failed")


def test_the_rotation_script_lists_every_path_quoted():
    script = rotation_script(['/a/-/a-1.0.0.tgz', '/b"c'])
    assert '"/a/-/a-1.0.0.tgz", "/b\\"c"' in script and "wrk.format(nil, paths[(i % #paths) + 1])" in script
