"""The graphql-sse protocol on /graphql: subscriptions (and any operation) over server-sent events.

Distinct-connections mode: a GET (what a browser ``EventSource`` sends: ``query``, ``variables``,
``operationName`` and ``extensions`` in the URL) or a POST (the usual JSON body) to ``/graphql``
whose ``Accept`` asks for ``text/event-stream`` answers an event stream: ``event: next`` with
each result, ``event: complete`` at the end. ``/graphql/stream`` is the same, whatever ``Accept``
says (its original path, POST, and now GET too).

Events that come from the event log carry ``id: <cursor>``. A client that reconnects with
``Last-Event-ID`` (``EventSource`` does so by itself) resumes just after that event: the header
stands for the subscription's ``after`` argument (the later of the two wins), so nothing is
missed and nothing is repeated.

Single-connection mode: ``PUT /graphql`` reserves a stream and answers ``201`` with a token;
``GET /graphql`` with the token (header ``X-GraphQL-Event-Stream-Token`` or ``?token=``) opens it;
each ``POST /graphql`` with the token and ``extensions.operationId`` answers ``202`` and runs the
operation on that stream (``event: next`` / ``complete`` with ``{"id": operationId, ...}``);
``DELETE /graphql?operationId=...`` with the token stops one. Each of these may reach any server
process: the reservation, the operation ids in use and the operations sent to a stream are rows
(``services.eventstreams``), and the process holding the stream's ``GET`` runs them, woken by the
event notifier (``oro_graph.notify``: PostgreSQL LISTEN/NOTIFY, Redis pub/sub, or its own commits)
or at the latest by its timer (``POLL_SECONDS``). It renews the reservation while it holds it; a
reservation nobody opened lapses after ``RESERVATION_SECONDS``, one whose process died after
``STREAM_LEASE_SECONDS``.

Signatures are ordinary request headers here (a fetch-based client sends them); a browser
``EventSource`` cannot, so it gets what needs no signature. Queries and subscriptions may come by
GET; a mutation needs a POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.graphql.sseprotocol import (
    BadRequest,
    bad_request,
    from_body,
    from_url,
    last_event_id,
    run_operation,
    sse_frame,
)
from oro_graph.graphql.streamholder import STREAM_LEASE_SECONDS, HeldStream, StreamHolder, forwarded
from oro_graph.runtime import Runtime
from oro_graph.services import eventstreams

log = logging.getLogger("oro_graph.graphql.stream")
TOKEN_HEADER = "x-graphql-event-stream-token"
MAX_RESERVATIONS = 1_000  # reservations at once, across the processes
RESERVATION_SECONDS = 60.0  # a reservation nobody opened is forgotten after this
MAX_OPERATIONS_PER_STREAM = 50
KEEPALIVE_SECONDS = 12.0  # a comment line on an idle stream (either mode)
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _kept_alive(frames: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """``frames``, with a comment line whenever none came for KEEPALIVE_SECONDS, so proxies keep an
    idle stream (a subscription without a keep-alive member of its own, like raceChanges, says
    nothing until something happens). The frames are made in a task of their own, a few ahead."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)

    async def produce() -> None:
        async with contextlib.aclosing(frames):  # cancelled with the response: the subscription ends
            try:
                async for frame in frames:
                    await queue.put(frame)
            except asyncio.CancelledError:
                raise
            except BaseException:
                await queue.put(None)  # and the failure is raised again by task.result() below
                raise
        await queue.put(None)

    task = asyncio.ensure_future(produce())
    try:
        while True:
            try:
                frame = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b":\n\n"
                continue
            if frame is None:
                break
            yield frame
        task.result()  # a failure of the stream's own is raised here, as before
    finally:
        task.cancel()


def install_stream(app: FastAPI, sse: Any) -> None:
    """``/graphql/stream``: distinct-connections mode whatever ``Accept`` says (GET or POST)."""
    router = APIRouter()

    @router.api_route("/graphql/stream", methods=["GET", "POST"], include_in_schema=False)
    async def stream(request: Request) -> Response:
        return await sse.distinct(request.scope, request.receive, request.method, request.headers)

    app.include_router(router)


