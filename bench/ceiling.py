"""The load generator's own ceiling: a server that does no work at all.

It answers every request at once with a canned response (a body of `--size` bytes), parsing with
httptools on uvloop, in its own process. Whatever rate and latency the bench client reaches
against it is the most that client can measure on this machine: no registry can show a higher
rate through it, and none a lower p99 at the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio

import httptools
import uvloop


class _Canned(asyncio.Protocol):
    def __init__(self, response: bytes) -> None:
        self._response = response
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    def on_message_complete(self) -> None:
        self._transport.write(self._response)


def canned_response(size: int) -> bytes:
    body = b"x" * size
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
            b"content-length: %d\r\n\r\n" % len(body)) + body


async def serve(port: int, size: int) -> None:
    response = canned_response(size)
    server = await asyncio.get_running_loop().create_server(lambda: _Canned(response), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=0)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.size))


if __name__ == "__main__":
    main()
