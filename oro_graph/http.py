"""HTTP habits every answer shares: compression, validators for caches, and CORS per surface.

- ``Compression``: Brotli when the client accepts it, else gzip, for answers of a compressible type
  sent in one piece (JSON, HTML, text) from ``MIN_BYTES`` on. Streams (``text/event-stream``, or any
  answer sent in several chunks) pass as they are, so each event still reaches the client at once.
- ``ConditionalGet``: unsigned GETs of what anyone may read and cache (the ``/v1/public`` reads, the
  graph over GET, persisted queries included) get a weak ``ETag`` over the body and a public
  ``Cache-Control``; ``If-None-Match`` with a matching tag is answered ``304 Not Modified`` without a
  body. A request carrying any of the signature headers is never given either and its answer is
  ``Cache-Control: private, no-store`` (CONTRACTS.md section 3). The route still runs (and counts
  against the rate limit): the tag is computed from what it answers.
- ``PathCORS``: browser access to ``/graphql`` (``ORO_GRAPHQL_CORS_ORIGINS``) and to the REST paths
  (``ORO_REST_CORS_ORIGINS``) is configured separately; unset, no CORS headers are sent.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence

import brotli
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph.auth import SIGNED_HEADERS

MIN_BYTES = 500
COMPRESSIBLE = (
    b"application/json",
    b"application/graphql-response+json",
    b"application/problem+json",
    b"text/html",
    b"text/plain",
    b"text/css",
    b"text/javascript",
    b"application/javascript",
    b"application/openapi+json",
)
SIGNATURE_HEADERS = tuple(h.lower() for h in SIGNED_HEADERS)
RATE_HEADERS = ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
EXPOSED = [*RATE_HEADERS, "ETag", "X-Request-Id", "X-Cache"]


def _accepted(header: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name:
            out[name.strip().lower()] = q
    return out


def choose_encoding(accept_encoding: str) -> str | None:
    """``br`` if the client accepts it, else ``gzip``, else None (``*`` accepts both)."""
    accepted = _accepted(accept_encoding)
    wildcard = accepted.get("*", 0.0)
    for name in ("br", "gzip"):
        if accepted.get(name, wildcard) > 0:
            return name
    return None


def _add_vary(headers: MutableHeaders, *names: str) -> None:
    present = {v.strip().lower() for v in headers.get("vary", "").split(",") if v.strip()}
    for name in names:
        if name.lower() not in present:
            headers.add_vary_header(name)
            present.add(name.lower())


class _Buffered:
    """Holds ``http.response.start`` until the first body message shows whether more follow."""

    def __init__(self) -> None:
        self.start: Message | None = None


class Compression:
    def __init__(self, app: ASGIApp, *, minimum_size: int = MIN_BYTES) -> None:
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = choose_encoding(Headers(scope=scope).get("accept-encoding", ""))
        held = _Buffered()

        async def compressing(message: Message) -> None:
            if message["type"] == "http.response.start":
                if _is_event_stream(message):  # never compressed: open it now, not at its first event
                    await send(message)
                    return
                held.start = message
                return
            if message["type"] != "http.response.body" or held.start is None:
                await send(message)
                return
            start, held.start = held.start, None
            raw = list(start.get("headers", []))
            content_type, encoded, varies = b"", False, False
            for name, value in raw:  # one pass over the raw pairs: most answers need no more
                if name == b"content-type":
                    content_type = content_type or value.lower()
                elif name == b"content-encoding":
                    encoded = True
                elif name == b"vary":
                    varies = True
            compressible = content_type.startswith(COMPRESSIBLE) and not encoded
            body = message.get("body", b"")
            if compressible and not varies:
                raw.append((b"vary", b"Accept-Encoding"))
            headers = MutableHeaders(raw=raw)
            if compressible and varies:
                _add_vary(headers, "Accept-Encoding")
            if (
                compressible
                and encoding is not None
                and not message.get("more_body", False)  # a stream: leave each chunk as it is
                and len(body) >= self.minimum_size
                and start["status"] not in (204, 206, 304)
            ):
                body = brotli.compress(body, quality=4) if encoding == "br" else gzip.compress(body, 6)
                headers["content-encoding"] = encoding
                headers["content-length"] = str(len(body))
                message = {**message, "body": body}
            await send({**start, "headers": headers.raw})
            await send(message)

        await self.app(scope, receive, compressing)


def _is_event_stream(start: Message) -> bool:
    content_type = MutableHeaders(raw=list(start.get("headers", []))).get("content-type", "")
    return content_type.lower().startswith("text/event-stream")


def _cacheable(scope: Scope) -> bool:
    path: str = scope["path"]
    if path.startswith("/v1/public/"):
        return path != "/v1/public/artifacts/download-url"  # a fresh signed URL each time
    return path == "/graphql" and bool(scope.get("query_string"))  # an operation, not GraphiQL's page


def etag_of(body: bytes) -> str:
    return 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, tag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(","))


class ConditionalGet:
    def __init__(self, app: ASGIApp, *, max_age: int = 0) -> None:
        self.app = app
        self.cache_control = "public, no-cache" if max_age == 0 else f"public, max-age={max_age}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Headers(scope=scope)
        if any(name in request for name in SIGNATURE_HEADERS):
            await self.app(scope, receive, self._private(send))
            return
        if scope["method"] != "GET" or not _cacheable(scope):
            await self.app(scope, receive, send)
            return
        if_none_match = request.get("if-none-match")
        graph = scope["path"] == "/graphql"
        held = _Buffered()

        async def tagging(message: Message) -> None:
            if message["type"] == "http.response.start":
                held.start = message
                return
            if message["type"] != "http.response.body" or held.start is None:
                await send(message)
                return
            start, held.start = held.start, None
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            body = message.get("body", b"")
            json = headers.get("content-type", "").startswith(("application/json", "application/graphql"))
            if start["status"] != 200 or not json or message.get("more_body", False) or "etag" in headers:
                await send(start)
                await send(message)
                return
            tag = etag_of(body)
            headers["etag"] = tag
            headers["cache-control"] = self.cache_control
            if graph:  # the same URL answers differently to a signed caller or a browser asking for HTML
                _add_vary(headers, "Accept", *SIGNED_HEADERS)
            if if_none_match is not None and _matches(if_none_match, tag):
                for name in ("content-length", "content-type", "content-encoding"):
                    del headers[name]
                await send({"type": "http.response.start", "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": headers.raw})
            await send(message)

        await self.app(scope, receive, tagging)

    @staticmethod
    def _private(send: Send) -> Send:
        async def private(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                del headers["etag"]
                headers["cache-control"] = "private, no-store"
                message = {**message, "headers": headers.raw}
            await send(message)

        return private


class PathCORS:
    def __init__(self, app: ASGIApp, *, graph_origins: Sequence[str], rest_origins: Sequence[str]) -> None:
        self.app = app
        self.graph = (
            CORSMiddleware(
                app,
                allow_origins=list(graph_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],  # PUT/DELETE: graphql-sse
                allow_headers=["*"],
                expose_headers=EXPOSED,
            )
            if graph_origins
            else None
        )
        self.rest = (
            CORSMiddleware(
                app,
                allow_origins=list(rest_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Content-Type", "If-None-Match", "X-Request-Id", *SIGNED_HEADERS],
                expose_headers=EXPOSED,
                max_age=600,
            )
            if rest_origins
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target: ASGIApp | None = None
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/graphql" or path.startswith("/graphql/"):
                target = self.graph
            elif path.startswith("/v1/") or path == "/health":
                target = self.rest
        await (target or self.app)(scope, receive, send)
