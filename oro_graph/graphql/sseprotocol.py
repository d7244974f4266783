"""The graphql-sse wire format: an operation read from a URL or a JSON body, run against the schema,
and each result written as a server-sent event (see ``stream``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from graphql import ExecutionResult, GraphQLError, OperationType, get_operation_ast, parse
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope

from oro_graph.graphql.context import build_context
from oro_graph.runtime import Runtime

MAX_BODY = 100_000


def sse_frame(event: str, payload: dict[str, Any] | None = None, *, event_id: str | None = None) -> bytes:
    data = json.dumps(payload, default=str) if payload is not None else ""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def result_payload(result: ExecutionResult) -> dict[str, Any]:
    out: dict[str, Any] = {"data": result.data}
    if result.errors:
        out["errors"] = [e.formatted for e in result.errors]
    if result.extensions:
        out["extensions"] = result.extensions
    return out


def bad_request(message: str, status: int = 400) -> JSONResponse:
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


def from_url(scope: Scope) -> Operation:
    params = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    decoded: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
    for key in ("variables", "extensions"):
        if params.get(key):
            try:
                decoded[key] = json.loads(params[key])
            except ValueError as exc:
                raise BadRequest(f"`{key}` in the URL must be JSON: {exc}") from None
    return _operation(decoded)


async def from_body(receive: Receive) -> Operation:
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


def last_event_id(headers: Headers) -> str | None:
    value = headers.get("last-event-id", "").strip()
    return value if value.isascii() and value.isdigit() and len(value) <= 19 else None


async def run_operation(
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
            yield result_payload(ExecutionResult(data=None, errors=[error])), None
            return
        result = await schema.execute(
            operation.query,
            variable_values=operation.variables,
            context_value=context,
            operation_name=operation.operation_name,
        )
        yield result_payload(result), None
        return
    subscription = await schema.subscribe(
        operation.query,
        variable_values=operation.variables,
        context_value=context,
        operation_name=operation.operation_name,
    )
    if isinstance(subscription, ExecutionResult):  # refused before it started
        yield result_payload(subscription), None
        return
    async with contextlib.aclosing(subscription):  # type: ignore[type-var]
        async for result in subscription:
            cursor, context.event_cursor = context.event_cursor, None
            yield result_payload(result), cursor
