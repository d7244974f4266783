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
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI
from graphql import ExecutionResult, GraphQLError, OperationType, get_operation_ast, parse
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.graphql.context import build_context
from oro_graph.runtime import Runtime
from oro_graph.services import eventstreams

log = logging.getLogger("oro_graph.graphql.stream")
MAX_BODY = 100_000
TOKEN_HEADER = "x-graphql-event-stream-token"
MAX_RESERVATIONS = 1_000  # reservations at once, across the processes
RESERVATION_SECONDS = 60.0  # a reservation nobody opened is forgotten after this
STREAM_LEASE_SECONDS = 60.0  # an open stream's reservation, renewed by its holder every third of it
POLL_SECONDS = 1.0  # the holder looks for operations at least this often, woken or not
MAX_OPERATIONS_PER_STREAM = 50
# Request headers an operation takes to the process that runs it (the signature's among them).
FORWARDED_HEADERS = ("x-hotkey", "x-timestamp", "x-nonce", "x-signature", "x-request-id", "user-agent")
KEEPALIVE_SECONDS = 12.0  # a comment line on an idle stream (either mode)
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _frame(event: str, payload: dict[str, Any] | None = None, *, event_id: str | None = None) -> bytes:
    data = json.dumps(payload, default=str) if payload is not None else ""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def _result(result: ExecutionResult) -> dict[str, Any]:
    out: dict[str, Any] = {"data": result.data}
    if result.errors:
        out["errors"] = [e.formatted for e in result.errors]
    if result.extensions:
        out["extensions"] = result.extensions
    return out


def _bad_request(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}, status)


class BadRequest(ValueError):
    pass


@dataclass
class Operation:
    query: str
    variables: dict[str, Any]
    operation_name: str | None
    extensions: dict[str, Any]


