"""Running the ASGI app under uvicorn with the timeouts a public server needs, and the broker's logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .logs import logging_config
from .settings import Settings

log = logging.getLogger("stagegate")


MAX_HEADER_BYTES = 64 * 1024  # request line and headers; npm sends well under 4 KiB


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline and a size cap for a request's headers.

    uvicorn times out only an idle keep-alive connection; a client that connects and sends nothing,
    or half a request line, would hold its connection (and a slot) forever. Nor does it cap the
    headers' size: httptools keeps whatever arrives until the headers end, so an endless header
    would grow the process by as much as a client cares to send within the deadline.
    """

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes: int | None = 0  # bytes received for the current request's headers; None once they ended

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._header_bytes = None
        self._disarm_header_timer()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_bytes is None or self.transport.is_closing():
            return
        # Counted after the parser saw the data: a chunk that ends the headers may carry a large body.
        self._header_bytes += len(data)
        if self._header_bytes > MAX_HEADER_BYTES:
            log.info("refused a request whose headers exceed %d bytes", MAX_HEADER_BYTES,
                     extra={"client": self.client[0] if self.client else None})
            self._disarm_header_timer()
            self.send_400_response("Request headers too large.")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; its body has its own timeouts
        if not self.transport.is_closing():
            log.info("closed a connection that sent no complete request headers in %g s", self.header_timeout,
                     extra={"client": self.client[0] if self.client else None})
            self.transport.close()


def run(app, settings: Settings, host: str, port: int, log_level: str, log_format: str, workers: int = 1) -> None:
    """Serve `app` in this process, or `workers` processes (each building its own app with
    `worker_app`) sharing one listening socket. The caller has prepared the data dir, schema and keys
    once, so that no two workers race to create them."""
    HeaderTimeoutProtocol.header_timeout = settings.header_timeout
    common = dict(host=host, port=port, http=HeaderTimeoutProtocol, log_level=log_level,
                  log_config=logging_config(log_level, log_format), access_log=False, proxy_headers=False,
                  server_header=False, timeout_keep_alive=settings.keep_alive_timeout)
    if workers == 1:
        uvicorn.run(app, **common)
        return
    # The workers are spawned, and read their settings from the environment: what the command line
    # decided travels there (the public URL as resolved here, the log format, the worker count).
    os.environ.update({"STAGEGATE_PUBLIC_URL": settings.resolved_public_url(host, port),
                       "STAGEGATE_LOG_FORMAT": log_format, "STAGEGATE_WORKERS": str(workers)})
    with _metrics_dir():
        uvicorn.run("broker.server:worker_app", factory=True, workers=workers, **common)


def worker_app():
    """One worker's ASGI app (uvicorn imports this in each worker process)."""
    from .app import RegistryApp
    from .runtime import build_broker

    settings = Settings()
    HeaderTimeoutProtocol.header_timeout = settings.header_timeout
    return RegistryApp(build_broker(settings), settings.log_format)


@contextlib.contextmanager
def _metrics_dir():
    """Several processes count into one set of metrics through prometheus-client's multiprocess
    files: a fresh directory for this server's lifetime, unless the operator named one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="stagegate-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
