"""Generated subscriptions against a live server over PostgreSQL, over graphql-transport-ws and SSE.

hypothesis-graphql draws queries only, so documents are drawn from a schema whose query root is
the server's Subscription type and turned into subscriptions: valid ones with ids and cursors
aimed at the seeded world, hypothesis-graphql's negative documents (one schema violation each),
and hand-made breakages (two root fields, an unknown field, a syntax error, a variable of the
wrong type). Each Hypothesis example subscribes a batch on one websocket and takes each
subscription's first answer, or gives up on it after a short wait (a board without a cursor only
streams future changes); a few go to POST /graphql/stream instead. Every answer is a GraphQL
result whose data matches the declared types and whose errors carry documented codes; the
socket is never closed on us and still answers a ping; the server logs no ERROR record.

ORO_FUZZ_EXAMPLES scales the batches like the other fuzzers (50 by default: 25 batches of 16, 400 documents).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import graphql
import httpx
import hypothesis_graphql
import pytest
import websockets
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql.strategies import Mode
from schemathesis.graphql import nodes

from benchmarks.refusals import StatementCounter
from oro_graph.graphql.schema import schema as server_schema
from oro_graph.services import events
from tests.hardening.conftest import ErrorLog
from tests.hardening.test_graphql_fuzz import DOCUMENTED_CODES, Conformance, _json_values, _known, _prepare
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded, seed

EXAMPLES = int(os.environ.get("ORO_FUZZ_EXAMPLES", "50"))
BATCHES = max(1, EXAMPLES // 2)
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]
BATCH = 16  # documents per websocket and example
SSE_PER_BATCH = 2  # of which sent over POST /graphql/stream instead
MAX_NEXT = 6  # results taken from one subscription (a finished run replays 5 events)
WAIT = 0.5  # seconds a subscription may take to answer before it is completed by us
SENT: Counter[str] = Counter()  # documents sent, by kind and transport
ANSWERS: Counter[str] = Counter()  # first answers, by what they were
CHECKED: Counter[str] = Counter()  # every message checked, by type

SCHEMA: GraphQLSchema = server_schema._schema
# The Subscription type as a query root, so hypothesis-graphql can draw its documents.
AS_QUERY = GraphQLSchema(
    query=SCHEMA.subscription_type,
    types=[t for t in SCHEMA.type_map.values() if t not in (SCHEMA.query_type, SCHEMA.mutation_type)],
)
CUSTOM_SCALARS = {
    "UUID": st.one_of(st.uuids().map(str), st.sampled_from(["", "nope", "0" * 32 + "0"])).map(nodes.String),
    "DateTime": st.sampled_from(
        ["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "2026-02-30"]
    ).map(nodes.String),
    "JSON": _json_values(),
}
JUNK_CURSORS = ["", "-1", "abc", "1e3", " 1", "²", "٣", "9" * 19, "9" * 20, "1" * 100, "0x10", "\x00"]


@dataclass
class Sent:
    """One subscription: the request payload, and the document to hold its data against (if valid)."""

    kind: str
    payload: dict[str, Any]
    document: DocumentNode | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)


def _as_subscription(document: DocumentNode, cursor: str | None) -> DocumentNode:
    """The drawn query as a subscription: no root ``__typename`` (a subscription selects one root field),
    and the root field's ``after`` set to ``cursor`` (or left out)."""
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    roots = []
    for root in operation.selection_set.selections:
        if isinstance(root, FieldNode) and root.name.value == "__typename":
            continue
        if isinstance(root, FieldNode):
            arguments = [a for a in root.arguments if a.name.value != "after"]
            if cursor is not None:
                arguments.append(ArgumentNode(name=NameNode(value="after"), value=nodes.String(cursor)))
            root = FieldNode(
                alias=root.alias,
                name=root.name,
                arguments=tuple(arguments),
                directives=root.directives,
                selection_set=root.selection_set,
            )
        roots.append(root)
    subscription = OperationDefinitionNode(
        operation=OperationType.SUBSCRIPTION,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=SelectionSetNode(selections=tuple(roots)),
    )
    return DocumentNode(
        definitions=tuple(subscription if d is operation else d for d in document.definitions)
    )


