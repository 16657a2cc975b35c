"""Driving a server: rates and latency percentiles, and what the driving cost this process.

Every request is already the bytes of an HTTP/1.1 request (`prepare`), each lane a thread with one
blocking keep-alive socket, so a request costs the client a sendall and a few recvs (the GIL is
released in both). On a 2-core machine the server shares the cores with its load generator; the
asyncio httpx client this replaced spent milliseconds of CPU per publish on h11 and the event loop,
and the ratio against the peer became partly a ratio of client overheads (reads are driven by wrk).
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Result:
    count: int
    seconds: float
    latencies: list[float]
    failures: int
    server_cpu: float = 0.0  # seconds of the server's CPU the workload cost
    client_cpu: float = 0.0  # seconds of this process's CPU (all its threads) during the timed part

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu * 1000 / self.count if self.count else float("nan")

    @property
    def client_cpu_ms_per_request(self) -> float:
        return self.client_cpu * 1000 / self.count if self.count else float("nan")

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)


def merged(results: list[Result]) -> Result:
    """Rounds of one workload as one result: the requests and seconds of all of them (the rate is
    the rounds' total over their total time), every latency, failure and CPU second."""
    return Result(sum(r.count for r in results), sum(r.seconds for r in results),
                  [latency for r in results for latency in r.latencies], sum(r.failures for r in results),
                  sum(r.server_cpu for r in results), sum(r.client_cpu for r in results))


@dataclass(frozen=True)
class Prepared:
    """One HTTP/1.1 request as the bytes that go on the wire, and where they go."""
    host: str
    port: int
    wire: bytes


def prepare(method: str, url: str, headers: dict[str, str], body: bytes = b"") -> Prepared:
    """Serialize a request once, before any clock starts: request line, Host, `headers`, Content-Length, body."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items()),
            f"Content-Length: {len(body)}"]
    return Prepared(parts.hostname or "127.0.0.1", parts.port or 80, ("\r\n".join(head) + "\r\n\r\n").encode() + body)


class ResponseError(Exception):
    """The server closed the connection mid-response, or sent something that is not HTTP/1.1."""


class Connection:
    """A lane's keep-alive connection: send a prepared request, read its whole response back.

    Reads only what the bench needs: the status line, the headers, and a body framed by
    Content-Length, chunked transfer-encoding, or the end of the connection. A `connection: close`
    answer (or a transport error) closes the socket; the next request opens a new one.
    """

    def __init__(self, host: str, port: int, timeout: float = 120) -> None:
        self.address, self.timeout = (host, port), timeout
        self.sock: socket.socket | None = None
        self.buffer = bytearray()

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer.clear()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, request: Prepared) -> tuple[int, bytes]:
        """Send `request` and return the response's status and body."""
        if self.sock is None:
            self.connect()
        try:
            self.sock.sendall(request.wire)
            status, headers = self._head()
            while 100 <= status < 200:  # interim answers (100 Continue) precede the real one
                status, headers = self._head()
            body = self._body(status, headers)
        except (OSError, ResponseError, ValueError):
            self.close()
            raise
        if "close" in headers.get("connection", "").lower():
            self.close()
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ResponseError("the server closed the connection")
        self.buffer += chunk

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _head(self) -> tuple[int, dict[str, str]]:
        version, status, *_ = self._line().split(b" ", 2)
        if not version.startswith(b"HTTP/1."):
            raise ResponseError(f"not an HTTP/1.x status line: {version[:40]!r}")
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status), headers

    def _body(self, status: int, headers: dict[str, str]) -> bytes:
        if status in (204, 304):
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked()
        if "content-length" in headers:
            return self._exactly(int(headers["content-length"]))
        headers["connection"] = "close"  # no framing: the body ends where the connection does
        while True:
            try:
                self._fill()
            except ResponseError:
                return self._exactly(len(self.buffer))

    def _chunked(self) -> bytes:
        parts = []
        while size := int(self._line().split(b";", 1)[0], 16):
            parts.append(self._exactly(size))
            self._exactly(2)  # the CRLF after each chunk
        while self._line():  # trailers, up to the empty line
            pass
        return b"".join(parts)


def drive_prepared(requests: list[Prepared], concurrency: int,
                   ok: Callable[[int], bool] = lambda status: status < 400) -> Result:
    """Send every request once over `concurrency` threads, each with its own keep-alive connection.

    The connections are open before the clock starts: connecting is not what is measured.
    A status `ok` refuses, or a transport error, counts as a failure (the first three are printed).
    """
    if not requests:
        return Result(0, 0.0, [], 0)
    pending = iter(requests)  # next() on a list iterator is atomic under the GIL: lanes share it safely
    lock = threading.Lock()
    latencies: list[float] = []
    failures = 0
    connections = [Connection(requests[0].host, requests[0].port) for _ in range(min(concurrency, len(requests)))]
    for connection in connections:
        connection.connect()

    def lane(connection: Connection) -> None:
        nonlocal failures
        for request in pending:
            started = time.perf_counter()
            try:
                status, body = connection.exchange(request)
                problem = None if ok(status) else f"{status}: {body[:200].decode(errors='replace')}"
            except (OSError, ResponseError, ValueError) as error:
                problem = f"{type(error).__name__}: {error}"
            latencies.append(time.perf_counter() - started)
            if problem is not None:
                with lock:
                    failures += 1
                    if failures <= 3:
                        print(f"  unexpected {problem}")
        connection.close()

    lanes = [threading.Thread(target=lane, args=(connection,)) for connection in connections]
    started, cpu = time.perf_counter(), time.process_time()
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    return Result(len(requests), time.perf_counter() - started, latencies, failures,
                  client_cpu=time.process_time() - cpu)


def run_prepared(requests: list[Prepared], concurrency: int, ok: Callable[[int], bool] = lambda status: status < 400,
                 pid: int | None = None) -> Result:
    """Drive prepared requests (`prepare`); with `pid`, also charge the server process's CPU time (it and
    its workers') to the result."""
    from .servers import tree_cpu_seconds as cpu_seconds

    # The collector would stop the client for tens of ms now and then (it walks every object this
    # process holds, the prepared request bodies included): leave it out of the timed part.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        before = cpu_seconds(pid) if pid else 0.0
        result = drive_prepared(requests, concurrency, ok)
        if pid:
            result.server_cpu = cpu_seconds(pid) - before
    finally:
        gc.enable()
        gc.unfreeze()
    return result
