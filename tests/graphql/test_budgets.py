"""The graph's budgets hold for introspection, for a whole HTTP request and for a client over time.

- Introspection is priced (types x fields x args), deepens and aliases like any selection: the
  documents tools send are admitted, a flood of aliased schema walks is refused before it runs.
- A batch's operations share one cost and field budget.
- Each request is charged points by its static cost to the client (the hotkey of a signed
  request, else the address), an answer from the cache as much as a computed one, and the graph's
  ``rateLimit`` and the ``X-RateLimit-*`` headers say what is left.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from graphql import get_introspection_query

from benchmarks.refusals import INTROSPECTION_FLOOD, WITHIN_BUDGET, StatementCounter
from oro_graph.edge.limits import lexical_refusal, limit_errors, parse_document
from oro_graph.graphql.schema import schema
from oro_graph.runtime import Runtime
from oro_graph.settings import DEFAULT_GRAPHQL_LIMITS as LIMITS
from tests.factories import make_eligible, make_world
from tests.graphql.conftest import _client, signed

OPTIONS = ("descriptions", "specified_by_url", "directive_is_repeatable", "schema_description")
OPTIONS += ("input_value_deprecation", "experimental_directive_deprecation", "one_of")


def introspection_documents() -> list[tuple[str, str]]:
    """graphql-core's introspection query with every combination of its options, at the type depths
    of graphql-js 15/16 (7, 8) and graphql-core 3.3 / graphql-js 17 (9, the default)."""
    documents = []
    for flags in itertools.product((False, True), repeat=len(OPTIONS)):
        for depth in (7, 8, 9):
            chosen = dict(zip(OPTIONS, flags, strict=True))
            name = ",".join(k for k, v in chosen.items() if v) + f" depth={depth}"
            documents.append((name, get_introspection_query(**chosen, type_depth=depth)))
    return documents


# What the bundled GraphiQL (3.8.3, graphql-js 16) sends when it opens: getIntrospectionQuery with
# inputValueDeprecation and schemaDescription, eight levels of ofType, named IntrospectionQuery.
GRAPHIQL = get_introspection_query(
    descriptions=True, schema_description=True, input_value_deprecation=True, type_depth=8
)


def test_every_introspection_document_tools_send_is_within_the_limits() -> None:
    for name, document in introspection_documents():
        assert lexical_refusal(document) is None, name
        errors, cost = limit_errors(schema._schema, parse_document(document, LIMITS.max_tokens), None, None)
        assert errors == [], (name, errors)
        # priced, not free: about the objects it returns (a few thousand here), within the budget
        assert cost is not None and 1_000 < cost.introspection == cost.total <= LIMITS.max_cost, name


@pytest.mark.parametrize(
    "document",
    [GRAPHIQL, get_introspection_query(*(True,) * 7), get_introspection_query(False)],
    ids=["graphiql", "every option", "no option"],
)
def test_introspection_documents_are_answered(client: TestClient, document: str) -> None:
    body = client.post("/graphql", json={"query": document, "operationName": "IntrospectionQuery"}).json()
    assert "errors" not in body, body["errors"]
    names = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "RateLimit", "__Schema"} <= names
    assert body["extensions"]["cost"]["requested"] > 1_000


def test_an_introspection_flood_is_refused_before_it_runs(client: TestClient) -> None:
    # when: 30 aliased schema walks, each within the budget alone
    response = client.post("/graphql", json={"query": INTROSPECTION_FLOOD})

    # then refused by its cost, with a word on what to change, and nothing of the schema answered
    body = response.json()
    assert response.status_code == 200 and body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY" and error["extensions"]["cost"] > LIMITS.max_cost
    assert "introspect the schema once" in error["message"]
    assert len(response.content) < 2_000  # executed, it answered megabytes


def test_introspection_counts_toward_depth_and_aliases(client: TestClient) -> None:
    deep = "{ __schema { types { fields { type " + "{ ofType " * 14 + "{ name }" + " }" * 14 + " } } } }"
    aliased = "{ " + " ".join(f'a{i}: __type(name: "Query") {{ name }}' for i in range(31)) + " }"
    for document, words in ((deep, "maximum operation depth of 15"), (aliased, "31 aliases found")):
        # through the gate (JSON POST), and through the schema's own extension (how websockets go)
        answers = [client.post("/graphql", json={"query": document}).json()]
        answers.append(
            {"errors": [{"message": e.message} for e in schema.execute_sync(document).errors or []]}
        )
        for body in answers:
            assert body.get("data") is None and words in body["errors"][0]["message"], body


def test_a_batch_shares_one_cost_budget(runtime: Runtime) -> None:
    client = _client(runtime, rate_limit_per_minute=100_000)
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "alpha", [0.5, 0.7])
    batch = [{"query": WITHIN_BUDGET}] * 2  # 24,201 each: alone each runs

    with StatementCounter(runtime.db.engine) as sql:
        answers = client.post("/graphql", json=batch).json()

    assert sql.count == 0
    for answer in answers:
        assert answer["data"] is None
        [error] = answer["errors"]
        assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 48_402, "budget": LIMITS.max_cost}
        assert "2 operations of this batch cost 48402" in error["message"]
    # alone, and in a batch whose sum is within the budget, they run
    assert "errors" not in client.post("/graphql", json=batch[0]).json()
    small = [{"query": "{ currentSuite { suiteId } }"}] * 10
    assert all("errors" not in a for a in client.post("/graphql", json=small).json())


RATE = "{ rateLimit { limit cost remaining resetAt } }"
COSTLY_READ = "{ evaluationRuns(first: 100) { edges { node { problemResults(first: 10) { totalCount } } } } }"


def _post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/graphql", json=body, headers=headers)


def test_points_grow_with_the_cost_and_a_cached_answer_costs_the_same(runtime: Runtime) -> None:
    # given 60 points a minute, 25 of cost a point
    client = _client(runtime, rate_limit_per_minute=60, graphql_cost_per_point=25)
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "alpha", [0.5, 0.7])

    # a small read costs one point, and says so
    first = _post(client, {"query": RATE})
    assert first.json()["data"]["rateLimit"] | {"resetAt": None} == {
        "limit": 60,
        "cost": 1,
        "remaining": 59,
        "resetAt": None,
    }
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("60", "59")

    # a read of cost 301 costs 13 points, computed or answered from the cache
    costly = [_post(client, {"query": COSTLY_READ}) for _ in range(2)]
    assert [r.json()["extensions"]["cost"]["requested"] for r in costly] == [301, 301]
    assert [r.headers.get("x-cache") for r in costly] == ["miss", "hit"]
    assert [r.headers["X-RateLimit-Remaining"] for r in costly] == ["46", "33"]
    # a batch is charged by the sum of its operations: 301 + 301 + 1 is 25 points
    batch = _post(client, [{"query": COSTLY_READ}, {"query": COSTLY_READ}, {"query": RATE}])
    assert batch.headers["X-RateLimit-Remaining"] == "8"
    assert batch.json()[2]["data"]["rateLimit"] | {"resetAt": None} == {
        "limit": 60,
        "cost": 25,
        "remaining": 8,
        "resetAt": None,
    }

    # over the budget: a 429 in the GraphQL shape, before anything runs (the request's first point
    # is spent: judging it took the server's time)
    with StatementCounter(runtime.db.engine) as sql:
        refused = _post(client, {"query": COSTLY_READ})
    assert sql.count == 0 and refused.status_code == 429
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED" and error["extensions"]["cost"] == 13
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and refused.headers["X-RateLimit-Remaining"] == "7"
    # what is left still buys small reads
    assert _post(client, {"query": RATE}).json()["data"]["rateLimit"]["remaining"] == 6


def test_a_signed_request_is_charged_to_its_hotkey(runtime: Runtime) -> None:
    client = _client(runtime, rate_limit_per_minute=5)
    make_world(runtime)
    for _ in range(5):
        assert _post(client, {"query": RATE}).status_code == 200
    assert _post(client, {"query": RATE}).status_code == 429  # the address is spent

    # a fresh signature is its own client, whatever the address
    answer = _post(client, {"query": RATE}, headers=signed("Alice")).json()
    assert answer["data"]["rateLimit"]["remaining"] == 4
    # a stale or forged one is charged to the address
    forged = signed("Alice") | {"X-Signature": "0x" + "00" * 64}
    assert _post(client, {"query": RATE}, headers=forged).status_code == 429
    assert (
        _post(client, {"query": RATE}, headers=signed("Alice")).json()["data"]["rateLimit"]["remaining"] == 3
    )


def test_a_request_the_gate_admitted_before_is_charged_in_one_call(runtime: Runtime) -> None:
    """The rate limit prices a request the gate already admitted (a poll) and charges all its points
    at once: one call to the counters (one round trip to Redis) instead of two, the same budget."""
    client = _client(runtime, rate_limit_per_minute=60, graphql_cost_per_point=25)
    limits = client.app.state.runtime.rate_limits  # type: ignore[attr-defined]
    calls: list[int] = []
    charge = limits._charge

    def counted(item: Any, points: int, identifiers: Any, versions: Any = ()) -> Any:
        calls.append(points)
        return charge(item, points, identifiers, versions)

    limits._charge = counted  # type: ignore[method-assign]
    first = _post(client, {"query": COSTLY_READ})  # unknown: one point, then the rest once judged
    assert calls == [1, 12] and first.headers["X-RateLimit-Remaining"] == "47"
    calls.clear()
    again = _post(client, {"query": COSTLY_READ})
    assert calls == [13] and again.headers["X-RateLimit-Remaining"] == "34"
