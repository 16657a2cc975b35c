"""Request and response plumbing shared by every handler: bodies with limits, JSON, routing."""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from ..domain.packument import wants_abbreviated
from ..errors import RegistryError, bad_request
from .bodies import Body

KIB = 1024
SMALL_BODY = 256 * KIB
SPILL_FROM = 4 * 1024 * KIB  # bodies larger than this are parsed with their long strings in files


MAX_JSON_DEPTH = 64  # far deeper than any package document; deeper input is an attack on recursion
# Each JSON value costs Python tens of bytes; a body of a million tiny values ("[[],[],…]") would cost
# gigabytes to parse. A real document is a few metadata fields and one long base64 string.
MAX_JSON_SEPARATORS = 1_000_000


# PostgreSQL's text type cannot hold NUL, and no package field needs it: refused at the boundary. In
# JSON a NUL can only be written as the escape \u0000 (raw control characters are invalid), so an
# escape not itself escaped ("\\u0000" is a backslash and text) is what to look for.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def invalid_json(detail: str) -> RegistryError:
    return bad_request(f"the request body is not valid JSON: {detail}", code="body.invalid-json")


# Every byte but the separators: deleting them leaves the separators to count in one pass in C that
# allocates only what it keeps (three str.count passes over a 1 MiB publish took 1 ms; this, 0.3 ms).
_NOT_SEPARATORS = bytes(b for b in range(256) if b not in b",[{")
_SEPARATOR_SLICE = 64 * KIB
_NUL_ESCAPE_BYTES = re.compile(_NUL_ESCAPE.pattern.encode())
# orjson reads an integer outside 64 bits (below -2**63 or above 2**64-1) as the nearest float, which is
# at least this large: such a float sends the body to the stdlib's parse, which keeps every integer exact.
_WIDE_FLOAT = float(2**63)
# ... but only when the body has an integer of 19 digits or more (any beyond 64 bits has): a wide float
# written as a float (1e300) must not buy a second parse of the whole body.
_LONG_INTEGER = re.compile(rb"[0-9]{19}")


def parse_json(raw: bytes | str) -> Any:
    """A JSON document from untrusted bytes: 400 `body.invalid-json` for anything malformed or too deep.

    orjson parses (half the stdlib's time on a 1 MiB publish) and refuses by itself what is not JSON
    or not text: invalid UTF-8, a BOM, NaN and Infinity, a number beyond a double's range (the stdlib
    read 1e400 as inf, which is written back as `Infinity`: no client parses that) and a lone surrogate
    escape such as "\\ud800" (the stdlib kept it: a str no UTF-8 encodes, which fails when served)."""
    if isinstance(raw, str):
        raw = raw.encode()
    _check_before_parsing(raw)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise orjson_refusal(exc) from None
    if _nested_too_deep_or_wide_float(value) and _LONG_INTEGER.search(raw):
        del value  # not held while the stdlib parses the same text (rare: see _WIDE_FLOAT)
        return _parse_exact(raw)
    return value


def _check_before_parsing(raw: bytes) -> None:
    """Refuse what must not reach the parser: too many values to build, a NUL escape."""
    if _separators_exceed(raw, MAX_JSON_SEPARATORS):
        raise invalid_json(f"more than {MAX_JSON_SEPARATORS} values")
    # A NUL escape needs a backslash; a tarball's base64 has none, and memchr finds that in microseconds.
    if b"\\" in raw and b"\\u0000" in raw and _NUL_ESCAPE_BYTES.search(raw):
        raise invalid_json("a string holds a NUL character (\\u0000), which this registry does not accept")


def _separators_exceed(raw: bytes, limit: int) -> bool:
    """Whether `raw` holds more than `limit` of the bytes , [ { (each value but the first follows one).

    A body no longer than `limit` cannot. A publish is mostly one base64 string, which holds none: a
    64 KiB slice without any is skipped by memchr (bytes.find) at memory speed, and only the slices
    holding one are counted (with translate: 1 ms for a 1.4 MB publish whole, 0.1 ms by slices)."""
    if len(raw) <= limit:
        return False
    count = 0
    for start in range(0, len(raw), _SEPARATOR_SLICE):
        end = start + _SEPARATOR_SLICE
        if raw.find(b",", start, end) < 0 and raw.find(b"[", start, end) < 0 and raw.find(b"{", start, end) < 0:
            continue
        count += len(raw[start:end].translate(None, _NOT_SEPARATORS))
        if count > limit:
            return True
    return False


def orjson_refusal(exc: orjson.JSONDecodeError) -> RegistryError:
    """The 400 for what orjson refused: its reason, reworded where it says less than the stdlib did."""
    if exc.msg.startswith("str is not valid UTF-8"):  # orjson adds "surrogates not allowed" to any bad byte
        return bad_request("the request body is not valid UTF-8 JSON", code="body.invalid-json")
    return invalid_json(_orjson_reason(exc))


def _orjson_reason(exc: orjson.JSONDecodeError) -> str:
    if exc.msg == "depth limit exceeded":  # orjson stops at 1024 levels, before building anything
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    for name in ("-Infinity", "NaN", "Infinity"):
        # Python accepts NaN and Infinity, which are not JSON: stored, they would break every client's parse.
        # orjson stops at the "N" or the "I" (after the sign) with a generic message.
        start = exc.pos - 1 if name == "-Infinity" else exc.pos
        if start >= 0 and exc.doc.startswith(name, start):
            return f"{name} is not a JSON value"
    if "surrogate" in exc.msg:
        return f"{exc} (a \\ud800-\\udfff escape must be half of a pair: alone it is no character)"
    return str(exc)


