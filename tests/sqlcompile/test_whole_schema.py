"""Every field of the schema answers the same bytes with the compiled path on and off, on both
databases (issue 13 item 2), from documents generated from the schema itself (``schemawalk``).

A field added to the schema is asked for by these documents without anyone listing it; the test
fails when a field reachable from the Query root was not answered (on an object that was there,
without an error) unless ``EXCLUDED`` says why it cannot be. Then the part of each document the
compiler accepts (found by asking the compiler, not its mapping) is run both ways too, and on
PostgreSQL must have been answered by the compiled statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from graphql import GraphQLObjectType, build_schema, get_named_type, parse

from oro_graph.graphql.schema import schema
from oro_graph.graphql.sqlcompile.compiler import compile_operation
from oro_graph.graphql.sqlcompile.mapping import Env
from oro_graph.models import utcnow
from tests.sqlcompile.conftest import Graph, built_world
from tests.sqlcompile.schemawalk import Key, Plan, Pool, Walker
from tests.sqlcompile.test_equality import first_difference

# One worker builds each database's world once for both tests.
pytestmark = pytest.mark.xdist_group("whole_schema")

# Fields no generated document can answer the same way twice, and why.
EXCLUDED: dict[Key, str] = {
    ("Query", "viewer"): "signed: the caller's own miner or validator (unsigned, UNAUTHENTICATED); "
    "signed answers are never compiled (executor.plan)",
    ("Query", "myInferenceAuth"): "signed, miners only (unsigned, UNAUTHENTICATED)",
    ("Query", "rateLimit"): "the caller's budget after this request: each request spends points, so "
    "two requests never answer the same",
    ("TopAgent", "computedAt"): "the instant of the request, different on every request",
}
# Required arguments the answers cannot supply: (type, field) -> argument -> literal.
GIVEN: dict[Key, dict[str, str]] = {
    ("Query", "dryRun"): {"query": json.dumps("{ leaderboard(first: 3) { edges { node { rank } } } }")},
}
# Ids found by a pass fill the required arguments of the next; the last expands again the types
# whose fields the answers have not all shown yet (``Walker.plan``).
PASSES = (False, False, True)
# The graph's budgets, wide enough for a document with every field (they are not what is tested).
LIMITS = {
    "graphql_max_tokens": 100_000,
    "graphql_max_document_chars": 1_000_000,
    "graphql_max_fields": 100_000,
    "graphql_max_cost": 10_000_000,
    "graphql_max_depth": 100,
    "graphql_max_repeated_pairs": 1_000_000,
}


@dataclass
class Walked:
    """What the documents found: differences between the two paths, by document."""

    graph: Graph
    walker: Walker
    pool: Pool = field(default_factory=Pool)
    plan: Plan | None = None
    differences: dict[str, str | None] = field(default_factory=dict)
    documents: set[str] = field(default_factory=set)

    def run(self, document: str) -> Any:
        compiled = self.graph.post(document, compiled=True)
        executed = self.graph.post(document, compiled=False)
        body = json.loads(compiled)
        if compiled != executed:
            self.differences[document] = first_difference(body, json.loads(executed)) or "bytes differ"
        self.pool.record(body, "Query")
        self.documents.add(document)
        return body


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def walked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walked]:
    tmp = tmp_path_factory.mktemp("whole-schema")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'oro.db'}"
        from oro_graph.migrations import upgrade

        upgrade(url)
    else:
        url = request.getfixturevalue("pg_database")
    with built_world(url, tmp, **LIMITS) as graph:
        walked = Walked(graph, Walker(schema._schema, set(EXCLUDED), GIVEN))
        for again in PASSES:
            walked.plan = walked.walker.plan(walked.pool, again)
            for document in walked.plan.documents.values():
                if document not in walked.documents:
                    walked.run(document)
        yield walked


def test_the_exclusions_name_fields_of_the_schema() -> None:
    for type_name, name in [*EXCLUDED, *GIVEN]:
        gql_type = schema._schema.type_map.get(type_name)
        assert isinstance(gql_type, GraphQLObjectType) and name in gql_type.fields, (type_name, name)


def test_every_field_answers_the_same_both_ways(walked: Walked, compiled_answers: list[bool]) -> None:
    assert walked.differences == {}
    assert walked.plan is not None and walked.plan.unfilled == set()
    missing = walked.walker.reachable() - walked.pool.exercised
    assert not missing, (
        f"fields no document answered (add a way to, or an EXCLUDED reason): {sorted(missing)}"
    )
    assert len(walked.documents) > 20


def test_what_the_compiler_accepts_of_each_document_is_compiled_and_equal(
    walked: Walked, compiled_answers: list[bool]
) -> None:
    settings = walked.graph.runtime.settings

    def accepts(document: str) -> bool:
        (operation,) = parse(document).definitions
        env = Env(variables={}, fragments={}, now=utcnow(), settings=settings)
        return compile_operation(schema._schema, operation, env) is not None  # type: ignore[arg-type]

    assert walked.plan is not None
    documents = walked.plan.accepted(accepts)
    # the roots the compiler covers, found from the compiler: its mapping is not consulted
    roots = {written.split("(")[0] for written in documents}
    assert roots >= {
        "leaderboard",
        "agentVersion",
        "agent",
        "evaluationRun",
        "evaluationRuns",
        "runningEvaluations",
    }, roots
    runs = 0
    for written, document in documents.items():
        assert accepts(document), document
        # by id: each id the answers showed of the type (other rows: empty pages, nulls)
        for other in _other_ids(walked, written):
            walked.run(document.replace(written, other, 1))
            runs += 1
    assert walked.differences == {}
    compiling = not walked.graph.runtime.db.is_sqlite
    assert runs > len(documents)
    assert compiled_answers == ([True] * runs if compiling else [])


def _other_ids(walked: Walked, written: str) -> list[str]:
    """``written`` (a root field as the document writes it), and with each other id the pool has of
    the type it returns when its argument is an ``id``."""
    name, _, argument = written.partition("(id: ")
    if not argument:
        return [written]
    root = schema._schema.query_type
    assert root is not None
    returns = get_named_type(root.fields[name].type).name
    ids = walked.pool.by_field.get((returns, "id"), [])
    return [written] + [
        f"{name}(id: {json.dumps(v)})" for v in ids if f"{name}(id: {json.dumps(v)})" != written
    ]


def test_a_field_no_answer_showed_is_reported() -> None:
    """The coverage rule itself, on a small schema: a new field is planned without being listed, a
    field whose argument no answer can fill is left out, and neither counts until an answer shows it."""
    small = build_schema(
        """
        type Query { thing(id: ID!): Thing  things: [Thing!]! }
        input Window { days: Int! }
        type Thing { id: ID!  name: String  added: Int  recent(window: Window!): Int }
        """
    )
    walker = Walker(small, set(), {})
    pool = Pool()
    first = walker.plan(pool)
    assert set(first.documents) == {"things"} and ("Query", "thing") in first.unfilled
    pool.record({"data": {"things": [{"__typename": "Thing", "id": "T1", "name": None}]}}, "Query")
    second = walker.plan(pool)
    assert second.documents['thing(id: "T1")'] == 'query { thing(id: "T1") { __typename id name added } }'
    assert ("Thing", "recent") in second.unfilled
    assert walker.reachable() - pool.exercised == {
        ("Query", "thing"),
        ("Thing", "added"),
        ("Thing", "recent"),
    }
