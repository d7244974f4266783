"""Subscriptions over server-sent events, for proxies and notebooks that cannot speak websockets.

POST /graphql/stream with the usual JSON body ({"query", "variables", "operationName"}) answers
``text/event-stream``: one ``event: next`` per result and ``event: complete`` at the end, the
framing of the graphql-sse protocol's distinct-connections mode.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from graphql import ExecutionResult

from oro_graph.graphql.context import build_context
from oro_graph.runtime import Runtime

MAX_BODY = 100_000


def _frame(event: str, payload: dict[str, Any] | None = None) -> bytes:
    data = json.dumps(payload, default=str) if payload is not None else ""
    return f"event: {event}\ndata: {data}\n\n".encode()


def _result(result: ExecutionResult) -> dict[str, Any]:
    out: dict[str, Any] = {"data": result.data}
    if result.errors:
        out["errors"] = [e.formatted for e in result.errors]
    return out


def install_stream(app: FastAPI, runtime: Runtime) -> None:
    from oro_graph.graphql.schema import schema

    router = APIRouter()

    @router.post("/graphql/stream", include_in_schema=False)
    async def stream(request: Request) -> Any:
        raw = await request.body()
        try:
            if len(raw) > MAX_BODY:
                raise ValueError(f"the body is larger than {MAX_BODY} bytes")
            body = json.loads(raw)
            query = body["query"]
            if not isinstance(query, str):
                raise ValueError("query must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"send JSON {{'query': ..., 'variables': {{...}}}}: {exc}"
            return JSONResponse({"errors": [{"message": detail, "extensions": {"code": "BAD_REQUEST"}}]}, 400)
        context = build_context(runtime, request)
        subscription = await schema.subscribe(
            query,
            variable_values=body.get("variables") or {},
            context_value=context,
            operation_name=body.get("operationName"),
        )

        async def events() -> AsyncIterator[bytes]:
            if isinstance(subscription, ExecutionResult):  # refused before it started
                yield _frame("next", _result(subscription))
            else:
                async for result in subscription:
                    if await request.is_disconnected():
                        break
                    yield _frame("next", _result(result))
            yield _frame("complete")

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    app.include_router(router)
