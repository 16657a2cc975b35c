"""A proxy in front of the broker that fails on cue: 503s, or an answer lost after forwarding."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FlakyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.script: list[str] = []  # for matching requests: "503", "drop" (forward, lose the answer) or "pass"
        self.match = "/-/stage/package/"
        self.seen: list[tuple[str, str, int]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                action = "pass"
                if self.path.startswith(proxy.match) and proxy.script:
                    action = proxy.script.pop(0)
                if action == "503":
                    proxy.seen.append((self.command, self.path, 503))
                    self.send_response(503)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", "27")
                    self.end_headers()
                    self.wfile.write(b'{"error":"try again later"}')
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = httpx.request(self.command, proxy.upstream + self.path, content=body, headers=headers,
                                         timeout=60)
                proxy.seen.append((self.command, self.path, upstream.status_code))
                if action == "drop":
                    self.close_connection = True  # the work is done upstream; the answer never arrives
                    return
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        return Handler
