"""What every operation's answer carries besides its data (the schema's ``Observability`` extension).

``extensions.sql`` in debug mode (statements counted at the driver), a stable ``extensions.code`` on
every error, and unexpected errors masked outside debug, with a request id that matches the log
line. The limits are the edge's (``oro_graph.edge.limits.Limits``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.relay import GlobalIDValueError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from oro_graph.db import StatementCount, statement_counter
from oro_graph.errors import OroError

log = logging.getLogger("oro_graph.graphql")
NO_OPERATION = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


def _debug(execution_context: Any) -> bool:
    runtime = getattr(execution_context.context, "runtime", None)
    return bool(runtime and runtime.settings.graphql_debug)


def _code(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, OroError):
        return original.code.value
    if isinstance(original, GraphQLError) and original.extensions and "code" in original.extensions:
        return str(original.extensions["code"])
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    if isinstance(original, GlobalIDValueError | GraphQLError):
        return "BAD_USER_INPUT"  # a value the client sent could not be read (a variable, a global id)
    if original is None or isinstance(original, NO_OPERATION):
        return "GRAPHQL_VALIDATION_FAILED"  # parse and validation errors, no such operation (websocket, SSE)
    return "INTERNAL_SERVER_ERROR"


class Observability(SchemaExtension):
    """SQL statement counts (debug), stable error codes, masking of unexpected errors."""

    def __init__(self) -> None:
        self.count = StatementCount()
        self.started = 0.0
        self.streamed = False

    def on_operation(self) -> Iterator[None]:
        self.started = time.perf_counter()
        token = statement_counter.set(self.count)
        try:
            yield
        finally:
            # A stream the loop's finalizer closes runs this in another context, where the token is unknown.
            with contextlib.suppress(ValueError):
                statement_counter.reset(token)
        result = self.execution_context.result
        if result is not None and result.errors and not self.streamed:
            result.errors = [self._shape(error) for error in result.errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each result of a subscription (websocket or SSE) is shaped before it is sent: the operation
        only ends when the stream does."""
        self.streamed = True
        if getattr(result, "errors", None):
            result.errors = [self._shape(error) for error in result.errors]
        yield

    def _shape(self, error: GraphQLError) -> GraphQLError:
        code = _code(error)
        extensions = {**(error.extensions or {}), "code": code}
        original = error.original_error
        if isinstance(original, OroError):
            extensions.update({_camel(k): v for k, v in original.extra.items()})
        if code != "INTERNAL_SERVER_ERROR":
            error.extensions = extensions
            return error
        request_id = getattr(self.execution_context.context, "request_id", "-")
        log.error("unexpected error in GraphQL operation (request id %s)", request_id, exc_info=original)
        extensions["requestId"] = request_id
        if _debug(self.execution_context):
            error.extensions = extensions
            return error
        return GraphQLError(
            f"Unexpected error; quote request id {request_id} when reporting it.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=extensions,
        )

    def get_results(self) -> dict[str, Any]:
        if not _debug(self.execution_context):
            return {}
        return {"sql": {"statements": self.count.statements, "ms": round(self.count.seconds * 1000, 3)}}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
