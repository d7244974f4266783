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

A request is refused when every one of its operations is, with the answer the schema would
give (HTTP 200, ``data: null``, errors with their code), and a batch also when its operations
together are over the cost or field budget (the budgets hold per HTTP request, not per
operation: ten operations each just under the budget used to run for seconds). Anything else
passes on untouched, and the schema's ``Limits`` extension still guards every other way in
(websockets, multipart).

A request that passes gets one deadline, ``ORO_GRAPHQL_TIME_BUDGET_SECONDS`` from now, for all of
its operations (``oro_graph.graphql.deadline``).

A request that passes is then charged its points to the client's budget (``oro_graph.ratelimit``:
the rate-limit middleware has charged one already), by its static cost, summed over a batch; over
the budget it is a 429 in the GraphQL shape, before anything runs. Small requests that pass are
remembered by a digest of their bytes with their cost, so a repeated query (a cached leaderboard
read) skips the rules but not the charge; small requests refused are remembered with their answer,
so a flood of one abusive document costs a hash per request.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from graphql import GraphQLError, GraphQLSchema
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.graphql import limits
from oro_graph.graphql.apq import decoded, read_body, replay, reply
from oro_graph.graphql.cost import Cost
from oro_graph.graphql.deadline import REQUEST_DEADLINE, Deadline
from oro_graph.ratelimit import STATE_KEY, RateLimits, RateState, graphql_refusal

ADMITTED_ENTRIES = 4_096
COST_KEY = "oro.graphql_cost"  # the static cost of an admitted request, in its scope (for the metrics)
REMEMBERED_BYTES = 8_192


class LimitGate:
    """ASGI middleware for /graphql."""

    def __init__(
        self,
        app: ASGIApp,
        schema: GraphQLSchema,
        *,
        debug: bool,
        rate_limits: RateLimits | None = None,
        time_budget: float | None = None,
        path: str = "/graphql",
    ) -> None:
        self.app = app
        self.schema = schema
        self.debug = debug  # then refusals report, as the schema's do, that no SQL ran
        self.rate_limits = rate_limits
        self.time_budget = time_budget
        self.path = path
        self._admitted: OrderedDict[bytes, int] = OrderedDict()  # digest -> static cost
        self._refused: OrderedDict[bytes, bytes] = OrderedDict()  # digest -> the answer

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
        refused = self._refused.get(digest) if digest is not None else None
        if refused is not None:  # the same abusive body again (a flood): the same answer, unjudged
            self._refused.move_to_end(digest)  # type: ignore[arg-type]
            await reply(send, refused)
            return
        cost = self._admitted.get(digest) if digest is not None else None
        if cost is not None:
            self._admitted.move_to_end(digest)  # type: ignore[arg-type]
        else:
            answers, cost = self._refusals(payload)
            if answers is not None:
                answer = json.dumps(answers if isinstance(payload, list) else answers[0]).encode()
                if digest is not None:
                    _remember(self._refused, digest, answer)
                await reply(send, answer)
                return
            if digest is not None:
                _remember(self._admitted, digest, cost)
        if not await self._charged(scope, send, cost):
            return
        scope[COST_KEY] = cost
        if self.time_budget is None:
            await self.app(scope, receive, send)
            return
        # One deadline for the whole request, a batch's operations included (graphql/deadline.py).
        token = REQUEST_DEADLINE.set(Deadline.starting_now(self.time_budget))
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_DEADLINE.reset(token)

    async def _charged(self, scope: Scope, send: Send, cost: int) -> bool:
        """Charge the points of ``cost`` beyond the one the rate-limit middleware charged; False once
        refused (the 429 is sent)."""
        state: RateState | None = scope.get(STATE_KEY)
        if self.rate_limits is None or state is None:
            return True
        points = self.rate_limits.points(cost)
        first = state.charge
        if points <= 1 or first is None:
            return True
        charge = await self.rate_limits.charge_client(state.client, points - 1)
        if charge is None:
            return True
        state.charge = replace(charge, cost=points)
        if charge.allowed:
            return True
        status, headers, body = graphql_refusal(state, state.charge)
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return False

    def _refusals(self, payload: Any) -> tuple[list[dict[str, Any]] | None, int]:
        """(one refusal per operation, or None when the request may run or is not the gate's to judge;
        the static cost of what would run, summed over a batch)."""
        operations = payload if isinstance(payload, list) else [payload]
        if not operations or len(operations) > limits.LIMITS.max_batch:
            return None, 0  # Strawberry answers an empty or oversized batch
        answers: list[dict[str, Any] | None] = []
        total_cost = total_fields = 0
        for operation in operations:
            if not isinstance(operation, dict):
                return None, 0
            query, variables, name = (
                operation.get("query"),
                operation.get("variables"),
                operation.get("operationName"),
            )
            if not (
                isinstance(query, str) and isinstance(variables, dict | None) and isinstance(name, str | None)
            ):
                return None, 0
            answer, cost = self._refusal(query, variables, name)
            answers.append(answer)
            if answer is None and cost is not None:
                total_cost += cost.total
                total_fields += cost.fields
        if all(answer is not None for answer in answers):
            return answers, 0  # type: ignore[return-value]
        budget = limits.LIMITS
        if len(operations) > 1 and (total_cost > budget.max_cost or total_fields > budget.max_fields):
            error = GraphQLError(
                f"the {len(operations)} operations of this batch cost {total_cost} and select {total_fields} "
                f"fields together; a request may cost at most {budget.max_cost} and select at most "
                f"{budget.max_fields} fields, however many operations it holds: send fewer or smaller "
                "operations per request",
                extensions={"code": "QUERY_TOO_COSTLY", "cost": total_cost, "budget": budget.max_cost},
            )
            extensions: dict[str, Any] = {"sql": {"statements": 0, "ms": 0.0}} if self.debug else {}
            extensions["cost"] = {"requested": total_cost, "budget": budget.max_cost}
            return [answer or _answer([error], extensions) for answer in answers], 0
        return None, total_cost

    def _refusal(
        self, query: str, variables: dict[str, Any] | None, name: str | None
    ) -> tuple[dict[str, Any] | None, Cost | None]:
        extensions: dict[str, Any] = {"sql": {"statements": 0, "ms": 0.0}} if self.debug else {}
        message = limits.lexical_refusal(query)
        if message is not None:
            return _answer([GraphQLError(message)], extensions), None
        try:
            document = limits.parse_document(query, limits.LIMITS.max_tokens, remember=False)
        except GraphQLError as error:
            return _answer([error], extensions), None
        errors, cost = limits.limit_errors(self.schema, document, variables, name)
        if not errors:  # the cache and the schema will want it; a refused document is let go
            limits.remember_document(query, limits.LIMITS.max_tokens, document)
            return None, cost
        if cost is not None:
            extensions["cost"] = {"requested": cost.total, "budget": limits.LIMITS.max_cost}
        return _answer(errors, extensions), cost


def _remember(memo: OrderedDict[bytes, Any], digest: bytes, value: Any) -> None:
    memo[digest] = value
    if len(memo) > ADMITTED_ENTRIES:
        memo.popitem(last=False)


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
