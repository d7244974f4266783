"""Strawberry's FastAPI router, refusing request bodies of the wrong shape.

Strawberry checks the fields of one JSON operation, but a body that is a number or a string, a
batch holding something other than operations, or a multipart ``map`` that points nowhere made it
fail with an unhandled exception (a 500). Here each is a 400 that says what the body should be.
A batch may hold at most ``ORO_GRAPHQL_MAX_BATCH`` operations (the server's setting, not the
schema's default). A JSON body the edge already read and decoded (``oro_graph.edge.request``) is
taken as it is, not decoded again.
"""

from __future__ import annotations

from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException, StarletteRequestAdapter
from starlette.datastructures import Headers
from starlette.requests import Request
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData, GraphQLRequestProtocol
from strawberry.types.unset import UNSET, UnsetType

from oro_graph.auth import SIGNED_HEADERS
from oro_graph.edge.request import EdgeRequest
from oro_graph.graphql.context import Context
from oro_graph.graphql.sqlcompile.wire import SPLICED, encoded


class _Decoded(bytes):
    """A body with the JSON value the edge decoded from it."""

    value: object


class _RequestAdapter(StarletteRequestAdapter):
    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.scope = request.scope

    async def get_body(self) -> bytes:
        state = EdgeRequest.get(self.scope)
        if state is None or state.body is None or not isinstance(state.payload, dict | list):
            return await super().get_body()
        body = _Decoded(state.body)
        body.value = state.payload
        return body


class Router(GraphQLRouter[Context, None]):
    request_adapter_class = _RequestAdapter

    def __init__(self, *args: Any, max_batch: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_batch = max_batch

    def _validate_batch_request(self, request_data: list[Any], protocol: GraphQLRequestProtocol) -> None:
        """Strawberry's check, with this server's batch size rather than the schema's."""
        if self.schema.config.batching_config is None:
            raise HTTPException(400, "Batching is not enabled")
        if transport := self._get_stream_transport(protocol):
            raise HTTPException(400, transport.batching_error)
        if len(request_data) > self.max_batch:
            raise HTTPException(400, "Too many operations")

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws: the four signature headers travel in ``connection_init``'s payload
        (a browser's websocket cannot send headers of its own). They stand for the connection's
        headers; the signature, nonce included, is verified once per connection, when a field first
        needs the signer (``Context.signer``)."""
        params = context.connection_params
        if isinstance(params, dict):
            wanted = {name.lower() for name in SIGNED_HEADERS}
            given = {
                k.lower(): v
                for k, v in params.items()
                if isinstance(k, str) and k.lower() in wanted and isinstance(v, str)
            }
            if given:
                merged = {k: v for k, v in context.headers.items() if k not in given}
                context.headers = Headers(headers={**merged, **given})
        return UNSET

    @property
    def graphql_ide_html(self) -> str:
        """GraphiQL with its scripts served by this server (``oro_graph.web``), not a CDN."""
        from oro_graph.web import graphiql_html

        return graphiql_html()

    def encode_json(self, data: object) -> str | bytes:
        """Strawberry's ``json.dumps(data, separators=(",", ":"))``, with a compiled answer's text
        spliced in as it is (``sqlcompile.wire.Answer``) rather than parsed and written again."""
        if isinstance(data, list):
            return "[" + ",".join(encoded(item) for item in data) + "]"
        return encoded(data)

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        """One operation whose result this view writes as a JSON body (``encode_json``): a
        compiled answer may come back as its text (a stream's results are written elsewhere)."""
        token = SPLICED.set(True)
        try:
            return await super().execute_single(*args, **kwargs)
        finally:
            SPLICED.reset(token)

    def decode_json(self, data: str | bytes) -> object:
        value = data.value if isinstance(data, _Decoded) else super().decode_json(data)
        if isinstance(value, dict) or (isinstance(value, list) and all(isinstance(i, dict) for i in value)):
            return value
        raise HTTPException(400, "expected a JSON object here (a batch body: a list of objects)")

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, Any]:
        try:
            return await super().parse_multipart(request)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise HTTPException(400, "the multipart `map` does not fit `operations`") from exc

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        for operation in data if isinstance(data, list) else [data]:  # a batch's operations are not checked
            if not (
                isinstance(operation.query, str | None)
                and isinstance(operation.operation_name, str | None)
                and isinstance(operation.variables, dict | None)
                and isinstance(operation.extensions, dict | None)
            ):
                raise HTTPException(
                    400,
                    "an operation's `query` and `operationName` are strings, its `variables` an object",
                )
        return data
