"""Large JSON bodies parsed without their long strings in memory.

A publish of a 100 MiB tarball is a 133 MiB JSON document whose bulk is one base64 string. Parsed
whole, the body's text and that string are both in memory (2.7x the tarball at the peak). Here the
body is read from its temporary file in slices; every string longer than SPILL_FROM goes to a
temporary file of its own instead, and the document parsed in memory holds a placeholder for it
(a random nonce: a client cannot write one). The attachments' data become `SpilledString`s, which
the publish decodes slice by slice; any other long string is read back as text (rare: a huge readme).

Only string *contents* are diverted; everything else, the quotes around placeholders included, is
parsed by `parse_json` with its usual limits, and a diverted string is checked as JSON would check it.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..domain.publish import LongString
from .http import MAX_JSON_SEPARATORS, SPILL_FROM, _NUL_ESCAPE, invalid_json, orjson_refusal, parse_json

MIB = 1024 * 1024
_SLICE = MIB
# The rest of a string's body within a slice: plain runs and escape pairs, in C (no Python loop per
# character); it stops at the closing quote, at the slice's end, or at a backslash that ends the slice.
_STRING_BODY = re.compile(rb'(?:[^"\\]++|\\.)*+', re.DOTALL)


class SpilledString(LongString):
    """A JSON string's raw contents (still escaped) in a temporary file."""

    def __init__(self, file: BinaryIO, size: int, escaped: bool) -> None:
        self._file, self._size, self.escaped = file, size, escaped

    def __len__(self) -> int:
        return self._size

    def ascii_chunks(self, size: int) -> Iterator[bytes]:
        if self.escaped:  # base64 never needs an escape; JSON allows "\/" though: decode the text then
            text = self.text().encode("ascii", errors="strict")
            yield from (text[i:i + size] for i in range(0, len(text), size))
            return
        self._file.seek(0)
        while chunk := self._file.read(size):
            yield chunk

    def text(self) -> str:
        self._file.seek(0)
        raw = self._file.read()
        if self.escaped and _NUL_ESCAPE.search(raw.decode("utf-8", errors="replace")):
            raise invalid_json("a string holds a NUL character (\\u0000), which this registry does not accept")
        try:  # the same parser, and so the same refusals (a lone surrogate escape), as parse_json
            value = orjson.loads(b'"' + raw + b'"')
        except orjson.JSONDecodeError as exc:
            raise orjson_refusal(exc) from None
        return value

    def close(self) -> None:
        self._file.close()


class _Splitter:
    """The document's text without its long strings, and those strings, from slices of the body."""

    def __init__(self, tmp_dir: Path | None) -> None:
        self.kept: list[bytes] = []
        self.spilled: dict[str, SpilledString] = {}
        self._nonce = secrets.token_hex(16)
        self._tmp_dir = tmp_dir
        self._in_string = self._escape = False
        self._strings = 0

    def feed(self, chunk: bytes) -> None:
        pos, end = 0, len(chunk)
        while pos < end:
            if not self._in_string:
                quote = chunk.find(b'"', pos)
                if quote < 0:
                    self.kept.append(chunk[pos:])
                    return
                self.kept.append(chunk[pos:quote + 1])
                self._open_string()
                pos = quote + 1
                continue
            if self._escape:  # the slice before ended with a backslash: this byte is what it escapes
                self._add(chunk[pos:pos + 1])
                self._escape, pos = False, pos + 1
                continue
            stop = _STRING_BODY.match(chunk, pos).end()
            self._add(chunk[pos:stop])
            if stop == end:
                return
            if chunk[stop] == 0x22:  # the closing quote
                self._close_string()
                pos = stop + 1
            else:  # a backslash, the slice's last byte
                self._add(chunk[stop:])
                self._escape, pos = True, end

    def finish(self) -> bytes:
        if self._in_string:
            raise invalid_json("the document ends inside a string")
        return b"".join(self.kept)

    def _open_string(self) -> None:
        self._in_string, self._pieces, self._size, self._file, self._escaped = True, [], 0, None, False
        self._strings += 1
        if self._strings > MAX_JSON_SEPARATORS:
            raise invalid_json(f"more than {MAX_JSON_SEPARATORS} values")

    def _add(self, piece: bytes) -> None:
        if not piece:
            return
        self._escaped = self._escaped or b"\\" in piece
        self._size += len(piece)
        if self._file is not None:
            self._file.write(piece)
            return
        self._pieces.append(piece)
        if self._size > SPILL_FROM:
            self._file = tempfile.TemporaryFile(dir=self._tmp_dir)
            for kept in self._pieces:
                self._file.write(kept)
            self._pieces = []

    def _close_string(self) -> None:
        self._in_string = False
        if self._file is None:
            self.kept.extend(self._pieces)
            self.kept.append(b'"')
            return
        key = f"{self._nonce}:{len(self.spilled)}"
        self.spilled[key] = SpilledString(self._file, self._size, self._escaped)
        self.kept.append(key.encode() + b'"')


def parse_large_json(body: BinaryIO, tmp_dir: Path | None = None) -> Any:
    """The JSON document in `body`, its attachments' data as SpilledStrings when long (see above)."""
    splitter = _Splitter(tmp_dir)
    body.seek(0)
    while chunk := body.read(_SLICE):
        splitter.feed(chunk)
    document = parse_json(splitter.finish())
    if not splitter.spilled:
        return document
    return _put_back(document, splitter.spilled)


def _put_back(document: Any, spilled: dict[str, SpilledString]) -> Any:
    """Each placeholder replaced: by its SpilledString at _attachments.<name>.data, by its text elsewhere."""
    attachments = document.get("_attachments") if isinstance(document, dict) else None
    if isinstance(attachments, dict):
        for item in attachments.values():
            if isinstance(item, dict) and isinstance(item.get("data"), str) and item["data"] in spilled:
                item["data"] = spilled.pop(item["data"])
    if not spilled:
        return document

    def restore(value: Any) -> Any:
        return spilled.pop(value).text() if isinstance(value, str) and value in spilled else value

    stack = [document]
    while stack and spilled:
        item = stack.pop()
        if isinstance(item, dict):
            for key in list(item):
                value = item.pop(key)
                item[restore(key)] = restore(value)
                if isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            for index, value in enumerate(item):
                item[index] = restore(value)
                if isinstance(value, (dict, list)):
                    stack.append(value)
    return restore(document)
