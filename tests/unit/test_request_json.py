"""Parsing untrusted JSON bodies: malformed, deep or huge input is a 400 body.invalid-json."""

from __future__ import annotations

import pytest

from broker.api.http import MAX_JSON_DEPTH, parse_json
from broker.errors import RegistryError


@pytest.mark.parametrize("raw", [
    b"[" * 100_000,
    b'{"a":' * 100_000,
    b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
    b"[" + b"0," * 1_000_001 + b"0]",
    b"{",
    b"\xff\xfe",
    b"",
])
def test_hostile_or_malformed_json_is_invalid_json(raw):
    with pytest.raises(RegistryError) as caught:
        parse_json(raw)
    assert caught.value.status == 400 and caught.value.code == "body.invalid-json"


def test_a_document_at_the_depth_limit_parses():
    raw = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(raw) is not None


def test_a_publish_shaped_document_parses():
    doc = parse_json(b'{"name":"x","versions":{"1.0.0":{"exports":{".":{"import":{"types":"./a.d.ts"}}}}},'
                     b'"_attachments":{"x-1.0.0.tgz":{"data":"' + b"A" * 100_000 + b'"}}}')
    assert doc["name"] == "x"


@pytest.mark.parametrize("raw", [r'"a\u0000b"', r'{"x": "\\\u0000"}', r'["\u0000"]'])
def test_a_nul_character_in_a_string_is_invalid_json(raw):
    with pytest.raises(RegistryError) as caught:
        parse_json(raw)
    assert caught.value.code == "body.invalid-json" and "NUL" in caught.value.error


@pytest.mark.parametrize("raw, text", [(r'"\\u0000"', "\\u0000"), (r'"\\\\u0000"', "\\\\u0000"), (r'"\u0001"', "\x01")])
def test_an_escaped_backslash_before_u0000_is_text_not_nul(raw, text):
    assert parse_json(raw) == text


@pytest.mark.parametrize("raw", ["NaN", '{"a": Infinity}', "[-Infinity]"])
def test_nan_and_infinity_are_not_json(raw):
    with pytest.raises(RegistryError) as caught:
        parse_json(raw)
    assert caught.value.code == "body.invalid-json"
