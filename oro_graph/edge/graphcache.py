"""A response cache for read operations, keyed by document and variables.

An answer is kept under the versions of the tables its execution read (``oro_graph.edge.responsecache``),
so it is never served after a committed write to any of them, and writes elsewhere leave it
cached: hot reads (the leaderboard frontends poll) skip execution entirely. Only unsigned queries
without errors are stored; mutations, subscriptions, debug responses and signed requests always
run. Entries also expire after a TTL, which bounds staleness from writers the versions cannot see
(another process without Redis) and from fields that depend on the clock.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl

from graphql import DocumentNode, GraphQLSyntaxError, OperationDefinitionNode, OperationType
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.dataversion import DataVersion
from oro_graph.edge import limits
from oro_graph.edge.request import Admission, EdgeRequest, is_json, read_body
from oro_graph.edge.responsecache import MAX_ENTRIES, ResponseCache
from oro_graph.observability import record_operation

MAX_DOCUMENT = 100_000


class QueryCache(ResponseCache):
    """The graph's cache: it also remembers which documents are cacheable queries."""

    def __init__(self, version: DataVersion, *, ttl: float, max_tokens: int) -> None:
        super().__init__(version, ttl=ttl, name="graphql")
        self.max_tokens = max_tokens
        # (document hash, operationName) -> (is a cacheable query, the operation's name)
        self._kinds: OrderedDict[tuple[str, str | None], tuple[bool, str | None]] = OrderedDict()

    def is_query(self, document: str, operation: str | None, admitted: Admission | None = None) -> bool:
        return self._kind(document, operation, admitted)[0]

    def operation_name(
        self, document: str, operation: str | None, admitted: Admission | None = None
    ) -> str | None:
        """The name the operation is counted under (as Strawberry names an executed one)."""
        return self._kind(document, operation, admitted)[1]

    def _kind(
        self, document: str, operation: str | None, admitted: Admission | None
    ) -> tuple[bool, str | None]:
        """Known by the document's canonical form when the gate made it (a copy by comment has the
        same tokens: the same kind), else by its text; judged on the gate's parse when it has one."""
        form = admitted.canonical if admitted is not None else None
        key = ("canonical:" + form if form is not None else _digest(document), operation)
        known = self._kinds.get(key)
        if known is None:
            parsed = admitted.document if admitted is not None else None
            known = _kind(document, operation, self.max_tokens, parsed)
            self._kinds[key] = known
            if len(self._kinds) > MAX_ENTRIES:
                self._kinds.popitem(last=False)
        return known


def _digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def _kind(
    document: str, operation: str | None, max_tokens: int, parsed: DocumentNode | None = None
) -> tuple[bool, str | None]:
    if len(document) > MAX_DOCUMENT or "rateLimit" in document:  # the caller's own budget is never shared
        return False, operation
    try:
        # At most the graph's token budget: a longer document is refused anyway, and parsing 50,000
        # tokens here took seconds per request before the schema's own limit saw it.
        parsed = parsed or limits.parse_document(document, max_tokens)
    except GraphQLSyntaxError:
        return False, operation
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation is None or (o.name and o.name.value == operation)]
    if len(chosen) != 1:
        return False, operation
    name = chosen[0].name.value if chosen[0].name else None
    return chosen[0].operation == OperationType.QUERY, name


def _key(payload: dict[str, Any]) -> str:
    material = json.dumps(
        [payload.get("query"), payload.get("variables") or {}, payload.get("operationName")],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


class CachedResponses:
    """ASGI middleware for /graphql."""

    def __init__(self, app: ASGIApp, cache: QueryCache, path: str = "/graphql") -> None:
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
        else:
            if not is_json(scope):
                await self.app(scope, receive, send)
                return
            state, receive = await read_body(scope, receive)
            payload = state.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            await self.app(scope, receive, send)
            return
        query, operation = payload["query"], payload.get("operationName")
        edge = EdgeRequest.get(scope)
        admitted = edge.admission(query, operation, payload.get("variables")) if edge is not None else None
        if not self.cache.is_query(query, operation, admitted):
            await self.app(scope, receive, send)
            return
        key = _key(payload)
        name = self.cache.operation_name(query, operation, admitted)

        def counted() -> None:  # an answer from the cache is an operation answered, without executing
            state = EdgeRequest.get(scope)
            record_operation(name, "query", "cached", state.cost if state is not None else None)

        await self.cache.answer(
            self.app, scope, receive, send, key, lambda answer: b'"errors"' not in answer, counted
        )
