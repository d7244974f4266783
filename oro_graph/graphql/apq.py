"""Automatic persisted queries (the Apollo APQ protocol) in front of /graphql.

A client sends ``extensions.persistedQuery = {version: 1, sha256Hash}`` without the document;
if the server knows the hash it runs the stored document, otherwise it answers
PERSISTED_QUERY_NOT_FOUND and the client retries once with the document, which is then stored.
Hashes let frontends GET ``/graphql?extensions=...&variables=...`` through an HTTP cache.
Documents live in Redis when configured (shared by every server process), else in process.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph.redislink import Breaker, RedisLink, RedisUnavailable

MAX_DOCUMENT = 100_000
MAX_LOCAL = 5_000
REDIS_TTL = 7 * 24 * 3600


class QueryStore:
    """Persisted documents: in Redis (shared by the processes) and in this process. Redis is asked
    through the process's breaker (``oro_graph.redislink``): a hung Redis costs one short timeout
    per pause, then this process answers from what it remembers."""

    def __init__(self, redis: RedisLink | Any | None = None) -> None:
        if redis is not None and not isinstance(redis, RedisLink):
            redis = RedisLink(redis, Breaker(5.0))  # a bare client: a breaker of its own
        self._redis: RedisLink | None = redis
        self._local: OrderedDict[str, str] = OrderedDict()

    def get(self, digest: str) -> str | None:
        if self._redis is not None:
            try:
                value = self._redis.run("persisted queries", lambda client: client.get(f"oro:apq:{digest}"))
                return value.decode() if value else None
            except RedisUnavailable:  # fall back to what this process remembers
                pass
        found = self._local.get(digest)
        if found is not None:
            self._local.move_to_end(digest)
        return found

    def put(self, digest: str, document: str) -> None:
        self._local[digest] = document
        while len(self._local) > MAX_LOCAL:
            self._local.popitem(last=False)
        if self._redis is not None:
            key = f"oro:apq:{digest}"
            try:
                self._redis.run(
                    "persisted queries", lambda client: client.set(key, document.encode(), ex=REDIS_TTL)
                )
            except RedisUnavailable:
                pass


def _error(message: str, code: str) -> bytes:
    return json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()


class PersistedQueries:
    """ASGI middleware for the /graphql path: resolves and records persisted-query hashes."""

    def __init__(self, app: ASGIApp, store: QueryStore, path: str = "/graphql") -> None:
        self.app = app
        self.store = store
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            params = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
            outcome = self._resolve(params, from_json_text=True)
            if isinstance(outcome, bytes):
                await reply(send, outcome)
                return
            if outcome is not None:
                scope = {**scope, "query_string": urlencode(outcome).encode()}
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or b"json" not in dict(scope.get("headers", [])).get(
            b"content-type", b""
        ):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        payload = decoded(scope, body)
        if isinstance(payload, dict):
            outcome = self._resolve(payload, from_json_text=False)
            if isinstance(outcome, bytes):
                await reply(send, outcome)
                return
            if outcome is not None:
                body = json.dumps(outcome).encode()
                scope[_DECODED] = (body, outcome)
        await self.app(scope, replay(body, then=receive), send)

    def _resolve(self, payload: dict[str, Any], *, from_json_text: bool) -> dict[str, Any] | bytes | None:
        """None: nothing to do; a dict: the payload with its document; bytes: an error to answer."""
        extensions = payload.get("extensions")
        if from_json_text and isinstance(extensions, str):
            try:
                extensions = json.loads(extensions)
            except ValueError:
                return None
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if not isinstance(persisted, dict):
            return None
        digest = persisted.get("sha256Hash")
        if persisted.get("version") != 1 or not isinstance(digest, str) or len(digest) != 64:
            return _error(
                "persistedQuery needs version 1 and a sha256Hash of 64 hex digits", "PERSISTED_QUERY_INVALID"
            )
        document = payload.get("query")
        if isinstance(document, str) and document:
            if len(document) > MAX_DOCUMENT:
                return _error(
                    f"documents over {MAX_DOCUMENT} characters are not persisted", "PERSISTED_QUERY_INVALID"
                )
            if hashlib.sha256(document.encode()).hexdigest() != digest.lower():
                return _error("provided sha256Hash does not match the query", "PERSISTED_QUERY_INVALID")
            self.store.put(digest.lower(), document)
            return None
        stored = self.store.get(digest.lower())
        if stored is None:
            return _error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return {**payload, "query": stored}


_DECODED = "oro.graphql.decoded"


def decoded(scope: Scope, body: bytes) -> Any:
    """The JSON value of a /graphql body (None if it is not JSON), decoded once per request.

    The persisted-query resolver, the gate and the cache each need the body; the first to ask
    decodes it and keeps it in the ASGI scope, which every middleware below shares.
    """
    kept = scope.get(_DECODED)
    if kept is not None and kept[0] is body:
        return kept[1]
    try:
        value = json.loads(body) if body else None
    except ValueError:
        value = None
    scope[_DECODED] = (body, value)
    return value


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes, then: Receive | None = None) -> Receive:
    """The body already read, once; then what ``then`` receives (the client's disconnect, which an
    event stream waits for), or a disconnect at once without it."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def reply(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
