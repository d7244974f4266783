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

from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.edge.request import EdgeRequest, is_json, read_body, reply
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
                EdgeRequest.of(scope)  # made before the copy, so both scopes share it
                scope = {**scope, "query_string": urlencode(outcome).encode()}
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or not is_json(scope):
            await self.app(scope, receive, send)
            return
        state, receive = await read_body(scope, receive)
        if isinstance(state.payload, dict):
            outcome = self._resolve(state.payload, from_json_text=False)
            if isinstance(outcome, bytes):
                await reply(send, outcome)
                return
            if outcome is not None:  # the layers after this one (and the router) see the document
                receive = state.replace_body(json.dumps(outcome).encode(), outcome)
        await self.app(scope, receive, send)

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
