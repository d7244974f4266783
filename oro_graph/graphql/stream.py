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
``DELETE /graphql?operationId=...`` with the token stops one. A reservation lives in the server
process that made it: behind several processes, route a client's requests to one of them.

Signatures are ordinary request headers here (a fetch-based client sends them); a browser
``EventSource`` cannot, so it gets what needs no signature. Queries and subscriptions may come by
GET; a mutation needs a POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
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

MAX_BODY = 100_000
TOKEN_HEADER = "x-graphql-event-stream-token"
MAX_RESERVATIONS = 1_000
RESERVATION_SECONDS = 60.0  # a reservation nobody opened is forgotten after this
MAX_OPERATIONS_PER_STREAM = 50
KEEPALIVE_SECONDS = 12.0  # a comment line on an idle single-connection stream
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


@dataclass
class Reservation:
    token: str
    created: float = field(default_factory=time.monotonic)
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    operations: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    opened: bool = False


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
        self.reservations: dict[str, Reservation] = {}

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
            response = self._reserve()
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

        async def events() -> AsyncIterator[bytes]:
            # A comment first, so the headers go out now: a quiet subscription (a board without a cursor,
            # a version nothing happens to) otherwise answered nothing until its first event or keep-alive.
            yield b": stream open\n\n"
            async for payload, cursor in _results(
                self.runtime, request, operation, resume=resume, via_get=method == "GET"
            ):
                yield _frame("next", payload, event_id=cursor)
            yield _frame("complete")

        return StreamingResponse(events(), media_type="text/event-stream", headers=STREAM_HEADERS)

    # -- single connection -------------------------------------------------------------------

    def _forget_stale(self) -> None:
        now = time.monotonic()
        for token, reservation in list(self.reservations.items()):
            if not reservation.opened and now - reservation.created > RESERVATION_SECONDS:
                del self.reservations[token]

    def _reserve(self) -> Response:
        self._forget_stale()
        if len(self.reservations) >= MAX_RESERVATIONS:
            busy = "too many open event streams; try again later"
            return PlainTextResponse(busy, 503, headers={"Retry-After": "5"})
        token = uuid.uuid4().hex
        self.reservations[token] = Reservation(token)
        return PlainTextResponse(token, 201)

    async def _single(
        self, scope: Scope, receive: Receive, method: str, token: str, wants_stream: bool
    ) -> Response:
        reservation = self.reservations.get(token)
        if reservation is None:
            return _bad_request("no such event stream: make a reservation with PUT /graphql first", 404)
        if method == "GET" and wants_stream:
            if reservation.opened:
                return _bad_request("this event stream is already open", 409)
            reservation.opened = True
            return StreamingResponse(
                self._stream(reservation), media_type="text/event-stream", headers=STREAM_HEADERS
            )
        if method == "DELETE":
            operation_id = self._query_param(scope, "operationId")
            task = reservation.operations.pop(operation_id or "", None)
            if task is None:
                return _bad_request("no such operation on this stream (`operationId` in the URL)", 404)
            task.cancel()
            reservation.queue.put_nowait(_frame("complete", {"id": operation_id}))
            return Response(status_code=200)
        try:
            operation = _from_url(scope) if method == "GET" else await _from_body(receive)
        except BadRequest as exc:
            return _bad_request(str(exc))
        operation_id = operation.extensions.get("operationId")
        if not isinstance(operation_id, str) or not operation_id or len(operation_id) > 128:
            return _bad_request("name the operation in `extensions.operationId` (a string)")
        if operation_id in reservation.operations:
            return _bad_request(f"operation {operation_id!r} is already running on this stream", 409)
        if len(reservation.operations) >= MAX_OPERATIONS_PER_STREAM:
            return _bad_request(f"at most {MAX_OPERATIONS_PER_STREAM} operations per stream", 429)
        request = Request(scope)
        reservation.operations[operation_id] = asyncio.create_task(
            self._run(reservation, operation_id, request, operation, via_get=method == "GET")
        )
        return Response(status_code=202)

    async def _run(
        self,
        reservation: Reservation,
        operation_id: str,
        request: Request,
        operation: Operation,
        *,
        via_get: bool,
    ) -> None:
        try:
            async for payload, _ in _results(self.runtime, request, operation, resume=None, via_get=via_get):
                reservation.queue.put_nowait(_frame("next", {"id": operation_id, "payload": payload}))
            reservation.queue.put_nowait(_frame("complete", {"id": operation_id}))
        finally:
            if reservation.operations.get(operation_id) is asyncio.current_task():
                del reservation.operations[operation_id]

    async def _stream(self, reservation: Reservation) -> AsyncIterator[bytes]:
        try:
            yield b": stream open\n\n"
            while True:
                try:
                    yield await asyncio.wait_for(reservation.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b":\n\n"
        finally:  # the client went away: its operations end with it
            self.reservations.pop(reservation.token, None)
            for task in reservation.operations.values():
                task.cancel()
