"""Reading request bodies into bounded memory: spooled to disk, budgeted, timed out.

Nothing here allocates from a declared Content-Length: a body costs memory only as its bytes
arrive, and past a small threshold they go to a temporary file. All bodies in flight share one
byte budget (503 beyond it), and a client that stops sending is dropped (408).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import anyio
from pydantic import BaseModel, ValidationError
from starlette.types import Receive

from ..domain.validation import describe
from ..errors import RegistryError, bad_request

KIB = 1024
MIB = 1024 * KIB
SPOOL_IN_MEMORY = 256 * KIB  # a body larger than this goes to a temporary file while it arrives
BUSY_RETRY_AFTER = "5"


class ClientGone(Exception):
    """The client closed the connection before its body was read: a normal event, not an error."""


def body_too_large(limit: int) -> RegistryError:
    return RegistryError(413, f"the request body is larger than this registry accepts ({limit} bytes); "
                              "see STAGEGATE_MAX_TARBALL_BYTES", code="body.too-large", headers={"connection": "close"})


def server_busy() -> RegistryError:
    return RegistryError(503, "the registry is receiving as many uploads as it may hold at once: "
                              f"retry in {BUSY_RETRY_AFTER} seconds", code="server.busy",
                         headers={"retry-after": BUSY_RETRY_AFTER, "connection": "close"})


def body_timeout(seconds: float) -> RegistryError:
    return RegistryError(408, f"the request body stopped arriving (nothing for {seconds:g} s, or too slow overall): "
                              "send it again", code="body.timeout", headers={"connection": "close"})


def declared_length(value: str | None, limit: int) -> int | None:
    """The Content-Length as a number (None without one); 400 when malformed, 413 when over `limit`."""
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise RegistryError(400, "invalid Content-Length", headers={"connection": "close"})
    if int(value) > limit:
        raise body_too_large(limit)
    return int(value)


class UploadBudget:
    """The bytes all requests in flight hold, capped. Used from the event loop only (no lock needed)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0

    def take(self, amount: int) -> None:
        if self.held + amount > self.capacity:
            raise server_busy()
        self.held += amount

    def give_back(self, amount: int) -> None:
        self.held -= amount


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    idle_seconds: float  # the longest wait for the next chunk
    total_seconds: float  # the longest a whole body may take


class Body:
    """A request body that has arrived in full: in memory when small, in a temporary file otherwise."""

    def __init__(self, spool: BinaryIO | None = None, size: int = 0, folder: Path | None = None) -> None:
        self._spool = spool
        self.size = size
        self.folder = folder  # where its temporary files go (and those made from it)

    def file(self) -> BinaryIO | None:
        """The body to read in slices (close the Body when done), or None when there is none."""
        if self._spool is not None:
            self._spool.seek(0)
        return self._spool

    def read(self) -> bytes:
        """The whole body, read once (later reads give b"" and free the temporary file)."""
        if self._spool is None:
            return b""
        self._spool.seek(0)
        data = self._spool.read()
        self.close()
        return data

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


EMPTY = Body()


async def receive_body(receive: Receive, limits: BodyLimits, budget: UploadBudget, tmp_dir: Path) -> tuple[Body, int]:
    """Read the body as it arrives; returns it and the budget it took (give that back when done)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=tmp_dir)
    taken = 0
    deadline = time.monotonic() + limits.total_seconds
    try:
        while True:
            wait = min(limits.idle_seconds, deadline - time.monotonic())
            message = await _next_message(receive, wait, limits)
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            if taken + len(chunk) > limits.max_bytes:
                raise body_too_large(limits.max_bytes)
            if chunk:
                budget.take(len(chunk))
                taken += len(chunk)
                spool.write(chunk)
            if not message.get("more_body", False):
                return Body(spool, taken, tmp_dir), taken
    except BaseException:
        spool.close()
        budget.give_back(taken)
        raise


async def _next_message(receive: Receive, wait: float, limits: BodyLimits) -> dict:
    if wait <= 0:
        raise body_timeout(limits.total_seconds)
    with anyio.move_on_after(wait) as scope:
        message = await receive()
    if scope.cancelled_caught:
        raise body_timeout(limits.idle_seconds)
    return message


M = TypeVar("M", bound=BaseModel)


def body_as(model: type[M], raw: Any, what: str) -> M:
    """`raw` (parsed JSON) as `model`; 400 "invalid <what>: <field>: <problem>" otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise bad_request(describe(exc, what)) from None
