"""Large JSON bodies parsed with their long strings in files (api/spill.py)."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest

from broker.api import spill
from broker.api.spill import SpilledString, parse_large_json
from broker.errors import RegistryError


@pytest.fixture(autouse=True)
def tiny_limits(monkeypatch):
    """Strings over 16 bytes spill and the body is read 7 bytes at a time: every boundary is crossed."""
    monkeypatch.setattr(spill, "SPILL_FROM", 16)
    monkeypatch.setattr(spill, "_SLICE", 7)


def parsed(document) -> object:
    text = document if isinstance(document, (bytes, str)) else json.dumps(document)
    return parse_large_json(io.BytesIO(text.encode() if isinstance(text, str) else text))


def test_an_attachments_data_is_kept_in_a_file_and_read_back_in_slices():
    data = base64.b64encode(os.urandom(300)).decode()
    document = parsed({"name": "x", "_attachments": {"x-1.0.0.tgz": {"data": data, "length": 300}}})
    spilled = document["_attachments"]["x-1.0.0.tgz"]["data"]
    assert isinstance(spilled, SpilledString) and len(spilled) == len(data)
    assert b"".join(spilled.ascii_chunks(8)).decode() == data


@pytest.mark.parametrize("value", ['a "quoted" long readme\nwith lines\\ and \u00e9 and \U0001f600 ' * 3,
                                   "ends with a backslash \\", "\\" * 40, "x" * 16, "x" * 17])
def test_long_strings_elsewhere_come_back_as_the_same_text(value):
    document = {"readme": value, value: [value, {"k": value}], "short": "s", "n": [1, 2.5, None, True]}
    assert parsed(document) == json.loads(json.dumps(document))


def test_an_escaped_attachment_is_decoded_from_its_json_text():
    data = base64.b64encode(b"\xff\xff\xff" + os.urandom(87)).decode()  # "////" at least
    text = json.dumps({"_attachments": {"a.tgz": {"data": data}}}).replace("/", "\\/")
    spilled = parsed(text)["_attachments"]["a.tgz"]["data"]
    assert spilled.escaped and b"".join(spilled.ascii_chunks(4)).decode() == data


def test_a_nul_in_a_spilled_string_is_refused():
    with pytest.raises(RegistryError) as caught:
        parsed('{"readme": "a long readme with a \\u0000 in it"}')
    assert caught.value.status == 400


@pytest.mark.parametrize("text", ['{"readme": "a long string that never ends', '{"a": "b"', '{"a": NaN}',
                                  '{"readme": "a long string with a raw \x01 control character"}'])
def test_malformed_documents_are_a_400(text):
    with pytest.raises(RegistryError) as caught:
        parsed(text)
    assert caught.value.status == 400


def test_a_string_shaped_like_a_placeholder_stays_what_it_is():
    forged = "0" * 32 + ":0"
    document = parsed({"_attachments": {"a.tgz": {"data": "y" * 40}}, "readme": forged, forged: forged})
    assert document["readme"] == forged and document[forged] == forged
    assert b"".join(document["_attachments"]["a.tgz"]["data"].ascii_chunks(4)) == b"y" * 40


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\udc00\\ud800"])
def test_a_lone_surrogate_escape_in_a_spilled_string_is_refused_as_in_a_small_body(escape):
    """No UTF-8 encodes such a string: stored, it would fail every time the document is served."""
    text = '{"readme": "a long readme with ' + escape + ' in it"}'
    for parse in (parsed, lambda t: spill.parse_json(t.encode())):
        with pytest.raises(RegistryError) as caught:
            parse(text)
        assert caught.value.status == 400 and caught.value.code == "body.invalid-json"
    assert parsed('{"readme": "a long readme with a pair \\ud83d\\ude00 in it"}')["readme"].endswith("\U0001f600 in it")
