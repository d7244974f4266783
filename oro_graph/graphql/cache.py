"""A response cache for read operations, keyed by document, variables and the data version.

Every committed write changes the data version (oro_graph.dataversion), so a cached answer is
never served after the data it was computed from changed: hot reads (the leaderboard frontends
poll) skip execution entirely. Only unsigned queries without errors are stored; mutations,
subscriptions, debug responses and signed requests always run. Entries also expire after a TTL,
which bounds staleness from writers the version cannot see (another process without Redis).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl

from graphql import DocumentNode, GraphQLSyntaxError, OperationDefinitionNode, OperationType, parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph.dataversion import DataVersion
from oro_graph.graphql.apq import _read_body, _replay

MAX_ENTRIES = 2_000
MAX_ENTRY_BYTES = 4_000_000
MAX_DOCUMENT = 100_000


class ResponseCache:
    def __init__(self, version: DataVersion, *, ttl: float) -> None:
        self.version = version
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._kinds: OrderedDict[str, bool] = OrderedDict()  # document hash -> is a cacheable query
        self.hits = self.misses = 0

    def is_query(self, document: str, operation: str | None) -> bool:
        digest = hashlib.sha256(document.encode()).hexdigest()
        known = self._kinds.get(digest)
        if known is None:
            known = _is_query(document, operation)
            self._kinds[digest] = known
            if len(self._kinds) > MAX_ENTRIES:
                self._kinds.popitem(last=False)
        return known

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, body: bytes) -> None:
        if len(body) > MAX_ENTRY_BYTES:
            return
        self._entries[key] = (time.monotonic() + self.ttl, body)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)


def _is_query(document: str, operation: str | None) -> bool:
    if len(document) > MAX_DOCUMENT:
        return False
    try:
        parsed: DocumentNode = parse(document)
    except GraphQLSyntaxError:
        return False
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation is None or (o.name and o.name.value == operation)]
    return len(chosen) == 1 and chosen[0].operation == OperationType.QUERY


def _key(version: str, payload: dict[str, Any]) -> str:
    material = json.dumps(
        [version, payload.get("query"), payload.get("variables") or {}, payload.get("operationName")],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


class CachedResponses:
    """ASGI middleware for /graphql."""

    def __init__(self, app: ASGIApp, cache: ResponseCache, path: str = "/graphql") -> None:
        self.app = app
        self.cache = cache
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if b"x-signature" in headers:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            if b"text/html" in headers.get(b"accept", b""):  # GraphiQL
                await self.app(scope, receive, send)
                return
            params = dict(parse_qsl(scope.get("query_string", b"").decode()))
            payload: Any = {
                "query": params.get("query"),
                "variables": params.get("variables"),
                "operationName": params.get("operationName"),
            }
            body = b""
        else:
            if b"json" not in headers.get(b"content-type", b""):
                await self.app(scope, receive, send)
                return
            body = await _read_body(receive)
            receive = _replay(body)
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        if not (
            isinstance(payload, dict)
            and isinstance(payload.get("query"), str)
            and self.cache.is_query(payload["query"], payload.get("operationName"))
        ):
            await self.app(scope, receive, send)
            return
        version = self.cache.version.current()
        if version is None:
            await self.app(scope, receive, send)
            return
        key = _key(version, payload)
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.hits += 1
            await _send_json(send, cached, b"hit")
            return
        self.cache.misses += 1
        captured: dict[str, Any] = {"status": None, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", [])) + [(b"x-cache", b"miss")]
                message = {**message, "headers": captured["headers"]}
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        answer = b"".join(captured["body"])
        content_type = dict(captured["headers"]).get(b"content-type", b"")
        if (
            captured["status"] == 200
            and content_type.startswith(b"application/json")
            and b'"errors"' not in answer
            and self.cache.version.current() == version  # nothing was written meanwhile
        ):
            self.cache.put(key, answer)


async def _send_json(send: Send, body: bytes, state: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-cache", state),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
