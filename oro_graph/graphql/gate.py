"""The gate in front of /graphql: documents over a limit are refused before the cache or Strawberry.

Refusing used to cost what parsing costs (graphql-core's parser is pure Python, about 10 µs a
token here) plus Strawberry's request handling and extensions: 1-3 ms for a small document,
21 ms for 200 aliases, 55 ms for 5,000 tokens (the budget then). For JSON POSTs and GETs (not
multipart uploads, which are signed and go the schema's way), the gate answers for each
operation, cheapest first:

1. the document's length (``ORO_GRAPHQL_MAX_DOCUMENT_CHARS``);
2. lower bounds of its tokens, aliases and depth, counted without parsing (``lexical.bounds``);
3. the parsed document (parsed once: the cache and the schema reuse the parse) under the same
   limit rules the schema runs (``limits.limit_errors``), with its variables.

A request is refused only when every one of its operations is, with the answer the schema would
give (HTTP 200, ``data: null``, errors with their code). Anything else passes on untouched, and
the schema's ``Limits`` extension still guards every other way in (websockets, multipart).
Small requests that pass are remembered by a digest of their bytes, so a repeated query (a
cached leaderboard read) skips the rules.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl

from graphql import GraphQLError, GraphQLSchema
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.graphql import limits
from oro_graph.graphql.apq import decoded, read_body, replay, reply

ADMITTED_ENTRIES = 4_096
REMEMBERED_BYTES = 8_192


class LimitGate:
    """ASGI middleware for /graphql."""

    def __init__(self, app: ASGIApp, schema: GraphQLSchema, *, debug: bool, path: str = "/graphql") -> None:
        self.app = app
        self.schema = schema
        self.debug = debug  # then refusals report, as the schema's do, that no SQL ran
        self.path = path
        self._admitted: OrderedDict[bytes, None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if scope["method"] == "GET":
            raw = scope.get("query_string", b"")
            params = dict(parse_qsl(raw.decode(errors="replace")))
            payload: Any = {k: params.get(k) for k in ("query", "variables", "operationName")}
            if isinstance(payload["variables"], str):
                payload["variables"] = _json(payload["variables"])
        elif b"json" in headers.get(b"content-type", b""):
            raw = await read_body(receive)
            receive = replay(raw, then=receive)
            payload = decoded(scope, raw)
        else:
            await self.app(scope, receive, send)
            return
        # Only small requests are remembered: hashing a large body would cost more than judging it again.
        digest = hashlib.blake2b(raw, digest_size=16).digest() if len(raw) <= REMEMBERED_BYTES else None
        if digest is not None and digest in self._admitted:
            self._admitted.move_to_end(digest)
            await self.app(scope, receive, send)
            return
        answers = self._refusals(payload)
        if answers is not None:
            await reply(send, json.dumps(answers if isinstance(payload, list) else answers[0]).encode())
            return
        if digest is not None:
            self._admitted[digest] = None
            if len(self._admitted) > ADMITTED_ENTRIES:
                self._admitted.popitem(last=False)
        await self.app(scope, receive, send)

    def _refusals(self, payload: Any) -> list[dict[str, Any]] | None:
        """One refusal per operation; None when any may run, or the body is not the gate's to judge."""
        operations = payload if isinstance(payload, list) else [payload]
        if not operations or len(operations) > limits.LIMITS.max_batch:
            return None  # Strawberry answers an empty or oversized batch
        answers = []
        for operation in operations:
            if not isinstance(operation, dict):
                return None
            query, variables, name = (
                operation.get("query"),
                operation.get("variables"),
                operation.get("operationName"),
            )
            if not (
                isinstance(query, str) and isinstance(variables, dict | None) and isinstance(name, str | None)
            ):
                return None
            answer = self._refusal(query, variables, name)
            if answer is None:
                return None
            answers.append(answer)
        return answers

    def _refusal(
        self, query: str, variables: dict[str, Any] | None, name: str | None
    ) -> dict[str, Any] | None:
        extensions: dict[str, Any] = {"sql": {"statements": 0, "ms": 0.0}} if self.debug else {}
        message = limits.lexical_refusal(query)
        if message is not None:
            return _answer([GraphQLError(message)], extensions)
        try:
            document = limits.parse_document(query, limits.LIMITS.max_tokens)
        except GraphQLError as error:
            return _answer([error], extensions)
        errors, cost = limits.limit_errors(self.schema, document, variables, name)
        if not errors:
            return None
        if cost is not None:
            extensions["cost"] = {"requested": cost.total, "budget": limits.LIMITS.max_cost}
        return _answer(errors, extensions)


def _answer(errors: list[GraphQLError], extensions: dict[str, Any]) -> dict[str, Any]:
    shaped = []
    for error in errors:
        formatted = error.formatted
        formatted["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED", **(error.extensions or {})}
        shaped.append(formatted)
    answer: dict[str, Any] = {"data": None, "errors": shaped}
    if extensions:
        answer["extensions"] = extensions
    return answer


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # not an object: the gate leaves it to Strawberry
