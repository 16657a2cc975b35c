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
_NUL_ESCAPE_BYTES = re.compile(_NUL_ESCAPE.pattern.encode())


def json_text(raw: bytes) -> str:
    """The body as text once it passes the limits checked before parsing (400 `body.invalid-json`)."""
    if len(raw.translate(None, _NOT_SEPARATORS)) > MAX_JSON_SEPARATORS:
        raise invalid_json(f"more than {MAX_JSON_SEPARATORS} values")
    # A NUL escape needs a backslash; a tarball's base64 has none, and memchr finds that in microseconds.
    if b"\\" in raw and b"\\u0000" in raw and _NUL_ESCAPE_BYTES.search(raw):
        raise invalid_json("a string holds a NUL character (\\u0000), which this registry does not accept")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request body is not valid UTF-8 JSON", code="body.invalid-json") from None


def parse_json(raw: bytes | str) -> Any:
    """A JSON document from untrusted bytes: 400 `body.invalid-json` for anything malformed or too deep."""
    return parse_json_text(json_text(raw.encode() if isinstance(raw, str) else raw))


def parse_json_text(raw: str) -> Any:
    """The document in `raw`, which `json_text` returned."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise invalid_json(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise invalid_json(str(exc)) from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise invalid_json(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _no_constant(name: str) -> Any:
    # Python accepts NaN and Infinity, which are not JSON: stored, they would break every client's parse.
    raise ValueError(f"{name} is not a JSON value")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit` (iterative: a deep value cannot overflow it)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


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
        text = json_text(raw)
        del raw
        return parse_json_text(text)

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
