"""The bench client (bench/load.py) times requests, not its own setup."""

from __future__ import annotations

import pytest

from bench import load


class ScriptedServer:
    """A tiny HTTP/1.1 server on loopback: the request path picks the answer's framing."""

    ANSWERS = {
        "/length": b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n",
        "/close": b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        "/unframed": b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
        "/refused": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden",
    }

    def __init__(self):
        import socketserver
        import threading

        self.connections, self.requests = 0, []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                outer.connections += 1
                while line := self.rfile.readline():
                    path = line.split()[1].decode()
                    headers = {}
                    while (header := self.rfile.readline()) != b"\r\n":
                        name, _, value = header.decode().partition(":")
                        headers[name.lower()] = value.strip()
                    outer.requests.append((path, headers, self.rfile.read(int(headers["content-length"]))))
                    self.wfile.write(outer.ANSWERS[path])
                    self.wfile.flush()
                    if path in ("/close", "/unframed"):
                        return

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def put(self, path: str, body: bytes = b"{}") -> load.Prepared:
        return load.prepare("PUT", self.url + path, {"Content-Type": "application/json"}, body)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


def test_a_prepared_request_carries_host_length_and_body(server):
    result = load.run_prepared([server.put("/length", b'{"a": 1}')], concurrency=1)
    assert result.failures == 0
    path, headers, body = server.requests[0]
    assert (path, body) == ("/length", b'{"a": 1}')
    assert headers["host"] == server.url.removeprefix("http://") and headers["content-length"] == "8"


def test_a_lane_keeps_its_connection_alive(server):
    connection = load.Connection("127.0.0.1", server.server.server_address[1], timeout=5)
    assert [connection.exchange(server.put("/length")) for _ in range(3)] == [(201, b"ok")] * 3
    connection.close()
    assert server.connections == 1


def test_a_chunked_answer_is_read_whole_and_the_connection_reused(server):
    connection = load.Connection("127.0.0.1", server.server.server_address[1], timeout=5)
    assert connection.exchange(server.put("/chunked")) == (200, b"abcdefg")
    assert connection.exchange(server.put("/length")) == (201, b"ok")
    connection.close()
    assert server.connections == 1


def test_connection_close_is_honoured_by_reconnecting(server):
    result = load.run_prepared([server.put("/close"), server.put("/unframed"), server.put("/length")], concurrency=1)
    assert result.failures == 0 and result.count == 3 and len(result.latencies) == 3
    assert server.connections == 3


def test_an_unframed_answer_ends_with_the_connection(server):
    connection = load.Connection("127.0.0.1", server.server.server_address[1], timeout=5)
    assert connection.exchange(server.put("/unframed")) == (200, b"until the end")
    assert connection.sock is None


def test_a_4xx_counts_as_a_failure_and_is_printed(server, capsys):
    result = load.run_prepared([server.put("/length"), server.put("/refused"), server.put("/length")] * 2,
                               concurrency=2)
    assert result.count == 6 and result.failures == 2 and len(result.latencies) == 6
    assert "unexpected 403: forbidden" in capsys.readouterr().out


def test_a_connection_closed_mid_answer_counts_as_a_failure(capsys):
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def half_answer():
        accepted, _ = listener.accept()
        accepted.recv(65536)
        accepted.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nok")
        accepted.close()

    threading.Thread(target=half_answer, daemon=True).start()
    try:
        request = load.prepare("PUT", f"http://127.0.0.1:{listener.getsockname()[1]}/x", {}, b"{}")
        result = load.run_prepared([request], concurrency=1)
    finally:
        listener.close()
    assert result.failures == 1
    assert "ResponseError" in capsys.readouterr().out


def test_the_client_cpu_of_the_timed_part_is_charged_to_the_result(server):
    result = load.run_prepared([server.put("/length")] * 20, concurrency=2)
    assert result.failures == 0
    assert 0 < result.client_cpu_ms_per_request < 50


def test_rounds_merge_into_one_result_of_all_their_requests_and_seconds():
    first = load.Result(100, 1.0, [0.01] * 100, 0, server_cpu=0.5, client_cpu=0.02)
    second = load.Result(100, 3.0, [0.03] * 100, 2, server_cpu=1.5, client_cpu=0.02)
    both = load.merged([first, second])
    assert (both.count, both.seconds, both.failures) == (200, 4.0, 2)
    assert both.rate == 50  # not the mean of the rounds' rates (100 and 33)
    assert both.cpu_ms_per_request == 10 and both.client_cpu_ms_per_request == 0.2
    assert both.p50 == 10 or both.p50 == 30
    assert both.p99 == 30
