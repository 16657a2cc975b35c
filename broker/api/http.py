"""Request and response plumbing shared by every handler: bodies with limits, JSON, routing."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from ..errors import RegistryError, bad_request

KIB = 1024
SMALL_BODY = 256 * KIB


@dataclass
class Req:
    """One request as handlers see it: path parameters already decoded, body already read."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: Headers
    body: bytes | bytearray
    client: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        if not self.body:
            raise bad_request("this request needs a JSON body")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from None

    def take_json(self) -> Any:
        """Parse the body, letting go of the raw bytes first: an upload then peaks at about twice its
        size (the text and the decoded attachment), not four times (bytes, text, copy, attachment)."""
        raw, self.body = self.body, b""
        if not raw:
            raise bad_request("this request needs a JSON body")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("the request body is not valid UTF-8 JSON") from None
        del raw
        try:
            return json.loads(text)
        except ValueError as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from None

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
    on_loop: bool = False  # an async handler: it runs on the event loop and keeps blocking work off it


# A package in a path: @scope%2fname, @scope/name, or name (never starting with "-": those are API routes).
PKG = r"(?P<pkg>@[^/]+(?:/|%2[fF])[^/]+|[^@/\-][^/]*)"


def route(method: str, template: str, handler: Handler, max_body: int = SMALL_BODY, trust_ok: bool = False) -> Route:
    """`template` is a regex over the raw (still percent-encoded) path; {pkg} is a package name."""
    return Route(method, re.compile("^" + template.replace("{pkg}", PKG) + "/?$"), handler, max_body, trust_ok,
                 inspect.iscoroutinefunction(handler))


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
        return candidate, {k: unquote(v) for k, v in match.groupdict().items() if v is not None}, True
    return None, {}, path_exists


def parse_query(query_string: bytes) -> dict[str, str]:
    parsed = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


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


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(error: RegistryError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)
