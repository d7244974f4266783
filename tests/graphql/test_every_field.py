"""Every field of the graph resolves on the demo world, on both databases.

The document is built from the schema itself, so a field added later is covered without
touching this test: each root list and object, every field without required arguments,
nested two objects deep, connections two items a page.
"""

from __future__ import annotations

from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLUnionType,
    get_named_type,
)

from oro_graph import demo
from oro_graph.graphql.schema import schema
from tests.graphql.conftest import Gql

ROOTS = [
    "currentSuite", "suites", "evaluationRuns", "runningEvaluations", "pendingEvaluations",
    "validators", "leaderboard", "topAgent", "topHistory", "currentRace", "races",
]  # fmt: skip
NESTING = 2
PAGE = 2


def _required_args(field: GraphQLField) -> bool:
    return any(isinstance(a.type, GraphQLNonNull) and a.default_value is None for a in field.args.values())


def _selection(type_: GraphQLObjectType, depth: int) -> str:
    parts = []
    for name, field in type_.fields.items():
        if _required_args(field):
            continue
        named = get_named_type(field.type)
        if isinstance(named, (GraphQLInterfaceType, GraphQLUnionType)):
            parts.append(f"{name} {{ __typename }}")
        elif isinstance(named, GraphQLObjectType):
            if named.name.endswith("Connection"):
                if depth == 0:
                    continue
                node = get_named_type(named.fields["edges"].type).fields["node"].type  # type: ignore[union-attr]
                inner = _selection(get_named_type(node), depth - 1)  # type: ignore[arg-type]
                parts.append(
                    f"{name}(first: {PAGE}) {{ totalCount pageInfo {{ hasNextPage endCursor }} "
                    f"edges {{ cursor node {{ {inner} }} }} }}"
                )
            elif depth > 0:
                parts.append(f"{name} {{ {_selection(named, depth - 1)} }}")
        else:
            parts.append(name)
    return " ".join(parts) or "__typename"


def _document(root: str) -> str:
    field = schema._schema.query_type.fields[root]  # type: ignore[union-attr]
    named = get_named_type(field.type)
    assert isinstance(named, GraphQLObjectType)
    if named.name.endswith("Connection"):
        node = get_named_type(named.fields["edges"].type).fields["node"].type  # type: ignore[union-attr]
        inner = _selection(get_named_type(node), NESTING)  # type: ignore[arg-type]
        return f"{{ {root}(first: {PAGE}) {{ totalCount edges {{ node {{ {inner} }} }} }} }}"
    return f"{{ {root} {{ {_selection(named, NESTING)} }} }}"


def test_every_field_resolves_on_the_demo_world(runtime, gql: Gql) -> None:
    # given a small demo world with every state and status
    demo.generate(runtime.db, runtime.settings, seed=3, miners=12, validators=6, runs=120)
    for root in ROOTS:
        # when
        body = gql(_document(root), errors=True)
        # then
        assert "errors" not in body, (root, body.get("errors"))
        value = body["data"][root]
        assert value, f"{root} returned nothing on the demo world"
        if isinstance(value, dict) and "edges" in value:
            assert value["edges"] and value["totalCount"] > 0, root


def test_the_generated_documents_cover_the_types() -> None:
    covered = " ".join(_document(root) for root in ROOTS)
    for name in (
        "scoreInterval",
        "reliability",
        "validatorVariance",
        "problemResults",
        "workItem",
        "miner",
        "agent",
        "qualifiers",
        "weights",
        "drawnProblems",
        "raceEntries",
    ):
        assert name in covered, name