def _broken(valid: str, how: str, run_id: str) -> dict[str, Any]:
    """A valid subscription broken in one way the generator does not reach."""
    if how == "two root fields":
        return {
            "query": valid.rstrip().removesuffix("}") + ' leaderboardChanges(after: "0") { __typename } }'
        }
    if how == "a root __typename":
        return {"query": valid.replace("{", "{ __typename ", 1)}
    if how == "an unknown field":
        return {"query": valid.replace("__typename", "__typename nope", 1)}
    if how == "a syntax error":
        return {"query": valid[: len(valid) // 2]}
    if how == "sent as a query":
        return {"query": valid.replace("subscription", "query", 1)}
    if how == "an unknown operation name":
        return {"query": valid, "operationName": "Missing"}
    document = (
        "subscription ($id: UUID!, $after: String) { runProgress(runId: $id, after: $after) { __typename } }"
    )
    if how == "a variable of the wrong type":
        return {"query": document, "variables": {"id": 5, "after": ["0"]}}
    return {"query": document, "variables": {"id": run_id, "after": {"cursor": 1}}}  # an object for a String


CLOSING = {"a syntax error", "an unknown operation name"}
BREAKAGES = [
    "two root fields",
    "a root __typename",
    "an unknown field",
    "a syntax error",
    "sent as a query",
    "an unknown operation name",
    "a variable of the wrong type",
    "an object for a string variable",
]


def _documents(
    known: dict[str, list[graphql.ValueNode]], cursors: list[str], run_id: str
) -> st.SearchStrategy[Sent]:
    def draw_valid(root: str) -> st.SearchStrategy[tuple[DocumentNode, str | None]]:
        queries = hypothesis_graphql.queries(
            AS_QUERY, fields=[root], custom_scalars=CUSTOM_SCALARS, print_ast=lambda d: d
        )
        cursor = st.one_of(
            st.none(), st.sampled_from(cursors), st.sampled_from(JUNK_CURSORS), st.text(max_size=12)
        )
        return st.tuples(queries, cursor)

    def valid(pair: tuple[DocumentNode, str | None], kind: str) -> Sent:
        document = _as_subscription(_prepare(graphql.print_ast(pair[0]), AS_QUERY, known), pair[1])
        return Sent(kind, {"query": graphql.print_ast(document)}, document)

    negative = hypothesis_graphql.queries(
        AS_QUERY, custom_scalars=CUSTOM_SCALARS, print_ast=lambda d: d, mode=Mode.NEGATIVE
    ).map(lambda d: Sent("negative", {"query": graphql.print_ast(_as_subscription(d, None))}))
    broken = st.tuples(draw_valid("runProgress"), st.sampled_from(BREAKAGES)).map(
        lambda pair: Sent(pair[1], _broken(valid(pair[0], "").payload["query"], pair[1], run_id))
    )
    return st.one_of(
        draw_valid("runProgress").map(lambda p: valid(p, "runProgress")),
        draw_valid("leaderboardChanges").map(lambda p: valid(p, "leaderboardChanges")),
        draw_valid("raceChanges").map(lambda p: valid(p, "raceChanges")),
        negative,
        broken,
    )


# --- the answers ----------------------------------------------------------------------------------


def _check_errors(errors: Any, sent: Sent) -> None:
    assert isinstance(errors, list) and errors, (sent.payload, errors)
    for error in errors:
        assert isinstance(error, dict) and isinstance(error.get("message"), str), (sent.payload, error)
        code = (error.get("extensions") or {}).get("code")
        assert code in DOCUMENTED_CODES, (sent.payload, error)


def _check(message: dict[str, Any], sent: Sent) -> None:
    """A ``next`` payload is a GraphQL result whose data conforms; an ``error`` is a list of errors."""
    CHECKED[message["type"]] += 1
    if message["type"] == "error":
        _check_errors(message.get("payload"), sent)
        return
    assert message["type"] == "next", (sent.payload, message)
    result = message.get("payload")
    assert isinstance(result, dict) and set(result) <= {"data", "errors", "extensions"}, (
        sent.payload,
        result,
    )
    assert "data" in result or "errors" in result, (sent.payload, result)
    if "errors" in result:
        _check_errors(result["errors"], sent)
    if result.get("data") is not None:
        assert sent.document is not None, (sent.payload, "a broken document ran", result)
        problems = Conformance(SCHEMA, sent.document).check(result["data"])
        assert problems == [], (sent.payload, problems)


async def _over_websocket(url: str, batch: list[Sent]) -> None:
    """Subscribe the batch on one connection and check every message until each subscription ended
    (``error``, ``complete``) or gave MAX_NEXT results (then we complete it), or WAIT passed (then
    we complete it too); then the connection must still answer a ping."""
    by_id = {str(i): sent for i, sent in enumerate(batch)}
    pending = dict(by_id)
    results: Counter[str] = Counter()

    async def receive(timeout: float) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] == "pong":
            return message
        key = message.get("id")
        sent = by_id.get(key)
        assert sent is not None, message
        if message["type"] != "complete":
            _check(message, sent)
        if key not in pending:
            return message
        if results[key] == 0:  # its first answer
            data = message["type"] == "next" and message["payload"].get("data") is not None
            ANSWERS["next with data" if data else message["type"]] += 1
        results[key] += 1
        if message["type"] != "next":
            del pending[key]
        elif results[key] == MAX_NEXT:
            del pending[key]
            await ws.send(json.dumps({"id": key, "type": "complete"}))
        return message

    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:  # type: ignore[list-item]
        try:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            for key, sent in by_id.items():
                await ws.send(json.dumps({"id": key, "type": "subscribe", "payload": sent.payload}))
                SENT[f"{sent.kind} over websocket"] += 1
            deadline = asyncio.get_running_loop().time() + WAIT
            while pending and (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    await receive(left)
                except TimeoutError:
                    break
            ANSWERS["still waiting"] += sum(1 for key in pending if results[key] == 0)
            for key in pending:
                await ws.send(json.dumps({"id": key, "type": "complete"}))
            pending.clear()
            await ws.send(json.dumps({"type": "ping"}))
            while (await receive(5))["type"] != "pong":
                pass  # answers still in flight are checked all the same
        except websockets.ConnectionClosed as closed:
            pytest.fail(f"the server closed the socket: {closed.rcvd}")


async def _closing_the_websocket(url: str, sent: Sent) -> None:
    """A document that does not parse, or names no operation in it, is a bad request: the protocol closes
    the socket with 4400 (never 4500 or 1011), so it goes on a socket of its own."""
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "0", "type": "subscribe", "payload": sent.payload}))
        SENT[f"{sent.kind} over websocket"] += 1
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4400 and closed.rcvd.reason, closed
            ANSWERS["closed with 4400"] += 1
            return
        assert message["type"] == "error", (sent.payload, message)
        _check(message, sent)
        ANSWERS["error"] += 1


