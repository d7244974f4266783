"""An answer leaves in one write (``oro_graph.connections.CoalescedWrites``); a stream does not wait.

Driven through the guarded protocol in process, over a transport that records each write the
protocol makes: the number of system calls an answer costs is what the buffer changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from oro_graph.connections import GuardedHttpToolsProtocol


class QuickGuard(GuardedHttpToolsProtocol):
    header_timeout = 5.0
    body_timeout = 5.0


class RecordingTransport(asyncio.Transport):
    """A connection's socket, as the protocol sees it: what it writes, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def serve_one(
    app: Any, request: bytes, until: Callable[[RecordingTransport], bool], transport: RecordingTransport
) -> RecordingTransport:
    """``request`` on a new connection (``transport``) to ``app`` through the guarded protocol, in
    this thread's loop, until ``until`` holds for what was written."""

    async def main() -> RecordingTransport:
        config = uvicorn.Config(app, lifespan="off", log_level="warning")
        config.load()
        protocol = QuickGuard(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(1000):
            await asyncio.sleep(0.001)
            if until(transport):
                break
        protocol.connection_lost(None)
        return transport

    return asyncio.run(main())


def test_an_answer_leaves_in_one_write_and_a_stream_s_head_at_once() -> None:
    """uvicorn writes a head and a body separately; the guarded protocol sends them in one system
    call. A stream's head still leaves before its first event exists, and each event as it comes."""

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})

    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    writes = serve_one(answer, request, lambda t: bool(t.writes), RecordingTransport()).writes
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nhello")

    transport = RecordingTransport()
    written_before: list[int] = []  # writes made before each event existed

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
        await send(start)
        for event in (b"data: 1\n\n", b"data: 2\n\n"):
            await asyncio.sleep(0.02)  # the event does not exist yet
            written_before.append(len(transport.writes))
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    serve_one(stream, request, lambda t: bool(t.writes) and t.writes[-1].endswith(b"0\r\n\r\n"), transport)
    head = transport.writes[0]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert written_before == [1, 2]  # the head left before the first event, that one before the second
    assert b"data: 1" in transport.writes[1] and b"data: 2" in transport.writes[2]
