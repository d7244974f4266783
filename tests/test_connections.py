"""Silent and slow connections are closed (oro_graph/connections.py), honest ones are not.

Each check is behaviour with slack, not a timing: a connection the guard should close must be
closed well within its deadline plus a generous margin (the socket's own timeout fails the test
otherwise), and one it should keep must get its answer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from oro_graph.app import create_app
from oro_graph.connections import GuardedHttpToolsProtocol
from oro_graph.runtime import Runtime
from tests.hardening.support import ServerProcess

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

DEADLINE = 1.0  # header and body deadlines, and the keep-alive timeout, in these tests
SLACK = 10.0  # a closed connection must be seen closed within DEADLINE + SLACK


class QuickGuard(GuardedHttpToolsProtocol):
    header_timeout = DEADLINE
    body_timeout = DEADLINE


@pytest.fixture
def address(runtime: Runtime) -> Iterator[tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app = create_app(runtime.settings, runtime=runtime, migrate=False)
    config = uvicorn.Config(
        app, http=QuickGuard, timeout_keep_alive=int(DEADLINE), log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(10)


def connect(address: tuple[str, int]) -> socket.socket:
    conn = socket.create_connection(address)
    conn.settimeout(DEADLINE + SLACK)  # a recv that waits longer raises: the guard did not act
    return conn


def read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_a_connection_that_never_sends_a_request_is_closed(address: tuple[str, int]) -> None:
    with connect(address) as conn:
        assert read_until_closed(conn) == b""  # closed without a word: nothing was asked


def test_headers_sent_a_line_at_a_time_are_cut_off_with_408(address: tuple[str, int]) -> None:
    with connect(address) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        started = time.monotonic()
        try:
            # slowloris: a header line every 0.3 s, never the blank line that ends them
            for i in range(int((DEADLINE + SLACK) / 0.3)):
                conn.sendall(b"X-Slow-%d: 1\r\n" % i)
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            pytest.fail(f"still open after {time.monotonic() - started:.1f} s of trickled headers")
        try:
            answer = read_until_closed(conn)
        except ConnectionResetError:
            pass
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def test_a_body_that_stalls_is_cut_off_with_408(address: tuple[str, int]) -> None:
    with connect(address) as conn:
        conn.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"query": "'
        )
        answer = read_until_closed(conn)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"request not received in time" in answer


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(address: tuple[str, int]) -> None:
    with connect(address) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(conn)
        assert answer.startswith(b"HTTP/1.1 200") and b'"database":"ok"' in answer


def test_a_slow_but_steady_body_and_several_requests_on_one_connection_are_served(
    address: tuple[str, int],
) -> None:
    body = b'{"query": "{ __typename }"}'
    with connect(address) as conn:
        for _ in range(2):
            conn.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            for piece in (body[:10], body[10:20], body[20:]):  # each within the stall timeout
                time.sleep(DEADLINE / 2)
                conn.sendall(piece)
            answer = conn.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200") and b'"__typename":"Query"' in answer, answer


def test_oro_graph_serve_closes_a_silent_connection(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = ServerProcess(
        {
            "ORO_DATABASE_URL": settings.database_url,
            "ORO_SECRET_KEY": "connections",
            "ORO_DATA_DIR": str(tmp_path / "state"),
            "ORO_HEADER_TIMEOUT_SECONDS": str(DEADLINE),
        },
        tmp_path,
    ).start()
    try:
        with connect(("127.0.0.1", server.port)) as conn:
            assert read_until_closed(conn) == b""
    finally:
        server.stop()