async def _over_sse(http: httpx.AsyncClient, sent: Sent) -> None:
    """POST /graphql/stream and read only its first event (or give up after WAIT)."""
    SENT[f"{sent.kind} over SSE"] += 1
    async with http.stream("POST", "/graphql/stream", json=sent.payload) as response:
        assert response.status_code < 500, (sent.payload, response.status_code)
        if response.status_code != 200:
            body = json.loads(await response.aread())
            _check_errors(body.get("errors"), sent)
            ANSWERS["SSE refused"] += 1
            return
        assert response.headers["content-type"].startswith("text/event-stream")

        async def first_event() -> tuple[str, str]:
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    return kind, line[6:]
            return kind, ""

        try:
            kind, data = await asyncio.wait_for(first_event(), WAIT)
        except TimeoutError:
            ANSWERS["still waiting"] += 1
            return
    ANSWERS[f"SSE {kind}"] += 1
    if kind != "complete":
        _check({"type": "next", "payload": json.loads(data)}, sent)


@pytest.fixture
def live(serve: Callable[..., LiveServer]) -> tuple[LiveServer, Seeded, list[str]]:
    """A live server on the seeded world, and the cursors of its event log."""
    server = serve()
    world = seed(server.runtime)
    latest = server.runtime.db.call(events.latest_event_id)
    cursors = sorted({"0", "1", str(latest), str(max(latest - 2, 0)), str(latest + 1)})
    return server, world, cursors


@pytest.fixture
def endpoints(
    live: tuple[LiveServer, Seeded, list[str]],
) -> Iterator[tuple[LiveServer, Seeded, str, httpx.Client]]:
    """The live server, its world, its websocket URL and an HTTP client (for SSE)."""
    server, world, _ = live
    with server.http() as http:
        yield server, world, server.base_url.replace("http://", "ws://") + "/graphql", http


