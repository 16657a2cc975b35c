"""The broker's logs: one JSON object per line (or plain text locally), a request id on every line
of a request, and no token, JWT or password path segment in any of them."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import secrets
import sys
import time
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Secrets that can reach a log line through a path, a header quoted in an error, or an exception text.
_SECRET_PATTERNS = [
    (re.compile(r"(/-/user/token/|/-/npm/v1/tokens/token/)[^/?\s\"']+"), r"\1<redacted>"),
    (re.compile(r"sg_[A-Za-z0-9_\-]{8,}"), "sg_<redacted>"),
    (re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"), "<jwt redacted>"),
]
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def request_id_from(header: str | None) -> str:
    """The client's X-Request-Id when it is a sane one (short, no spaces or control characters), else a new one."""
    if header and _REQUEST_ID.fullmatch(header) and redact(header) == header:
        return header
    return secrets.token_hex(16)  # 32 hex digits, as uuid4().hex, at a fifth of its cost


class RedactingFilter(logging.Filter):
    """Rewrites every record's message with its secrets replaced, and stamps the request id on it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        record.request_id = request_id.get()
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id",
                                                                       "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if getattr(record, "request_id", None):
            line += f" [{record.request_id}]"
        return redact(line)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A logging.config dict for uvicorn's log_config: every logger through one redacting handler."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"()": PlainFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactingFilter}},
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                 "formatter": "default", "filters": ["redact"]}},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level.upper()},
            # uvicorn's own access line prints the raw path; the broker writes its own (stagegate.access).
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            "stagegate.audit": {"level": "INFO"},  # the audit mirror is written whatever the level
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]  # a JSON string literal, in C


class AccessLog:
    """The access log (logger `stagegate.access`): the same line the logging path would write, built
    without a LogRecord, a filter or a formatter, and written in batches: the lines of one turn of the
    event loop go out in one write, right after it (no line waits for a timer, none is lost on a quiet
    server). Only the path can carry a secret (a request id is refused unless sane), and it is redacted."""

    def __init__(self, fmt: str, stream=None) -> None:
        self._json = fmt == "json"
        self._stream = stream
        self._logger = logging.getLogger("stagegate.access")
        self._pending: list[str] = []
        self._second = -1
        self._stamp = ""

    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def line(self, method: str, raw_path: str, status: int, seconds: float, client: str | None) -> None:
        path = redact(raw_path) if ("sg_" in raw_path or "eyJ" in raw_path or "/token" in raw_path) else raw_path
        now = time.time()
        stamp = self._timestamp(now)
        rid = request_id.get()
        if self._json:  # the keys JsonFormatter writes, in its order, formatted by hand (a third of json.dumps)
            quoted, message = _quote(path), _quote(f"{method} {path} {status}")
            text = (f'{{"time": "{stamp}.{int(now % 1 * 1000):03d}Z", "level": "info", "logger": "stagegate.access", '
                    f'"message": {message}, ' + (f'"request_id": {_quote(rid)}, ' if rid else "") +
                    f'"method": {_quote(method)}, "path": {quoted}, "status": {status}, '
                    f'"duration_ms": {round(seconds * 1000, 1)}, "client": {_quote(client) if client else "null"}}}')
        else:
            text = f"{stamp.replace('T', ' ')},{int(now % 1 * 1000):03d} INFO stagegate.access: {method} {path} {status}"
            if rid:
                text += f" [{rid}]"
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on the event loop (a test): at once
                self._pending.append(text + "\n")
                self.flush()
                return
        self._pending.append(text + "\n")

    def flush(self) -> None:
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        stream = self._stream or sys.stderr
        stream.write(text)
        stream.flush()

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._stamp
