"""The gate in front of /graphql: documents over a limit are refused before the cache or Strawberry.

Refusing used to cost what parsing costs (graphql-core's parser is pure Python, about 10 µs a
token here) plus Strawberry's request handling and extensions: 1-3 ms for a small document,
21 ms for 200 aliases, 55 ms for 5,000 tokens (the budget then). For JSON POSTs and GETs (not
multipart uploads, which are signed and go the schema's way), the gate answers for each
operation, cheapest first:

1. the document's length (``ORO_GRAPHQL_MAX_DOCUMENT_CHARS``);
2. lower bounds of its tokens, aliases and depth, counted without parsing (``lexical.bounds``);
3. the parsed document under the limit rules (``limits.limit_errors``), with its variables.

What it admits it leaves in the request's state (``EdgeRequest.admitted``: each operation's parsed
document and cost), and the schema's ``Limits`` extension takes that verdict as it is: the rules
run once per operation.

A request is refused when every one of its operations is, with the answer the schema would
give (HTTP 200, ``data: null``, errors with their code), and a batch also when its operations
together are over the cost or field budget (the budgets hold per HTTP request, not per
operation: ten operations each just under the budget used to run for seconds). Anything else
passes on untouched, and the schema's ``Limits`` extension judges what the gate did not admit
(websockets, multipart, an operation refused in a batch that runs).

A request that passes gets one deadline, ``ORO_GRAPHQL_TIME_BUDGET_SECONDS`` from now, for all of
its operations (``oro_graph.edge.deadline``).

A request that passes is then charged its points to the client's budget (``oro_graph.edge.ratelimit``:
the rate-limit middleware has charged one already, or all of them for a request admitted before:
``Verdicts``), by its static cost, summed over a batch; over
the budget it is a 429 in the GraphQL shape, before anything runs. Small requests that pass are
remembered by a digest of their bytes with their verdict, so a repeated query (a cached
leaderboard read) skips the rules but not the charge; small requests refused are remembered with
their answer, so a flood of one abusive document costs a hash per request.

An admitted operation whose document is small (``limits.CACHED_DOCUMENT_CHARS``) and holds no string
literal is remembered by its canonical form (``lexical.canonical``) with its variables and operation
name instead (``memo_key``): a copy that differs by a comment or its layout (a client's build stamp,
every request of the uncached benchmark) has the same tokens, so the same verdict, and is neither
lexed, parsed nor costed again. Without a ``"`` the canonical form cannot mistake a string for
tokens, so a copy that would not lex has another form; refusals, whose errors carry locations, stay
keyed by the bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.edge import limits
from oro_graph.edge.cost import Cost
from oro_graph.edge.deadline import REQUEST_DEADLINE, Deadline
from oro_graph.edge.lexical import canonical
from oro_graph.edge.ratelimit import RateLimits, graphql_refusal
from oro_graph.edge.request import Admission, EdgeRequest, is_json, read_body, reply
from oro_graph.settings import GraphQLLimits

ADMITTED_ENTRIES = 4_096
REMEMBERED_BYTES = 8_192


@dataclass(frozen=True)
class Verdict:
    """What the gate decided on a request: refused (the answer), or admitted (each operation's verdict)."""

    answer: bytes | None = None
    costs: tuple[Cost | None, ...] = ()  # per operation: its cost if admitted, None if refused
    cost: int = 0  # the static cost of what runs, summed over a batch


PASS = Verdict()  # not the gate's to judge: Strawberry answers (an empty or oversized batch, a bad shape)


class Verdicts:
    """What the gate remembers of small requests it judged, by a digest of their bytes: the admitted
    apart from the refused, so a flood of fresh refused documents does not push out the admitted.

    The rate limit asks ``cost_of`` before it charges, so a request the gate admitted before (a
    poll, a cached leaderboard) is charged all its points at once: one round trip to the counters
    instead of one point there and the rest here. A request the gate has not admitted yet is still
    charged one point before anything reads or parses it, and the rest once judged."""

    def __init__(self, path: str = "/graphql") -> None:
        self.path = path
        self.admitted: OrderedDict[bytes, Verdict] = OrderedDict()
        self.refused: OrderedDict[bytes, Verdict] = OrderedDict()

    async def cost_of(self, scope: Scope, receive: Receive) -> tuple[int | None, Receive]:
        """The static cost of a request admitted before (None if unknown), and the ``receive`` to
        hand on (the body, if it was read here, is replayed: ``read_body``). Only a body declared
        small enough to be remembered is read."""
        if scope["path"] != self.path:
            return None, receive
        if scope["method"] == "GET":
            raw = scope.get("query_string", b"")
        elif scope["method"] == "POST" and is_json(scope):
            declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
            if not declared.isdigit() or int(declared) > REMEMBERED_BYTES:
                return None, receive
            state, receive = await read_body(scope, receive)
            raw = state.body or b""
        else:
            return None, receive
        if len(raw) > REMEMBERED_BYTES:
            return None, receive
        payload = state.payload if scope["method"] == "POST" else None
        verdict = self.admitted.get(_memo_of(EdgeRequest.of(scope), raw, payload)[0])
        if verdict is None or verdict.answer is not None:
            return None, receive
        return verdict.cost, receive


class LimitGate:
    """ASGI middleware for /graphql."""

    def __init__(
        self,
        app: ASGIApp,
        schema: GraphQLSchema,
        *,
        limits: GraphQLLimits,
        debug: bool,
        rate_limits: RateLimits | None = None,
        time_budget: float | None = None,
        path: str = "/graphql",
        verdicts: Verdicts | None = None,
    ) -> None:
        self.app = app
        self.schema = schema
        self.limits = limits
        self.debug = debug  # then refusals report, as the schema's do, that no SQL ran
        self.rate_limits = rate_limits
        self.time_budget = time_budget
        self.path = path
        memo = verdicts or Verdicts(path)
        self._admitted, self._refused = memo.admitted, memo.refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            state = EdgeRequest.of(scope)
            raw = scope.get("query_string", b"")
            params = dict(parse_qsl(raw.decode(errors="replace")))
            payload: Any = {k: params.get(k) for k in ("query", "variables", "operationName")}
            if isinstance(payload["variables"], str):
                payload["variables"] = _json(payload["variables"])
        elif is_json(scope):
            state, receive = await read_body(scope, receive)
            raw, payload = state.body or b"", state.payload
        else:
            await self.app(scope, receive, send)
            return
        # Only small requests are remembered: hashing a large body would cost more than judging it again.
        small = len(raw) <= REMEMBERED_BYTES
        digest = hashlib.blake2b(raw, digest_size=16).digest() if small else None
        admitted, form = (
            _memo_of(state, raw, payload if scope["method"] == "POST" else None) if small else (None, None)
        )
        verdict = _recalled(self._refused, digest) or _recalled(self._admitted, admitted)
        documents: list[DocumentNode | None] = []
        if verdict is None:
            verdict, documents = self._judge(payload)
            if verdict.answer is None and admitted is not None:
                _remember(self._admitted, admitted, verdict)
            elif verdict.answer is not None and digest is not None:
                _remember(self._refused, digest, verdict)
        if verdict.answer is not None:
            await reply(send, verdict.answer)
            return
        if not await self._charged(state, send, verdict.cost):
            return
        state.cost = verdict.cost
        state.admitted = _admitted(payload, verdict.costs, documents, form)
        if self.time_budget is None:
            await self.app(scope, receive, send)
            return
        # One deadline for the whole request, a batch's operations included (edge/deadline.py).
        token = REQUEST_DEADLINE.set(Deadline.starting_now(self.time_budget))
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_DEADLINE.reset(token)

    async def _charged(self, state: EdgeRequest, send: Send, cost: int) -> bool:
        """Charge the points of ``cost`` beyond the one the rate-limit middleware charged; False once
        refused (the 429 is sent)."""
        rate = state.rate
        if self.rate_limits is None or rate is None:
            return True
        points = self.rate_limits.points(cost)
        first = rate.charge
        if points <= rate.points or first is None:  # the rate limit charged them all (Verdicts)
            return True
        charge = await self.rate_limits.charge_client(rate.client, points - rate.points)
        if charge is None:
            return True
        rate.charge = replace(charge, cost=points)
        if charge.allowed:
            return True
        status, headers, body = graphql_refusal(rate, rate.charge)
        await reply(send, body, status, headers)
        return False

    def _judge(self, payload: Any) -> tuple[Verdict, list[DocumentNode | None]]:
        """Refused (one refusal per operation), admitted, or not the gate's to judge (``PASS``); and
        the documents it parsed, for this request only (``parse_document`` keeps the small ones)."""
        operations = payload if isinstance(payload, list) else [payload]
        if not operations or len(operations) > self.limits.max_batch:
            return PASS, []  # Strawberry answers an empty or oversized batch
        answers: list[dict[str, Any] | None] = []
        costs: list[Cost | None] = []
        documents: list[DocumentNode | None] = []
        total_cost = total_fields = 0
        for operation in operations:
            if not isinstance(operation, dict):
                return PASS, []
            query, variables, name = (
                operation.get("query"),
                operation.get("variables"),
                operation.get("operationName"),
            )
            if not (
                isinstance(query, str) and isinstance(variables, dict | None) and isinstance(name, str | None)
            ):
                return PASS, []
            answer, document, cost = self._refusal(query, variables, name)
            answers.append(answer)
            documents.append(document)
            costs.append(cost if answer is None else None)
            if answer is None and cost is not None:
                total_cost += cost.total
                total_fields += cost.fields
        if all(answer is not None for answer in answers):
            return Verdict(answer=_encoded(answers, payload)), []
        budget = self.limits
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
            answers = [answer or _answer([error], extensions) for answer in answers]
            return Verdict(answer=_encoded(answers, payload)), []
        return Verdict(costs=tuple(costs), cost=total_cost), documents

    def _refusal(
        self, query: str, variables: dict[str, Any] | None, name: str | None
    ) -> tuple[dict[str, Any] | None, DocumentNode | None, Cost | None]:
        """(the refusal or None, the parsed document, its cost)."""
        extensions: dict[str, Any] = {"sql": {"statements": 0, "ms": 0.0}} if self.debug else {}
        message = limits.lexical_refusal(query, self.limits)
        if message is not None:
            return _answer([GraphQLError(message)], extensions), None, None
        try:
            document = limits.parse_document(query, self.limits.max_tokens, remember=False)
        except GraphQLError as error:
            return _answer([error], extensions), None, None
        errors, cost = limits.limit_errors(self.schema, document, variables, name, self.limits)
        if not errors:  # the cache and the schema will want it; a refused document is let go
            limits.remember_document(query, self.limits.max_tokens, document)
            return None, document, cost
        if cost is not None:
            extensions["cost"] = {"requested": cost.total, "budget": self.limits.max_cost}
        return _answer(errors, extensions), None, cost


def _recalled(memo: OrderedDict[bytes, Verdict], digest: bytes | None) -> Verdict | None:
    """The verdict on the same body before (a flood, a poll): the same verdict, unjudged."""
    verdict = memo.get(digest) if digest is not None else None
    if verdict is not None:
        memo.move_to_end(digest)  # type: ignore[arg-type]
    return verdict


def _remember(memo: OrderedDict[bytes, Verdict], digest: bytes, verdict: Verdict) -> None:
    memo[digest] = verdict
    if len(memo) > ADMITTED_ENTRIES:
        memo.popitem(last=False)


def memo_key(raw: bytes, payload: Any) -> tuple[bytes, str | None]:
    """What an admitted request is remembered by (module docstring), and its document's canonical
    form when that is what it is remembered by: a digest of the operation's canonical form,
    variables and name for one operation (a JSON POST) whose document is small and holds no string
    literal, else of its bytes."""
    query = payload.get("query") if isinstance(payload, dict) else None
    if not isinstance(query, str) or len(query) > limits.CACHED_DOCUMENT_CHARS or '"' in query:
        return hashlib.blake2b(raw, digest_size=16).digest(), None
    form = canonical(query)
    material = json.dumps([form, payload.get("variables"), payload.get("operationName")], sort_keys=True)
    return hashlib.blake2b(b"canonical\0" + material.encode(), digest_size=16).digest(), form


def _memo_of(state: EdgeRequest, raw: bytes, payload: Any) -> tuple[bytes, str | None]:
    """``memo_key`` of the request ``state`` belongs to, worked out once per request."""
    if state.memo is None:
        state.memo = memo_key(raw, payload)
    return state.memo


def _admitted(
    payload: Any,
    costs: tuple[Cost | None, ...],
    documents: list[DocumentNode | None],
    form: str | None,
) -> list[Admission]:
    """The verdict on each admitted operation, for the schema's ``Limits`` extension (and the
    canonical form of a single operation's document, when the gate has it)."""
    operations = payload if isinstance(payload, list) else [payload]
    documents = documents or [None] * len(costs)
    return [
        Admission(op["query"], op.get("operationName"), op.get("variables"), document, cost, form)
        for op, cost, document in zip(operations, costs, documents, strict=False)
        if cost is not None
    ]


def _encoded(answers: list[dict[str, Any] | None], payload: Any) -> bytes:
    return json.dumps(answers if isinstance(payload, list) else answers[0]).encode()


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
