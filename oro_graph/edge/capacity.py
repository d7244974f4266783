"""Execution capacity per server process: signed writes are never starved by graph reads.

Two lanes, chosen per request by :class:`CapacityGate` from what the request is (not who sent it):

- **write**: any signed request (the four signature headers) and any non-GET call under /v1/validator
  or /v1/miner. Nothing bounds it here (rate limits do that); its blocking work runs on threads of its
  own (``capacity_write_threads``), so reads holding every default worker thread cannot delay it.
- **read**: unsigned GraphQL executions (``/graphql``, GET or POST, not an event stream). At most
  ``capacity_read_slots`` execute at once in this process; up to ``capacity_read_queue`` more wait
  in arrival order; one more is answered 503 with ``Retry-After: capacity_retry_after_seconds``
  (CONTRACTS section 1: saturation), instead of waiting without bound. An execution is CPU on one
  interpreter: two at a time keep the process busy, more only lengthen everyone's latency and the
  time a validator's heartbeat waits for the interpreter.

Reads also **yield to signed calls in flight**: a cached answer takes no slot, so a few closed-loop
readers keep the event loop (and the interpreter) busy, and a write waits behind them at every await
and thread hop, with its transaction open (row locks, the totals' advisory lock) meanwhile: the other
writers queue behind it in PostgreSQL. So while a signed call runs in this process, a request of any
other lane first waits until no signed call is in flight, at most ``capacity_read_yield_seconds``
and never past that long after the youngest signed call started: a write gets the process to itself
for its first moments, and the reads' pause is bounded (at most that long per read, and per write).

The read gate sits inside the response caches and the rate limits (installed before them in
``oro_graph.app``), so a cached answer or a refused request never takes a slot; the write lane is
chosen outermost, so the rate limits and signature checks of a write already use its threads.
Blocking calls of a request go through ``oro_graph.threads.to_thread``, which uses the lane's threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.errors import ErrorCode
from oro_graph.threads import WRITE_THREADS as _write_threads

P = ParamSpec("P")
T = TypeVar("T")

SIGNATURE_HEADER = b"x-signature"
WRITE_PREFIXES = ("/v1/validator/", "/v1/miner/")
READ_PATHS = ("/graphql", "/graphql/")


class Saturated(Exception):
    """Every read slot is busy and the queue is full."""


@dataclass
class Lanes:
    """The capacity of one server process (one event loop)."""

    read_slots: int = 2
    read_queue: int = 64
    retry_after_seconds: int = 1
    write_threads: int = 16
    read_yield_seconds: float = 0.05
    executing: int = 0
    waiting: int = 0
    admitted: int = 0  # read executions let through since start (tests count them)
    refused: int = 0
    yielded: int = 0  # requests that waited for signed calls in flight (tests count them)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _writes: dict[int, float] = field(default_factory=dict)  # signed calls in flight: token -> start
    _next_write: int = 0
    _yielders: list[asyncio.Future[None]] = field(default_factory=list)
    _limiter: anyio.CapacityLimiter | None = None

    def write_limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created in the event loop that serves (anyio binds it there)
            self._limiter = anyio.CapacityLimiter(self.write_threads)
        return self._limiter

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Count a signed call in flight for the block; the requests yielding to it go on when the
        last one ends."""
        token = self._next_write
        self._next_write += 1
        self._writes[token] = time.monotonic()
        try:
            yield
        finally:
            del self._writes[token]
            if not self._writes:
                yielders, self._yielders = self._yielders, []
                for waiter in yielders:
                    if not waiter.done():
                        waiter.set_result(None)

    async def yield_to_writes(self) -> None:
        """Wait while signed calls are in flight, at most ``read_yield_seconds`` and never past that
        long after the youngest of them started (module docstring)."""
        if not self._writes or self.read_yield_seconds <= 0:
            return
        pause = max(self._writes.values()) + self.read_yield_seconds - time.monotonic()
        if pause <= 0:
            return
        self.yielded += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._yielders.append(waiter)
        try:
            await asyncio.wait_for(waiter, pause)
        except TimeoutError:
            pass
        finally:
            if waiter in self._yielders:
                self._yielders.remove(waiter)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Hold one read slot for the block; wait in line for it, or raise :class:`Saturated`."""
        if self.executing >= self.read_slots:
            if self.waiting >= self.read_queue:
                self.refused += 1
                raise Saturated
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self.waiting += 1
            try:
                await waiter  # a leaving execution hands its slot over (executing stays counted)
            except BaseException:
                if waiter in self._waiters:  # still in line: leave it
                    self._waiters.remove(waiter)
                    self.waiting -= 1
                elif waiter.done() and not waiter.cancelled():
                    self._release()  # the slot was handed to us as we were cancelled: pass it on
                raise
        else:
            self.executing += 1
        self.admitted += 1
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            self.waiting -= 1
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: executing is unchanged
                return
        self.executing -= 1


def lanes_for(settings: Any) -> Lanes:
    return Lanes(
        read_slots=settings.capacity_read_slots,
        read_queue=settings.capacity_read_queue,
        retry_after_seconds=math.ceil(settings.capacity_retry_after_seconds),
        write_threads=settings.capacity_write_threads,
        read_yield_seconds=settings.capacity_read_yield_seconds,
    )


def lane_of(scope: Scope) -> str | None:
    """ "write", "read" or None (everything else: no bound here, the default threads)."""
    path: str = scope.get("path", "")
    method: str = scope.get("method", "GET")
    headers = scope.get("headers") or []
    if any(name == SIGNATURE_HEADER for name, _ in headers):
        return "write"
    if method not in ("GET", "HEAD", "OPTIONS") and path.startswith(WRITE_PREFIXES):
        return "write"
    if path in READ_PATHS and method in ("GET", "POST"):
        return None if streams(scope) else "read"
    return None


def streams(scope: Scope) -> bool:
    """An event stream or an upgrade: it lives long and mostly waits (no read slot; a signed one is
    not a signed call in flight that reads yield to)."""
    for name, value in scope.get("headers") or []:
        if (name == b"accept" and b"text/event-stream" in value) or name == b"upgrade":
            return True
    return False


class WriteLane:
    """ASGI middleware, outermost: a write-lane request's blocking calls use the lane's threads from
    the first middleware on (rate limits, signature checks), not only in its handler; any other
    request first yields to the signed calls in flight (module docstring)."""

    def __init__(self, app: ASGIApp, lanes: Lanes) -> None:
        self.app = app
        self.lanes = lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if lane_of(scope) != "write":
            await self.lanes.yield_to_writes()
            await self.app(scope, receive, send)
            return
        token = _write_threads.set(self.lanes.write_limiter())
        try:
            with contextlib.nullcontext() if streams(scope) else self.lanes.writing():
                await self.app(scope, receive, send)
        finally:
            _write_threads.reset(token)


class CapacityGate:
    """ASGI middleware, innermost: graph reads wait for a read slot or are refused (module docstring)."""

    def __init__(self, app: ASGIApp, lanes: Lanes) -> None:
        self.app = app
        self.lanes = lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or lane_of(scope) != "read":
            await self.app(scope, receive, send)
            return
        try:
            async with self.lanes.reading():
                await self.app(scope, receive, send)
        except Saturated:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": "the server is saturated with graph reads; retry after the pause Retry-After names",
                "error_code": ErrorCode.SERVICE_UNAVAILABLE.value,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.lanes.retry_after_seconds).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
