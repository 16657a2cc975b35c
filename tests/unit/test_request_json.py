"""Parsing untrusted JSON bodies: malformed, deep or huge input is a 400 body.invalid-json."""

from __future__ import annotations

import pytest

from broker.api.http import MAX_JSON_DEPTH, MAX_JSON_SEPARATORS, _separators_exceed, parse_json
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


@pytest.mark.parametrize("raw, name", [("NaN", "NaN"), ('{"a": Infinity}', "Infinity"), ("[-Infinity]", "-Infinity")])
def test_nan_and_infinity_are_not_json(raw, name):
    with pytest.raises(RegistryError) as caught:
        parse_json(raw)
    assert caught.value.code == "body.invalid-json" and f"{name} is not a JSON value" in caught.value.error


def refusal(raw: bytes | str) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        parse_json(raw)
    assert caught.value.status == 400 and caught.value.code == "body.invalid-json"
    return caught.value


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1024, 1025, 100_000])
@pytest.mark.parametrize("open_, close", [("[", "]"), ('{"a":', "}")])
def test_nesting_past_the_limit_is_refused_as_too_deep(levels, open_, close):
    """1024 is the deepest orjson builds (our walk refuses it); past that orjson refuses before building."""
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in refusal(open_ * levels + "0" + close * levels).error


def test_an_unclosed_100000_deep_body_is_refused_as_too_deep():
    assert "nested deeper" in refusal(b"[" * 100_000).error


@pytest.mark.parametrize("raw", [rb'"\ud800"', rb'["\udc00"]', rb'{"\ud800": 1}', rb'"\ud800\u0041"'])
def test_a_lone_surrogate_escape_is_refused(raw):
    """The stdlib kept "\\ud800" as a str that no UTF-8 encodes: storing or serving the document failed."""
    assert "surrogate" in refusal(raw).error


def test_a_surrogate_pair_escape_is_one_character():
    assert parse_json(rb'"\ud83d\ude00"') == "\U0001F600"


@pytest.mark.parametrize("raw", [b"\xff", b'"\xc0\xaf"', b'["\xed\xa0\x80"]', b'"\xe2\x82"'])
def test_invalid_utf8_is_refused_as_such(raw):
    assert "UTF-8" in refusal(raw).error


def test_a_utf8_byte_order_mark_is_refused():
    assert "order mark" in refusal(b"\xef\xbb\xbf{}").error


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n"])
def test_an_empty_body_is_refused(raw):
    refusal(raw)


@pytest.mark.parametrize("number", [10**100, -(10**100), 2**64, 2**64 - 1, -(2**63) - 1, -(2**63), 2**53 + 1])
def test_a_wide_integer_keeps_its_exact_value(number):
    """orjson reads an integer outside 64 bits as a float; the body is then parsed by the stdlib instead."""
    value = parse_json(f'{{"n": [{number}], "f": 1.5}}')
    assert value == {"n": [number], "f": 1.5} and type(value["n"][0]) is int


@pytest.mark.parametrize("raw, number", [("1e100", 1e100), ("[-1.8446744073709552e19]", -1.8446744073709552e19),
                                         ("12345678901234567890.0", 12345678901234567890.0)])
def test_a_wide_float_stays_a_float(raw, number):
    value = parse_json(raw)
    assert value in (number, [number]) and type(value if type(value) is float else value[0]) is float


@pytest.mark.parametrize("raw", ["1e400", "[-1e400]", "1" + "0" * 400])
def test_a_number_beyond_a_double_is_refused_not_made_infinite(raw):
    """The stdlib read 1e400 as inf, which is stored as `Infinity`: no client parses that back."""
    refusal(raw)


def test_numbers_keep_the_types_they_are_written_with():
    value = parse_json("[1, 1.0, -0, -0.0, 1e2, 9007199254740993, true, null]")
    assert [type(item) for item in value] == [int, float, int, float, float, int, bool, type(None)]
    assert value[5] == 9007199254740993 and str(value[3]) == "-0.0"


def test_a_duplicate_key_keeps_the_last_value_in_the_first_place():
    assert list(parse_json('{"a": 1, "b": 2, "a": 3}').items()) == [("a", 3), ("b", 2)]


def test_malformed_json_says_where():
    assert "line 1 column" in refusal(b'{"a": 1,}').error


@pytest.mark.parametrize("positions", [[0], [65_535, 65_536], [131_071, 131_072, 299_999],
                                       list(range(0, 300_000, 997))])
def test_separators_are_counted_exactly_across_slices(positions):
    raw = bytearray(b"A" * 300_000)
    for at, separator in zip(positions, b",[{" * len(positions)):
        raw[at] = separator
    raw = bytes(raw)
    assert not _separators_exceed(raw, len(positions)) and _separators_exceed(raw, len(positions) - 1)


def test_a_long_string_then_values_up_to_the_limit_parses():
    raw = b'["' + b"A" * 300_000 + b'"' + b",0" * (MAX_JSON_SEPARATORS - 1) + b"]"
    assert len(parse_json(raw)) == MAX_JSON_SEPARATORS


def test_a_long_string_then_one_value_too_many_is_refused():
    raw = b'["' + b"A" * 300_000 + b'"' + b",0" * MAX_JSON_SEPARATORS + b"]"
    assert f"more than {MAX_JSON_SEPARATORS} values" in refusal(raw).error


def test_a_wide_float_written_as_a_float_is_not_parsed_twice(monkeypatch):
    """Only an integer literal of 19 digits or more can be one orjson turned into a float."""
    from broker.api import http

    def second_parse(raw):
        raise AssertionError("parsed again with the stdlib")

    monkeypatch.setattr(http, "_parse_exact", second_parse)
    assert http.parse_json(b'{"a": [1e300, -2.5e100], "b": "1234567890"}') == {"a": [1e300, -2.5e100], "b": "1234567890"}
    with pytest.raises(AssertionError, match="parsed again"):
        http.parse_json(b'{"a": 10000000000000000000000}')