class GraphQLSSE:
    """ASGI middleware in front of the graph's HTTP handler (inside the limit gate)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, path: str = "/graphql") -> None:
        self.app = app
        self.runtime = runtime
        self.path = path
        self.holder = StreamHolder(runtime)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        token = headers.get(TOKEN_HEADER) or self._query_param(scope, "token")
        wants_stream = "text/event-stream" in headers.get("accept", "")
        response: Response | None = None
        if method == "PUT":
            response = await self._reserve()
        elif token and method in ("GET", "POST", "DELETE"):
            response = await self._single(scope, receive, method, token, wants_stream)
        elif wants_stream and method in ("GET", "POST"):
            response = await self.distinct(scope, receive, method, headers)
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    @staticmethod
    def _query_param(scope: Scope, name: str) -> str | None:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[-1] if values else None

    # -- distinct connections ----------------------------------------------------------------

    async def distinct(self, scope: Scope, receive: Receive, method: str, headers: Headers) -> Response:
        """Distinct-connections mode (also the handler of /graphql/stream)."""
        try:
            operation = from_url(scope) if method == "GET" else await from_body(receive)
        except BadRequest as exc:
            return bad_request(str(exc))
        request = Request(scope)
        resume = last_event_id(headers)

        async def frames() -> AsyncGenerator[bytes, None]:
            # A comment first, so the headers go out now: a quiet subscription (a board without a cursor,
            # a version nothing happens to) otherwise answered nothing until its first event or keep-alive.
            yield b": stream open\n\n"
            async for payload, cursor in run_operation(
                self.runtime, request, operation, resume=resume, via_get=method == "GET"
            ):
                yield sse_frame("next", payload, event_id=cursor)
            yield sse_frame("complete")

        return StreamingResponse(
            _kept_alive(frames()), media_type="text/event-stream", headers=STREAM_HEADERS
        )

    # -- single connection ----------------------------------------------------------------------

    async def _reserve(self) -> Response:
        token = uuid.uuid4().hex
        now = time.time()
        try:
            await self.runtime.db.run(
                eventstreams.reserve,
                token,
                now=now,
                expires_at=now + RESERVATION_SECONDS,
                max_streams=MAX_RESERVATIONS,
            )
        except eventstreams.StreamRefused as refused:
            return PlainTextResponse(refused.message, refused.status, headers={"Retry-After": "5"})
        return PlainTextResponse(token, 201)

    async def _single(
        self, scope: Scope, receive: Receive, method: str, token: str, wants_stream: bool
    ) -> Response:
        db = self.runtime.db
        try:
            if method == "GET" and wants_stream:
                now = time.time()
                await db.run(eventstreams.open_stream, token, now=now, expires_at=now + STREAM_LEASE_SECONDS)
                stream = self.holder.hold(token)
                return StreamingResponse(
                    self._stream(stream, receive), media_type="text/event-stream", headers=STREAM_HEADERS
                )
            if method == "DELETE":
                operation_id = self._query_param(scope, "operationId") or ""
                await db.run(eventstreams.stop, token, operation_id, now=time.time())
                self.holder.wake()
                return Response(status_code=200)
            try:
                operation = from_url(scope) if method == "GET" else await from_body(receive)
            except BadRequest as exc:
                return bad_request(str(exc))
            named = operation.extensions.get("operationId")
            if not isinstance(named, str) or not named or len(named) > 128:
                return bad_request("name the operation in `extensions.operationId` (a string)")
            await db.run(
                eventstreams.submit,
                token,
                named,
                forwarded(scope, method, operation),
                now=time.time(),
                max_operations=MAX_OPERATIONS_PER_STREAM,
            )
        except eventstreams.StreamRefused as refused:
            return bad_request(refused.message, refused.status)
        self.holder.wake()
        return Response(status_code=202)

    async def _stream(self, stream: HeldStream, receive: Receive) -> AsyncIterator[bytes]:
        # Watch the connection too: a quiet stream would otherwise notice its client left only at
        # its next keep-alive, and hold its reservation and operations until then.
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            yield b": stream open\n\n"
            while True:
                frame = asyncio.ensure_future(stream.queue.get())
                await asyncio.wait(
                    {frame, gone}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if frame.done():
                    yield frame.result()
                    continue
                frame.cancel()
                if gone.done():
                    return
                yield b":\n\n"
        finally:  # the client went away: its operations end with it
            gone.cancel()
            self.holder.release(stream)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
