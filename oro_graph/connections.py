"""Connections that say nothing, or say it too slowly, are closed.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` (``ORO_KEEP_ALIVE_SECONDS``),
but only once a response was sent: a connection that never sends a request, or sends its headers a
byte at a time, or stops in the middle of a body, was held open forever, and a few hundred such
sockets hold a worker's slots. ``GuardedHttpToolsProtocol`` is uvicorn's httptools protocol with
two deadlines more:

- the request line and headers must be complete within ``ORO_HEADER_TIMEOUT_SECONDS`` of the
  connection opening or of the request's first byte (bytes arriving do not extend it);
- while a body is being received, it must not stall longer than ``ORO_BODY_TIMEOUT_SECONDS``
  between two pieces (a body the server itself stopped reading, because the application has not
  taken the previous piece yet, is not the client's stall).

A request that misses its deadline is answered 408 and the connection is closed; a connection that
never sent a byte is just closed. ``oro-graph serve`` runs with it (``--http`` of uvicorn). It also
sends each answer's head and body in one system call (``CoalescedWrites``).
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 28\r\n\r\nrequest not received in time"
)


@cache
def _timeouts() -> tuple[float, float]:
    from oro_graph.settings import load_settings

    settings = load_settings()
    return settings.header_timeout_seconds, settings.body_timeout_seconds


class CoalescedWrites:
    """A connection's transport whose writes in one turn of the event loop leave in one system call.

    uvicorn writes an answer's status line and headers, then its body, with a system call each: two
    TCP segments, and the client wakes for each. Held until the end of the loop's turn, they leave
    together (a stream's head still leaves at once, at the end of the turn that wrote it). Everything
    else is the transport's own; a close sends what is pending first. On the harness' version page
    (``python -m benchmarks.ab``, three rounds in alternation) it answered 6-13% more requests a second
    at the same server CPU per request: the saving is the client's and the kernel's."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def flushed(self) -> asyncio.Transport:
        """The transport itself, with nothing left pending."""
        self._flush()
        return self._transport

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a body stall timeout."""

    # None: read ORO_HEADER_TIMEOUT_SECONDS / ORO_BODY_TIMEOUT_SECONDS (a subclass may set numbers).
    header_timeout: float | None = None
    body_timeout: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        header, body = _timeouts() if self.header_timeout is None or self.body_timeout is None else (0, 0)
        self._header_seconds = self.header_timeout if self.header_timeout is not None else header
        self._body_seconds = self.body_timeout if self.body_timeout is not None else body
        self._deadline: asyncio.TimerHandle | None = None
        self._in_body = False
        self._request_seen = False

    # Timers
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_body and self.flow.read_paused:  # our own back-pressure, not the client's stall
            self._arm(self._body_seconds)
            return
        if self._in_body:  # this request's cycle: answer unless the application already does
            may_answer = self.cycle is not None and not self.cycle.response_started
        else:  # headers: the cycle, if any, is the previous request's, and must be finished
            may_answer = self._request_seen and (self.cycle is None or self.cycle.response_complete)
        if may_answer:
            self.transport.write(TIMEOUT_RESPONSE)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the application sees the client as gone
            self.cycle.message_event.set()
        self.transport.close()

    # uvicorn's hooks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Every write of the connection through one buffer, so that none overtakes another.
        self.transport = CoalescedWrites(transport, self.loop)  # type: ignore[assignment]
        self._arm(self._header_seconds)  # a connection that never sends a request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_seen = True
        self._in_body = False
        self._arm(self._header_seconds)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        # With "Expect: 100-continue" the client waits for the application to ask for the body:
        # the stall clock starts with the first piece instead.
        if not self.transport.is_closing():
            self._in_body = True
            if not self.expect_100_continue:
                self._arm(self._body_seconds)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._in_body:
            self._arm(self._body_seconds)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._request_seen = False
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._in_body = False
        self._disarm()  # the websocket protocol takes the connection over
        if isinstance(self.transport, CoalescedWrites):  # and writes its frames as it likes
            self.transport = self.transport.flushed()
        super().handle_websocket_upgrade()

    def shutdown(self) -> None:
        self._disarm()
        super().shutdown()
