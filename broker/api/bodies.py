"""Reading request bodies into bounded memory: spooled to disk, budgeted, timed out.

Nothing here allocates from a declared Content-Length: a body costs memory only as its bytes
arrive, and past a small threshold they go to a temporary file. All bodies in flight share one
byte budget (503 beyond it), and a client that stops sending is dropped (408).
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import Receive

from ..domain.validation import describe
from ..errors import RegistryError, bad_request

KIB = 1024
MIB = 1024 * KIB
# A body up to this size stays in memory while it arrives, if the worker's bodies in memory leave room
# (MEMORY_FOR_BODIES); otherwise, and always past it, its bytes go to a temporary file. Bodies up to
# http.SPILL_FROM are parsed from memory anyway: writing them to a file and reading them back cost a
# 1 MiB publish ~0.4 ms of system time for nothing.
IN_MEMORY_UP_TO = 4 * MIB
MAX_CHUNKS_IN_MEMORY = 256  # uvicorn hands a body over in messages of up to 64 KiB
MEMORY_FOR_BODIES = 32 * MIB  # per worker: the bytes all bodies held in memory may add up to
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
    """The bytes all requests in flight hold, capped (503 beyond), and, within them, the bytes held in
    memory (bodies go to files beyond that). Used from the event loop only (no lock needed)."""

    def __init__(self, capacity: int, memory: int = MEMORY_FOR_BODIES) -> None:
        self.capacity = capacity
        self.held = 0
        self.memory = memory
        self.in_memory = 0

    def take(self, amount: int) -> None:
        if self.held + amount > self.capacity:
            raise server_busy()
        self.held += amount

    def give_back(self, amount: int) -> None:
        self.held -= amount

    def take_memory(self, amount: int) -> bool:
        if self.in_memory + amount > self.memory:
            return False
        self.in_memory += amount
        return True

    def give_back_memory(self, amount: int) -> None:
        self.in_memory -= amount


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    idle_seconds: float  # the longest wait for the next chunk
    total_seconds: float  # the longest a whole body may take


class Body:
    """A request body as it arrives and once it has: its chunks in memory while the budget's memory
    share allows (up to IN_MEMORY_UP_TO), in a temporary file otherwise."""

    def __init__(self, budget: UploadBudget | None = None, folder: Path | None = None) -> None:
        self._budget = budget
        self._chunks: list[bytes] = []
        self._in_memory = 0  # what this body took from the budget's memory share
        self._file: BinaryIO | None = None
        self.size = 0
        self.folder = folder  # where its temporary files go (and those made from it)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        # A body that trickles in as many small pieces goes to a file: each piece kept in memory costs
        # its object's overhead as well as the bytes the share is charged for.
        if self._file is None and self.size <= IN_MEMORY_UP_TO and len(self._chunks) < MAX_CHUNKS_IN_MEMORY \
                and self._budget is not None and self._budget.take_memory(len(chunk)):
            self._in_memory += len(chunk)
            self._chunks.append(chunk)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.folder)
            self._file.writelines(self._chunks)
            self._chunks = []
            self._release_memory()
        self._file.write(chunk)

    def file(self) -> BinaryIO | None:
        """The body to read in slices (close the Body when done), or None when there is none."""
        if self._file is None and self._chunks:
            self._file, self._chunks = io.BytesIO(self._joined()), []
        if self._file is not None:
            self._file.seek(0)
        return self._file

    def read(self) -> bytes:
        """The whole body, read once: later reads give b"", and the memory or the temporary file is let
        go of (its share of the budget's memory comes back at close(), on the event loop)."""
        if self._file is not None:
            self._file.seek(0)
            data = self._file.read()
        else:
            data = self._joined()
        self.drop()
        return data

    def drop(self) -> None:
        """Let go of the body's bytes (from any thread; close() still gives its memory share back)."""
        self._chunks = []
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """Let go of the body and give back its memory share: on the event loop, as the budget is."""
        self.drop()
        self._release_memory()

    def _joined(self) -> bytes:
        return self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)

    def _release_memory(self) -> None:
        if self._budget is not None and self._in_memory:
            self._budget.give_back_memory(self._in_memory)
        self._in_memory = 0


EMPTY = Body()


async def receive_body(receive: Receive, limits: BodyLimits, budget: UploadBudget, tmp_dir: Path) -> tuple[Body, int]:
    """Read the body as it arrives; returns it and the budget it took (give that back when done)."""
    body = Body(budget, tmp_dir)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.total_seconds
    try:
        # One timer for the whole body, moved at each message (an anyio scope per message cost ~5 µs each).
        async with asyncio.timeout(None) as timer:
            while True:
                now = loop.time()
                if now >= deadline:
                    raise body_timeout(limits.total_seconds)
                timer.reschedule(min(now + limits.idle_seconds, deadline))
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone()
                chunk = message.get("body", b"")
                if body.size + len(chunk) > limits.max_bytes:
                    raise body_too_large(limits.max_bytes)
                if chunk:
                    budget.take(len(chunk))
                    body.add(chunk)
                if not message.get("more_body", False):
                    return body, body.size
    except TimeoutError:
        body.close()
        budget.give_back(body.size)
        raise body_timeout(limits.idle_seconds) from None
    except BaseException:
        body.close()
        budget.give_back(body.size)
        raise


M = TypeVar("M", bound=BaseModel)


def body_as(model: type[M], raw: Any, what: str) -> M:
    """`raw` (parsed JSON) as `model`; 400 "invalid <what>: <field>: <problem>" otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise bad_request(describe(exc, what)) from None