def _operation(params: dict[str, Any]) -> Operation:
    query, variables = params.get("query"), params.get("variables") or {}
    name, extensions = params.get("operationName"), params.get("extensions") or {}
    if not isinstance(query, str) or not query:
        raise BadRequest("`query` must be a GraphQL document (a string)")
    if not isinstance(variables, dict):
        raise BadRequest("`variables` must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise BadRequest("`operationName` must be a string")
    if not isinstance(extensions, dict):
        raise BadRequest("`extensions` must be a JSON object")
    return Operation(query, variables, name, extensions)


def _from_url(scope: Scope) -> Operation:
    params = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    decoded: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
    for key in ("variables", "extensions"):
        if params.get(key):
            try:
                decoded[key] = json.loads(params[key])
            except ValueError as exc:
                raise BadRequest(f"`{key}` in the URL must be JSON: {exc}") from None
    return _operation(decoded)


async def _from_body(receive: Receive) -> Operation:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(f"the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        body = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise BadRequest(f"send JSON {{'query': ..., 'variables': {{...}}}}: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("send one JSON object {'query': ..., 'variables': {...}}")
    return _operation(body)


def _kind(operation: Operation) -> OperationType | None:
    """The operation's type, or None when the document does not parse (the executor says why)."""
    try:
        found = get_operation_ast(parse(operation.query), operation.operation_name)
    except GraphQLError:
        return None
    return found.operation if found is not None else None


def _last_event_id(headers: Headers) -> str | None:
    value = headers.get("last-event-id", "").strip()
    return value if value.isascii() and value.isdigit() and len(value) <= 19 else None


async def _results(
    runtime: Runtime, request: Request, operation: Operation, *, resume: str | None, via_get: bool
) -> AsyncIterator[tuple[dict[str, Any], str | None]]:
    """Each result with the event id it gets (the log cursor of the event it carries, if any)."""
    from oro_graph.graphql.schema import schema

    context = build_context(runtime, request)
    context.resume_after = resume
    kind = _kind(operation)
    if kind is not None and kind != OperationType.SUBSCRIPTION:
        if via_get and kind == OperationType.MUTATION:
            error = GraphQLError("a mutation needs a POST", extensions={"code": "BAD_REQUEST"})
            yield _result(ExecutionResult(data=None, errors=[error])), None
            return
        result = await schema.execute(
            operation.query,
            variable_values=operation.variables,
            context_value=context,
            operation_name=operation.operation_name,
        )
        yield _result(result), None
        return
    subscription = await schema.subscribe(
        operation.query,
        variable_values=operation.variables,
        context_value=context,
        operation_name=operation.operation_name,
    )
    if isinstance(subscription, ExecutionResult):  # refused before it started
        yield _result(subscription), None
        return
    async with contextlib.aclosing(subscription):  # type: ignore[type-var]
        async for result in subscription:
            cursor, context.event_cursor = context.event_cursor, None
            yield _result(result), cursor


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


@dataclass
class HeldStream:
    """A single-connection stream this process holds (its GET is open here)."""

    token: str
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    operations: dict[str, asyncio.Task[None]] = field(default_factory=dict)


def _forwarded(scope: Scope, method: str, operation: Operation) -> dict[str, Any]:
    """What the holder needs to run an operation as if it had received the request itself."""
    headers = Headers(scope=scope)
    client = scope.get("client")
    return {
        "method": method,
        "headers": [[name, headers[name]] for name in FORWARDED_HEADERS if name in headers],
        "client": list(client) if client else None,
        "query": operation.query,
        "variables": operation.variables,
        "operationName": operation.operation_name,
        "extensions": operation.extensions,
    }


def _request_of(forwarded: dict[str, Any]) -> Request:
    client = forwarded.get("client")
    return Request(
        {
            "type": "http",
            "method": forwarded["method"],
            "scheme": "http",
            "path": "/graphql",
            "root_path": "",
            "query_string": b"",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in forwarded["headers"]],
            "client": tuple(client) if client else None,
        }
    )


class StreamHolder:
    """This process's open single-connection streams, and the loop that brings them their operations."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.held: dict[str, HeldStream] = {}
        self._wake: asyncio.Event | None = None
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def hold(self, token: str) -> HeldStream:
        stream = self.held[token] = HeldStream(token)
        if self._poller is None or self._poller.done():
            self._wake = asyncio.Event()
            self._poller = asyncio.create_task(self._poll())
        return stream

    def wake(self) -> None:
        """Something was sent to a stream from this process: look now."""
        if self._wake is not None:
            self._wake.set()

    def release(self, stream: HeldStream) -> None:
        """The stream's client went away: its operations end with it, and its reservation goes."""
        if self.held.get(stream.token) is stream:
            del self.held[stream.token]
        for task in stream.operations.values():
            task.cancel()
        self._spawn(self.runtime.db.run(eventstreams.close, stream.token))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll(self) -> None:
        renew_at = 0.0
        while self.held:
            assert self._wake is not None
            self._wake.clear()
            now = time.time()
            renew = now + STREAM_LEASE_SECONDS if now >= renew_at else None
            tokens = list(self.held)
            try:
                # A read first: most looks find nothing, and a write transaction each time would
                # queue behind every writer on SQLite.
                if renew is None and not await self.runtime.db.run(eventstreams.waiting, tokens):
                    messages = []
                else:
                    messages = await self.runtime.db.run(eventstreams.take, tokens, renew_until=renew)
            except Exception:  # the database is away: try again on the next round
                log.warning("could not read the event streams' operations", exc_info=True)
                messages = []
            else:
                if renew is not None:
                    renew_at = now + STREAM_LEASE_SECONDS / 3
            for token, message in messages:
                stream = self.held.get(token)
                if stream is not None:
                    self._dispatch(stream, message)
            await self._sleep()

    async def _sleep(self) -> None:
        assert self._wake is not None
        local = asyncio.ensure_future(self._wake.wait())
        remote = asyncio.ensure_future(self.runtime.notifier.wait(POLL_SECONDS))
        try:
            await asyncio.wait({local, remote}, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            local.cancel()
            remote.cancel()

    def _dispatch(self, stream: HeldStream, message: dict[str, Any]) -> None:
        if "stop" in message:
            task = stream.operations.pop(message["stop"], None)
            if task is not None:
                task.cancel()
            stream.queue.put_nowait(_frame("complete", {"id": message["stop"]}))
            return
        operation_id, forwarded = message["run"], message["request"]
        operation = Operation(
            forwarded["query"], forwarded["variables"], forwarded["operationName"], forwarded["extensions"]
        )
        stream.operations[operation_id] = asyncio.create_task(
            self._run(
                stream, operation_id, _request_of(forwarded), operation, via_get=forwarded["method"] == "GET"
            )
        )

    async def _run(
        self, stream: HeldStream, operation_id: str, request: Request, operation: Operation, *, via_get: bool
    ) -> None:
        try:
            async for payload, _ in _results(self.runtime, request, operation, resume=None, via_get=via_get):
                stream.queue.put_nowait(_frame("next", {"id": operation_id, "payload": payload}))
            stream.queue.put_nowait(_frame("complete", {"id": operation_id}))
        finally:
            if stream.operations.get(operation_id) is asyncio.current_task():
                del stream.operations[operation_id]
                self._spawn(self.runtime.db.run(eventstreams.finish, stream.token, operation_id))


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
            operation = _from_url(scope) if method == "GET" else await _from_body(receive)
        except BadRequest as exc:
            return _bad_request(str(exc))
        request = Request(scope)
        resume = _last_event_id(headers)

        async def frames() -> AsyncGenerator[bytes, None]:
            # A comment first, so the headers go out now: a quiet subscription (a board without a cursor,
            # a version nothing happens to) otherwise answered nothing until its first event or keep-alive.
            yield b": stream open\n\n"
            async for payload, cursor in _results(
                self.runtime, request, operation, resume=resume, via_get=method == "GET"
            ):
                yield _frame("next", payload, event_id=cursor)
            yield _frame("complete")

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
                operation = _from_url(scope) if method == "GET" else await _from_body(receive)
            except BadRequest as exc:
                return _bad_request(str(exc))
            named = operation.extensions.get("operationId")
            if not isinstance(named, str) or not named or len(named) > 128:
                return _bad_request("name the operation in `extensions.operationId` (a string)")
            await db.run(
                eventstreams.submit,
                token,
                named,
                _forwarded(scope, method, operation),
                now=time.time(),
                max_operations=MAX_OPERATIONS_PER_STREAM,
            )
        except eventstreams.StreamRefused as refused:
            return _bad_request(refused.message, refused.status)
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
