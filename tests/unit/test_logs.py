"""Log lines: secrets redacted, request ids sane, JSON one object per line."""

from __future__ import annotations

import json
import logging

import pytest

from broker.logs import JsonFormatter, RedactingFilter, redact, request_id, request_id_from

TOKEN = "sg_" + "A1b2-C3d4_" * 4 + "xyz"


@pytest.mark.parametrize("text", [
    f"DELETE /-/user/token/{TOKEN}",
    f"DELETE /-/npm/v1/tokens/token/{TOKEN}",
    f"GET /{TOKEN}",
    "DELETE /-/npm/v1/tokens/token/0123abcd",
    "auth eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyIn0.c2lnbmF0dXJl",
])
def test_secrets_are_redacted(text):
    cleaned = redact(text)
    assert TOKEN not in cleaned and "0123abcd" not in cleaned and "eyJzdWIiOiJyIn0" not in cleaned


def test_ordinary_paths_are_left_alone():
    assert redact("GET /@scope%2fname/-/name-1.0.0.tgz 200") == "GET /@scope%2fname/-/name-1.0.0.tgz 200"


@pytest.mark.parametrize("header,kept", [("abc-123", True), ("0f" * 16, True), ("a b", False), ("x" * 129, False),
                                         ("evil\nline", False), ("", False), (None, False), (TOKEN, False)])
def test_request_id_is_the_clients_only_when_sane(header, kept):
    assert (request_id_from(header) == header) is kept


def test_json_lines_carry_the_request_id_and_extras_and_no_secret():
    record = logging.LogRecord("stagegate.access", logging.INFO, __file__, 1, "%s %s", ("DELETE", f"/{TOKEN}"), None)
    record.status = 204
    token = request_id.set("trace-1")
    try:
        RedactingFilter().filter(record)
    finally:
        request_id.reset(token)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["request_id"] == "trace-1" and entry["status"] == 204 and entry["level"] == "info"
    assert TOKEN not in line and "\n" not in line
