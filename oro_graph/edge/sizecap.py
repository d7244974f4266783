"""Request size caps for the /v1 paths and /graphql, ahead of routing: headers, then the body.

Without them a client could post a 10 MB JSON body (it was parsed whole and stored: a 10 MB
``failure_reason``) or 100 KB of headers (the HTTP parser let them through); /graphql read any
body whole before the graph's limits looked at it. The body cap holds whether the client declares
a Content-Length or streams chunks without one. /graphql is refused in the GraphQL shape.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph.errors import FileTooLarge, OroError, ValidationFailed

MAX_HEADER_BYTES = 32 * 1024  # all names and values together; the signed headers need < 300
MAX_JSON_BODY_BYTES = 2 * 1024 * 1024  # a progress update of 500 problems is well under this
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and agent_name around the file
SUBMIT_PATH = "/v1/miner/submit"
GRAPHQL_PATH = "/graphql"  # JSON operations, or submitAgent's multipart upload


class RequestHeadersTooLarge(OroError):
    code = ValidationFailed.code
    status = 431


class BodyOverCap(Exception):
    """Raised by the capped receive on /graphql: no handler inside knows it, so it reaches the cap."""


class RequestSizeLimit:
    def __init__(self, app: ASGIApp, *, max_agent_bytes: int) -> None:
        self.app = app
        self.submit_cap = max_agent_bytes + MULTIPART_OVERHEAD_BYTES

    def _body_cap(self, scope: Scope) -> int | None:
        path = scope["path"]
        if path == SUBMIT_PATH:
            return self.submit_cap
        if path == GRAPHQL_PATH:
            content_type = dict(scope["headers"]).get(b"content-type", b"")
            return self.submit_cap if content_type.startswith(b"multipart/") else MAX_JSON_BODY_BYTES
        return MAX_JSON_BODY_BYTES if path.startswith("/v1/") else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cap = self._body_cap(scope) if scope["type"] == "http" else None
        if cap is None:
            await self.app(scope, receive, send)
            return
        graph = scope["path"] == GRAPHQL_PATH
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            exc: OroError = RequestHeadersTooLarge(
                f"request headers total {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"
            )
            await _refusal(exc, graph)(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            exc = FileTooLarge(
                f"request body of {int(declared)} bytes exceeds the {cap} bytes this path accepts"
            )
            await _refusal(exc, graph)(scope, receive, send)
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    exc = FileTooLarge(f"request body exceeds the {cap} bytes this path accepts")
                    if graph:
                        raise BodyOverCap() from exc
                    raise exc  # surfaces through the body parser; see errors.http_error_handler
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracked_send)
        except BodyOverCap as over:
            if started:
                raise
            assert isinstance(over.__cause__, OroError)
            await _refusal(over.__cause__, graph)(scope, receive, send)


def _refusal(exc: OroError, graph: bool) -> JSONResponse:
    """The REST error body, or for /graphql a GraphQL response with the same code."""
    if not graph:
        return JSONResponse(exc.to_body(), status_code=exc.status)  # the flat REST body
    error = {"message": exc.detail, "extensions": {"code": exc.code.value}}
    return JSONResponse({"errors": [error]}, status_code=exc.status)
