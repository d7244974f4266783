from __future__ import annotations

from pathlib import Path

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType

from oro_graph.graphql.schema import schema
from oro_graph.graphql.sdl import export_schema, latest_release, schema_diff

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"

OLD_SDL = """
type Query { suite(id: ID!): Suite  suites(first: Int): [Suite!]! }
type Suite { id: ID!  name: String  version: Int! }
enum Status { A B }
"""

NEW_SDL = """
type Query { suite(id: ID!): Suite  suites(first: Int, after: String): [Suite!]! }
type Suite { id: ID!  version: Int! }
enum Status { A B C }
"""


def test_committed_schema_matches_the_code() -> None:
    # given
    committed = SCHEMA_FILE.read_text()

    # when
    generated = export_schema()

    # then
    assert committed == generated, "schema.graphql is stale: run `oro-graph export-schema > schema.graphql`"


def test_schema_diff_lists_breaking_and_dangerous_changes() -> None:
    # when
    diff = schema_diff(OLD_SDL, NEW_SDL)

    # then
    assert diff.breaking == ["FIELD_REMOVED: Field Suite.name was removed."]
    assert diff.dangerous == [
        "OPTIONAL_ARG_ADDED: An optional argument Query.suites(after:) was added.",
        "VALUE_ADDED_TO_ENUM: Enum value Status.C was added.",
    ]


def test_schema_diff_of_the_schema_with_itself_is_empty() -> None:
    # when
    diff = schema_diff(export_schema(), export_schema())

    # then
    assert (diff.breaking, diff.dangerous) == ([], [])


def test_every_type_and_field_has_a_description() -> None:
    # given
    missing = []
    for name, type_ in schema._schema.type_map.items():
        if name.startswith("__") or name in {
            "String",
            "Int",
            "Float",
            "Boolean",
            "ID",
            "UUID",
        }:  # built-in scalars
            continue
        if not type_.description:
            missing.append(name)
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            missing += [f"{name}.{f}" for f, field in type_.fields.items() if not field.description]
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            missing += [
                f"{name}.{f}({a})"
                for f, field in type_.fields.items()
                for a, arg in field.args.items()
                if not arg.description
            ]

    # then
    assert missing == []


def test_enums_are_documented_and_named_for_clients() -> None:
    # when
    status = schema._schema.type_map["RunStatus"]

    # then
    assert isinstance(status, GraphQLEnumType)
    assert set(status.values) == {
        "CLAIMED",
        "RUNNING",
        "SUCCESS",
        "FAILED",
        "TIMED_OUT",
        "STALE",
        "CANCELLED",
    }


def test_latest_release_is_the_highest_version(tmp_path: Path) -> None:
    # given
    for name in ("v0.9.0.graphql", "v0.10.0.graphql", "v0.2.1.graphql", "notes.graphql"):
        (tmp_path / name).write_text("type Query { a: Int }")

    # when
    latest = latest_release(tmp_path)

    # then
    assert latest is not None and latest.name == "v0.10.0.graphql"


def test_committed_schema_has_no_breaking_change_against_the_last_release() -> None:
    # given the last released SDL (schema/releases/, see CONTRACTS section 7)
    release = latest_release()
    assert release is not None, "schema/releases/ holds no v<version>.graphql"

    # when
    diff = schema_diff(release.read_text(), SCHEMA_FILE.read_text())

    # then: only additions; removing or narrowing needs a deprecation first
    assert diff.breaking == [], f"breaking changes against {release.name}: {diff.breaking}"