def test_every_subscription_survives_generated_documents(
    live: tuple[LiveServer, Seeded, list[str]], error_log: ErrorLog
) -> None:
    server, world, cursors = live
    documents = _documents(_known(world), cursors, str(world.beta_run))
    ws_url = server.base_url.replace("http://", "ws://") + "/graphql"

    async def one_batch(batch: list[Sent]) -> None:
        over_sse, rest = batch[:SSE_PER_BATCH], batch[SSE_PER_BATCH:]
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            await asyncio.gather(
                _over_websocket(ws_url, [sent for sent in rest if sent.kind not in CLOSING]),
                *(_closing_the_websocket(ws_url, sent) for sent in rest if sent.kind in CLOSING),
                *(_over_sse(http, sent) for sent in over_sse),
            )

    @given(batch=st.lists(documents, min_size=BATCH, max_size=BATCH))
    @settings(
        max_examples=BATCHES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[
            Phase.explicit,
            Phase.generate,
        ],  # no shrinking: an example takes WAIT, a failure names its document
    )
    def run(batch: list[Sent]) -> None:
        logged = len(error_log.records)
        asyncio.run(one_batch(batch))
        assert error_log.messages()[logged:] == [], [s.payload for s in batch]

    run()
    print(f"\nsubscriptions sent: {dict(SENT)}; first answers: {dict(ANSWERS)}; checked: {dict(CHECKED)}")


# Hand-written: documents over a limit, and every breakage, on both transports -----------------------

DEEP = (  # 20 fields deep (the limit is 15)
    'subscription { leaderboardChanges(after: "0") { ... on LeaderboardEntered { agentVersion { '
    + "agent { versions(first: 1) { edges { node { " * 4
    + "agent { id }"
    + " } } } }" * 4
    + " } } } }"
)
ALIASES = (  # 200 aliases (the limit is 30)
    'subscription { leaderboardChanges(after: "0") { ... on LoggedEvent { '
    + " ".join(f"c{i}: cursor" for i in range(200))
    + " } } }"
)
WITHIN = 'subscription ($id: UUID!) { runProgress(runId: $id, after: "0") { __typename } }'


async def _first_over_websocket(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


def _first_over_sse(http: httpx.Client, payload: dict[str, Any]) -> dict[str, Any]:
    with http.stream("POST", "/graphql/stream", json=payload) as response:
        assert response.status_code == 200, response.read()
        data = next(line[6:] for line in response.iter_lines() if line.startswith("data: "))
    return {"type": "next", "payload": json.loads(data)}


def test_an_over_limit_subscription_is_refused_before_any_sql(
    endpoints: tuple[LiveServer, Seeded, str, httpx.Client], error_log: ErrorLog
) -> None:
    # given
    server, world, ws_url, http = endpoints
    for name, document in (("20 levels deep", DEEP), ("200 aliases", ALIASES)):
        for transport, first in (
            ("websocket", lambda p: asyncio.run(_first_over_websocket(ws_url, p))),
            ("SSE", lambda p: _first_over_sse(http, p)),
        ):
            # when
            with StatementCounter(server.runtime.db.engine) as sql:
                message = first({"query": document})

            # then an error naming the limit, and not one statement ran
            errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            assert message["type"] == ("error" if transport == "websocket" else "next"), (name, message)
            assert [e["extensions"]["code"] for e in errors] == ["GRAPHQL_VALIDATION_FAILED"], (
                name,
                errors,
            )
            assert "depth" in errors[0]["message"] or "aliases" in errors[0]["message"], (name, errors)
            assert sql.count == 0, f"{sql.count} SQL statements ran for {name} over {transport}"

    # and a subscription within the limits does run SQL (the counter counts)
    with StatementCounter(server.runtime.db.engine) as sql:
        message = asyncio.run(
            _first_over_websocket(ws_url, {"query": WITHIN, "variables": {"id": str(world.alpha_runs[0])}})
        )
    assert message["type"] == "next" and message["payload"]["data"]["runProgress"], message
    assert sql.count > 0
    assert error_log.messages() == []


def test_every_breakage_is_refused_on_both_transports(
    endpoints: tuple[LiveServer, Seeded, str, httpx.Client], error_log: ErrorLog
) -> None:
    # given a valid subscription broken in each way the generator may not reach
    _, world, ws_url, http = endpoints
    run = world.alpha_runs[0]
    valid = f'subscription {{ runProgress(runId: "{run}") {{ __typename ... on LoggedEvent {{ cursor }} }} }}'
    for how in BREAKAGES:
        sent = Sent(how, _broken(valid, how, str(world.beta_run)))

        # when / then: over the websocket an error, or a 4400 close for what the protocol calls
        # a bad request
        if how in CLOSING:
            asyncio.run(_closing_the_websocket(ws_url, sent))
        else:
            message = asyncio.run(_first_over_websocket(ws_url, sent.payload))
            assert message["type"] == "error", (how, message)
            _check(message, sent)
        # over SSE an answer of errors alone
        answer = _first_over_sse(http, sent.payload)
        assert answer["payload"]["data"] is None, (how, answer)
        _check(answer, sent)
    assert error_log.messages() == []
