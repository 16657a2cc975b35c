"""HTTP plumbing that needs no server."""

import pytest

from broker.api.http import accepts_gzip


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip, deflate", True),
    ("gzip,deflate,br", True),
    ("br;q=1.0, gzip;q=0.5", True),
    ("*", True),
    ("GZIP", True),
    ("gzip;q=0", False),
    ("gzip;q=0.0, deflate", False),
    ("gzip;q=nonsense", False),
    ("identity", False),
    ("deflate, br", False),
    ("", False),
    (None, False),
])
def test_accepts_gzip(header, expected):
    assert accepts_gzip(header) is expected