def _nested_too_deep_or_wide_float(value: Any) -> bool:
    """Raise 400 if arrays/objects nest deeper than MAX_JSON_DEPTH (iterative: a deep value cannot
    overflow it); True when `value` holds a float that may be an integer orjson could not keep."""
    wide = type(value) is float and not -_WIDE_FLOAT < value < _WIDE_FLOAT
    stack = [(value, 1)] if type(value) in (dict, list) else []
    while stack:
        item, depth = stack.pop()
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is dict or kind is list:
                if depth >= MAX_JSON_DEPTH:
                    raise invalid_json(f"nested deeper than {MAX_JSON_DEPTH} levels")
                stack.append((child, depth + 1))
            elif kind is float and not -_WIDE_FLOAT < child < _WIDE_FLOAT:
                wide = True
    return wide


def _parse_exact(raw: bytes) -> Any:
    """The document by the stdlib, whose integers have no width: orjson accepted it, so it is valid
    UTF-8 JSON no deeper than the limit, and only its wide numbers differ (10**100 stays an int)."""
    return json.loads(raw.decode("utf-8"))


@dataclass
class Req:
    """One request as handlers see it: path parameters already decoded, body already received."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Headers
    payload: Body
    client: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    _bytes: bytes | None = field(default=None, repr=False)

    @property
    def body(self) -> bytes:
        """The raw body (read from its temporary file on first use)."""
        if self._bytes is None:
            self._bytes = self.payload.read()
        return self._bytes

    def json(self) -> Any:
        if not self.body:
            raise bad_request("this request needs a JSON body", code="body.invalid-json")
        return parse_json(self.body)

    def take_json(self) -> Any:
        """Parse the body, letting go of the raw bytes (and the temporary file) first. A large body is
        parsed from its file with its long strings left in files (api/spill.py): a publish then
        peaks at about its tarball's size; a smaller one at about twice its size."""
        if self._bytes is None and self.payload.size > SPILL_FROM:
            from .spill import parse_large_json  # it builds on this module

            self._bytes = b""
            try:
                return parse_large_json(self.payload.file(), self.payload.folder)
            finally:
                self.payload.drop()
        raw = self._bytes if self._bytes is not None else self.payload.read()
        self._bytes = b""
        if not raw:
            raise bad_request("this request needs a JSON body", code="body.invalid-json")
        return parse_json(raw)

    def json_object(self) -> dict[str, Any]:
        value = self.json()
        if not isinstance(value, dict):
            raise bad_request("the request body must be a JSON object")
        return value

    @property
    def otp(self) -> str | None:
        return self.headers.get("npm-otp")


Handler = Callable[[Any, Req], Response | Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    max_body: int = SMALL_BODY
    trust_ok: bool = False  # whether a trust-issued token may call it at all
    anonymous_body: bool = False  # whether a body is read before any credential is checked (login, exchange)
    trust_permission: str | None = None  # what a trust token's relationship must allow here (checked before the body)
    on_loop: bool = False  # an async handler: it runs on the event loop and keeps blocking work off it


# A package in a path: @scope%2fname, @scope/name, or name (never starting with "-": those are API routes).
PKG = r"(?P<pkg>@[^/]+(?:/|%2[fF])[^/]+|[^@/\-][^/]*)"


def route(method: str, template: str, handler: Handler, max_body: int = SMALL_BODY, trust_ok: bool = False,
          anonymous_body: bool = False, trust_permission: str | None = None) -> Route:
    """`template` is a regex over the raw (still percent-encoded) path; {pkg} is a package name."""
    return Route(method, re.compile("^" + template.replace("{pkg}", PKG) + "/?$"), handler, max_body, trust_ok,
                 anonymous_body, trust_permission, inspect.iscoroutinefunction(handler))


def resolve(routes: list[Route], method: str, raw_path: str) -> tuple[Route | None, dict[str, str], bool]:
    """The route for a request, its decoded parameters, and whether the path exists for another method."""
    path_exists = False
    for candidate in routes:
        match = candidate.pattern.match(raw_path)
        if not match:
            continue
        if candidate.method != method and not (candidate.method == "GET" and method == "HEAD"):
            path_exists = True
            continue
        params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
        if any("\0" in v for v in params.values()):
            raise bad_request("a NUL character (%00) is not accepted in a path")
        return candidate, params, True
    return None, {}, path_exists


def parse_query(query_string: bytes) -> dict[str, str]:
    parsed = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    query = {k: v[-1] for k, v in parsed.items()}
    if any("\0" in k or "\0" in v for k, v in query.items()):
        raise bad_request("a NUL character (%00) is not accepted in a query")
    return query


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header admits gzip (a q of 0 refuses it)."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def request_variant(accept: str | None, accept_encoding: str | None) -> tuple[bool, bool]:
    """What the representation of a GET depends on: (abbreviated packument wanted, gzip accepted).
    Only short header values are cached: anonymous callers choose them, up to the 64 KiB header cap."""
    if len(accept or "") + len(accept_encoding or "") > 256:
        return wants_abbreviated(accept), accepts_gzip(accept_encoding)
    return _request_variant(accept, accept_encoding)


@functools.lru_cache(maxsize=512)
def _request_variant(accept: str | None, accept_encoding: str | None) -> tuple[bool, bool]:
    return wants_abbreviated(accept), accepts_gzip(accept_encoding)


def same_for_everyone(req: Req, abbreviated: bool, gzipped: bool) -> None:
    """Mark this GET's answer as the one every anonymous caller with these headers gets: the app keeps
    it whole (api/readcache.ReadyResponses) until the next write."""
    req.extra["ready"] = (abbreviated, gzipped)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(error: RegistryError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)
