"""Compiled answers without Strawberry's request handling: the innermost edge layer (``CompiledAnswers``).

On a miss of the response cache, a query the compiler covers still went through Strawberry's view
(its request parsing, context, extensions, parse and validation, the executor) only to run one
statement: about half of the Python a miss of the deep leaderboard cost. Here a request whose
document the executor has planned for before (``executor.known_plan``, by the document's canonical
form and the operation's name) is answered by binding its variables and running the statement, its
JSON text spliced into the body as the view writes it, with the cost the gate admitted it at as the
view's ``extensions``. Anything else goes on unchanged: a document not planned yet (the executor
plans it and records it for the next request), one the compiler declines, a batch, a signed
request, a stream (``Accept``), debug mode (answers carry SQL counts), SQLite; and so does a
statement that declines (its ``ok`` false) or fails, to the executor, which then answers without
running it again (``TRIED``).

It sits inside the response cache (``edge.graphcache``) and the read slots (``edge.capacity``): the
cache keeps this answer under what its statement read like any other, and an execution here holds
a read slot like any other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from graphql import GraphQLSchema
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.edge.deadline import REQUEST_DEADLINE
from oro_graph.edge.lexical import canonical
from oro_graph.edge.request import EdgeRequest, is_json, reply
from oro_graph.graphql.sqlcompile import executor, wire
from oro_graph.observability import record_operation
from oro_graph.runtime import Runtime

log = logging.getLogger(__name__)


class CompiledAnswers:
    """ASGI middleware for POST /graphql (module docstring)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, schema: GraphQLSchema, path: str = "/graphql") -> None:
        self.app = app
        self.runtime = runtime
        self.schema = schema
        self.path = path
        self.answered = 0  # requests answered here (tests count them)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != self.path
            or scope["method"] != "POST"
            or not executor.ENABLED
            or self.runtime.db.is_sqlite
            or self.runtime.settings.graphql_debug
            or not is_json(scope)
            or not _plain(scope)
        ):
            await self.app(scope, receive, send)
            return
        state = EdgeRequest.get(scope)
        payload = state.payload if state is not None else None
        if state is None or not isinstance(payload, dict):  # no body read by the edge, or a batch
            await self.app(scope, receive, send)
            return
        query, name, variables = payload.get("query"), payload.get("operationName"), payload.get("variables")
        admitted = state.admission(query, name, variables) if isinstance(query, str) else None
        if admitted is None or not isinstance(name, str | None):  # judged by the schema, not the gate
            await self.app(scope, receive, send)
            return
        try:
            form = admitted.canonical or canonical(admitted.query)  # the gate's, when it made it
            requested = executor.document_key(form, name, self.runtime.settings)
            found = executor.known_plan(self.schema, requested, variables)
        except Exception:  # looking a plan up must never cost an answer: the view gives it
            log.exception("looking up a compiled plan failed; executing instead")
            await self.app(scope, receive, send)
            return
        if found is None:
            token = executor.REQUESTED.set(requested)  # the executor records what it plans for
            try:
                await self.app(scope, receive, send)
            finally:
                executor.REQUESTED.reset(token)
            return
        bound, known = found
        data = await self._run(bound)
        if data is None:
            tried = executor.TRIED.set(True)
            try:
                await self.app(scope, receive, send)
            finally:
                executor.TRIED.reset(tried)
            return
        cost = admitted.cost.total
        budget = self.runtime.settings.graphql_limits.max_cost
        body = wire.encoded({"data": data, "extensions": {"cost": {"requested": cost, "budget": budget}}})
        operation = known.operation.name.value if known.operation.name else None
        record_operation(operation, "query", "ok", cost)
        self.answered += 1
        await reply(send, body.encode())

    async def _run(self, bound: executor.Bound) -> dict[str, Any] | wire.Answer | None:
        """The statement's answer, or None when the executor must answer (it declined, failed, or
        ran past the request's deadline: the executor then reports the deadline)."""
        deadline = REQUEST_DEADLINE.get()
        spliced = wire.SPLICED.set(True)  # this layer writes the body: the text is spliced in
        try:
            run = self.runtime.db.run(executor.answer, bound)
            return await (asyncio.wait_for(run, deadline.remaining()) if deadline is not None else run)
        except TimeoutError:
            return None
        except Exception:  # the executor answers, with its own error if there is one
            log.debug("compiled statement failed; executing instead", exc_info=True)
            return None
        finally:
            wire.SPLICED.reset(spliced)


def _plain(scope: Scope) -> bool:
    """An unsigned request for a JSON answer: not one of Strawberry's streams (multipart or SSE,
    chosen by ``Accept``), whose answers are written otherwise."""
    for name, value in scope["headers"]:
        if name == b"x-signature":
            return False
        if name == b"accept" and (b"multipart/" in value or b"text/event-stream" in value):
            return False
    return True
