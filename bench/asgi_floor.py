"""The read floor: a bare ASGI app on the broker's own server stack (uvicorn, httptools, the broker's
protocol class, uvloop when installed) that answers every request with a canned body of `--size`
bytes. No registry on this stack can answer faster; each read is also reported as a fraction of it."""

from __future__ import annotations

import argparse
import os

import uvicorn

from broker.server import HeaderTimeoutProtocol


def canned_app(size: int):
    body = b"x" * size
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]}
    message = {"type": "http.response.body", "body": body}

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        await send(start)
        await send(message)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes, as `stagegate-broker serve --workers`")
    args = parser.parse_args()
    os.environ["BENCH_FLOOR_SIZE"] = str(args.size)
    serve_stack("bench.asgi_floor:_from_environment", args.port, args.workers)


def serve_stack(factory: str, port: int, workers: int, **options) -> None:
    """Serve the app that `factory` ("module:function", called in each worker) builds on the broker's own
    server stack: uvicorn, httptools and the broker's protocol class, `workers` processes sharing the port."""
    uvicorn.run(factory, factory=True, workers=workers, host="127.0.0.1", port=port, http=HeaderTimeoutProtocol,
                log_level="warning", access_log=False, server_header=False, lifespan="off", **options)


def _from_environment():
    return canned_app(int(os.environ["BENCH_FLOOR_SIZE"]))


if __name__ == "__main__":
    main()
