"""Schemathesis against /graphql of a live server over PostgreSQL: every query and mutation root
field, with documents generated from the introspected schema, signed by the right role, over a
seeded world so ids exist. No 5xx; every answer is a GraphQL response (a JSON object of data,
errors and extensions) whose data matches the declared type of every selected field; every error
carries a documented code and none is INTERNAL_SERVER_ERROR; the server logs no ERROR record.

Then hand-written hostile requests for what the generator never sends: variables of the wrong
type or shape, bodies that are not operations, broken multipart maps, times without an offset or
outside the calendar. Each must be a 4xx or a GraphQL error with a documented code.

ORO_FUZZ_EXAMPLES sets the examples per operation (50 by default, as in CI); ORO_FUZZ_REPORT=path
writes the requests sent per operation and how many answered with data.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import graphql
import httpx
import pytest
import schemathesis
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    NameNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    SelectionSetNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    is_abstract_type,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from strawberry.relay import to_base64

from oro_graph.errors import ErrorCode
from tests.factories import AGENT_SOURCE
from tests.hardening.conftest import ErrorLog
from tests.hardening.support import signed
from tests.rest.seed import Seeded, seed

EXAMPLES = int(os.environ.get("ORO_FUZZ_EXAMPLES", "50"))
CALLS: Counter[str] = Counter()
ANSWERED: Counter[str] = Counter()  # answers with data (the document ran, at least in part)

# Codes an error may carry: the domain's, plus those of the GraphQL layer (parse and validation,
# page arguments, cost, persisted queries). INTERNAL_SERVER_ERROR is deliberately absent.
DOCUMENTED_CODES = {code.value for code in ErrorCode} | {
    "GRAPHQL_VALIDATION_FAILED",
    "BAD_USER_INPUT",
    "BAD_PAGE_ARGUMENT",
    "QUERY_TOO_COSTLY",
    "PERSISTED_QUERY_NOT_FOUND",
    "PERSISTED_QUERY_INVALID",
}
SIGNERS = {  # mutation -> who signs it: the role it is for, holding the seeded running run
    "submitAgent": "Alice",
    "storeInferenceCredential": "Alice",
    "claimWork": "Charlie",  # idle, so the first claim can succeed
    "heartbeat": "Eve",
    "reportProgress": "Eve",
    "completeRun": "Eve",
    "requestUploadUrl": "Eve",
}


def _json_values() -> st.SearchStrategy[graphql.ValueNode]:
    leaves = st.one_of(
        st.text(max_size=20).map(nodes.String),
        st.integers(min_value=-(2**70), max_value=2**70).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.booleans().map(nodes.Boolean),
        st.just(graphql.NullValueNode()),
    )

    def extend(children: st.SearchStrategy[graphql.ValueNode]) -> st.SearchStrategy[graphql.ValueNode]:
        fields = st.lists(
            st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), children),
            max_size=4,
            unique_by=lambda pair: pair[0],
        ).map(
            lambda pairs: nodes.Object([ObjectFieldNode(name=NameNode(value=k), value=v) for k, v in pairs])
        )
        return st.one_of(st.lists(children, max_size=4).map(nodes.List), fields)

    return st.recursive(leaves, extend, max_leaves=12)


schemathesis.graphql.scalar("JSON", _json_values())
# Times with and without an offset, and at the ends of the calendar (year 1 at +14:00 has no UTC).
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat),
        st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-02-30", "2026"]),
    ).map(nodes.String),
)
# The file of submitAgent: generated text, or a valid agent now and then. Sent as a multipart part.
schemathesis.graphql.scalar(
    "Upload", st.one_of(st.text(max_size=200), st.just(AGENT_SOURCE.decode())).map(nodes.String)
)


@pytest.fixture
def fuzzed(serve: Any) -> Iterator[tuple[Any, Seeded, httpx.Client]]:
    server = serve()
    world = seed(server.runtime)
    with server.http() as http:
        yield schemathesis.graphql.from_url(server.base_url + "/graphql"), world, http


@pytest.fixture
def api_schema(fuzzed: tuple[Any, Seeded, httpx.Client]) -> Any:
    return fuzzed[0]


def _known(world: Seeded) -> dict[str, list[graphql.ValueNode]]:
    """Values that name seeded rows, by the scalar or argument they can stand in for."""
    uuids = [
        world.alpha, world.beta, world.alpha_agent, world.beta_agent, world.beta_run, *world.alpha_runs,
        world.problems[0].id,
    ]  # fmt: skip
    hotkeys = [world.alice, world.bob, world.charlie, world.eve]
    globals_ = [
        to_base64("AgentVersion", world.alpha),
        to_base64("Agent", world.beta_agent),
        to_base64("EvaluationRun", world.beta_run),
        to_base64("Miner", world.alice),
        to_base64("Validator", world.eve),
        to_base64("Suite", world.world.suite.id),
        to_base64("Problem", world.problems[0].id),
    ]
    as_strings = [nodes.String(str(v)) for v in uuids]
    return {
        "UUID": as_strings,
        "ID": as_strings + [nodes.String(g) for g in globals_] + [nodes.String(h) for h in hotkeys],
        "hotkey": [nodes.String(h) for h in hotkeys],
        "suiteId": [nodes.Int(world.world.suite.id or 1)],
        "agentName": [nodes.String(name) for name in ("alpha", "gamma", "x.y-z_1")],
        "query": [nodes.String(document) for document in DRY_RUN_DOCUMENTS],
    }


PAGE_ARGUMENTS = {"first", "last", "after", "before"}
DRY_RUN_DOCUMENTS = [  # what dryRun(query:) is pointed at: a cheap, a costly and a broken document
    "query { suites(first: 5) { edges { node { problems(first: 10) { totalCount } } } } }",
    "query ($n: Int) { evaluationRuns(first: $n) { edges { node { problemResults(first: 100) { totalCount } } } } }",  # noqa: E501
    "query { leaderboard(first: 101) { totalCount } } query Other { currentSuite { suiteId } }",
]


class _Aim(Visitor):
    """Point about half of the generated ids, hotkeys and names at seeded rows, and most pages at
    a few items, so documents reach the resolvers. Each choice is made from the generated value
    itself, so Hypothesis can still replay and shrink a case."""

    def __init__(self, type_info: TypeInfo, known: dict[str, list[graphql.ValueNode]]) -> None:
        super().__init__()
        self.type_info = type_info
        self.known = known

    def _choices(self, name: str, type_: GraphQLInputType | None) -> list[graphql.ValueNode]:
        named = get_named_type(type_) if type_ is not None else None
        by_name = self.known.get(name) or self.known.get("hotkey" if name.endswith("otkey") else "")
        return by_name or (self.known.get(named.name, []) if named is not None else [])

    def _aim(self, node: Any, name: str) -> Any:
        choices = self._choices(name, self.type_info.get_input_type())
        if not choices:
            return None
        value = node.value
        if isinstance(value, graphql.ListValueNode):
            aimed = nodes.List([self._pick(item, choices) for item in value.values])
        else:
            aimed = self._pick(value, choices)
        return None if aimed is value else node.__class__(name=node.name, value=aimed)

    @staticmethod
    def _pick(value: graphql.ValueNode, choices: list[graphql.ValueNode]) -> graphql.ValueNode:
        if not isinstance(value, graphql.StringValueNode | graphql.IntValueNode):
            return value
        digest = sum(graphql.print_ast(value).encode())
        return value if digest % 2 else choices[digest % len(choices)]

    def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
        name = node.name.value
        if name in PAGE_ARGUMENTS:  # two thirds of the pages get a small `first` and nothing else
            digest = sum(graphql.print_ast(node.value).encode())
            if digest % 3 == 0:
                return None
            return (
                ArgumentNode(name=node.name, value=nodes.Int(digest % 4))
                if name == "first"
                else graphql.REMOVE
            )
        return self._aim(node, name)

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> Any:
        return self._aim(node, node.name.value)


class _WithTypename(Visitor):
    """Ask ``__typename`` in every selection set, so the answer says which member of a union came back."""

    def leave_selection_set(self, node: SelectionSetNode, *_: Any) -> SelectionSetNode:
        typename = FieldNode(name=NameNode(value="__typename"), arguments=(), directives=())
        return SelectionSetNode(selections=(*node.selections, typename))


def _prepare(body: str, schema: GraphQLSchema, known: dict[str, list[graphql.ValueNode]]) -> DocumentNode:
    document = graphql.parse(body)
    type_info = TypeInfo(schema)
    document = graphql.visit(document, TypeInfoVisitor(type_info, _Aim(type_info, known)))
    return graphql.visit(document, _WithTypename())


def _upload_operations(document: DocumentNode) -> tuple[dict[str, Any], bytes]:
    """submitAgent as the multipart request spec sends it: the inline file literal becomes $file."""
    content = b""

    class Lift(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
            nonlocal content
            if node.name.value == "file" and isinstance(node.value, graphql.StringValueNode):
                content = node.value.value.encode()
                return ArgumentNode(name=node.name, value=graphql.VariableNode(name=NameNode(value="file")))
            return None

        def leave_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> Any:
            definition = graphql.parse("query ($file: Upload!) { a }").definitions[0].variable_definitions
            return OperationDefinitionNode(
                operation=node.operation,
                name=node.name,
                variable_definitions=definition,
                directives=node.directives,
                selection_set=node.selection_set,
            )

    lifted = graphql.visit(document, Lift())
    return {"query": graphql.print_ast(lifted), "variables": {"file": None}}, content


# --- the answer against the document and the declared schema -----------------------------------


def _int32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31


SCALARS = {
    "Int": _int32,
    "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "ID": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "UUID": lambda v: isinstance(v, str) and uuid.UUID(v) is not None,
    "DateTime": lambda v: isinstance(v, str) and datetime.fromisoformat(v) is not None,
    "Date": lambda v: isinstance(v, str) and date.fromisoformat(v) is not None,  # a UTC day (`aggregates`)
    "JSON": lambda v: True,
}


class Conformance:
    """Walks the data of an answer along the document, checking every value against its declared type."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        self.problems: list[str] = []

    def check(self, data: Any) -> list[str]:
        root = self.schema.get_root_type(self.operation.operation)
        assert root is not None
        self.object(root, self.operation.selection_set, data, "data")
        return self.problems

    def _fields(self, type_: GraphQLObjectType, selection_set: SelectionSetNode) -> Iterator[FieldNode]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, type_):
                    yield from self._fields(type_, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if self._applies(fragment.type_condition.name.value, type_):
                    yield from self._fields(type_, fragment.selection_set)

    def _applies(self, condition: str, type_: GraphQLObjectType) -> bool:
        named = self.schema.get_type(condition)
        if named is type_:
            return True
        return is_abstract_type(named) and self.schema.is_sub_type(named, type_)  # type: ignore[arg-type]

    def object(self, type_: Any, selection_set: SelectionSetNode, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path}: {type_.name} answered as {type(value).__name__}")
            return
        if is_abstract_type(type_):
            runtime = self.schema.get_type(str(value.get("__typename")))
            if not isinstance(runtime, GraphQLObjectType) or not self.schema.is_sub_type(type_, runtime):
                self.problems.append(f"{path}: __typename {value.get('__typename')!r} is not a {type_.name}")
                return
            type_ = runtime
        expected: dict[str, FieldNode] = {}
        for node in self._fields(type_, selection_set):
            expected.setdefault(node.alias.value if node.alias else node.name.value, node)
        if set(value) != set(expected):
            self.problems.append(f"{path}: keys {sorted(value)} but the document selects {sorted(expected)}")
        for key, node in expected.items():
            if key not in value:
                continue
            name = node.name.value
            if name == "__typename":
                if value[key] != type_.name:
                    self.problems.append(f"{path}.{key}: {value[key]!r} is not {type_.name}")
                continue
            self.value(type_.fields[name].type, node.selection_set, value[key], f"{path}.{key}")

    def value(self, type_: Any, selection_set: SelectionSetNode | None, value: Any, path: str) -> None:
        if isinstance(type_, GraphQLNonNull):
            if value is None:
                self.problems.append(f"{path}: null in a non-null {type_}")
                return
            type_ = type_.of_type
        if value is None:
            return
        if isinstance(type_, GraphQLList):
            if not isinstance(value, list):
                self.problems.append(f"{path}: {type_} answered as {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self.value(type_.of_type, selection_set, item, f"{path}[{i}]")
        elif isinstance(type_, GraphQLEnumType):
            if value not in type_.values:
                self.problems.append(f"{path}: {value!r} is not a value of {type_.name}")
        elif isinstance(type_, GraphQLScalarType):
            try:
                ok = SCALARS[type_.name](value)
            except (ValueError, TypeError):
                ok = False
            if not ok:
                self.problems.append(f"{path}: {value!r} is not a valid {type_.name}")
        else:
            assert selection_set is not None
            self.object(type_, selection_set, value, path)


def assert_graphql_answer(response: httpx.Response, schema: GraphQLSchema, document: DocumentNode) -> None:
    sent = graphql.print_ast(document)
    assert response.status_code < 500, (sent, response.text[:500])
    payload = response.json()
    assert isinstance(payload, dict), (sent, payload)
    assert set(payload) <= {"data", "errors", "extensions"}, (sent, payload)
    assert "data" in payload or "errors" in payload, (sent, payload)
    for error in payload.get("errors") or []:
        assert isinstance(error.get("message"), str), (sent, error)
        assert (error.get("extensions") or {}).get("code") in DOCUMENTED_CODES, (sent, error)
    if payload.get("data") is not None:
        problems = Conformance(schema, document).check(payload["data"])
        assert problems == [], (sent, problems)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_survives_generated_documents(
    case: Any, fuzzed: tuple[Any, Seeded, httpx.Client], error_log: ErrorLog
) -> None:
    api, world, http = fuzzed
    client_schema = api.client_schema
    field = case.operation.definition.field_name
    document = _prepare(
        case.body if isinstance(case.body, str) else case.body["query"], client_schema, _known(world)
    )
    signer = SIGNERS.get(field)
    headers = signed(signer, nonce=uuid.uuid4().hex) if signer else {}
    CALLS[case.operation.label] += 1
    logged = len(error_log.records)
    if field == "submitAgent":
        operations, content = _upload_operations(document)
        response = http.post(
            "/graphql",
            headers=headers,
            data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
            files={"0": ("agent.py", content, "text/x-python")},
        )
    else:
        response = http.post("/graphql", headers=headers, json={"query": graphql.print_ast(document)})
    assert_graphql_answer(response, client_schema, document)
    if response.json().get("data") is not None:
        ANSWERED[case.operation.label] += 1
    assert error_log.messages()[logged:] == []


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    """With ORO_FUZZ_REPORT=path, write the requests sent per operation (for RELIABILITY.md)."""
    yield
    path = os.environ.get("ORO_FUZZ_REPORT")
    if path:
        with open(path, "w") as handle:
            report = {
                "total": sum(CALLS.values()),
                "answered_with_data": sum(ANSWERED.values()),
                "per_operation": {op: [n, ANSWERED[op]] for op, n in sorted(CALLS.items())},
            }
            json.dump(report, handle, indent=1)


# Hand-written hostile requests -------------------------------------------------------------------

RUNS_FIRST = "query ($n: Int) { suites(first: $n) { totalCount } }"
ONE = "{ currentSuite { suiteId } }"
UPLOAD = 'mutation ($f: Upload!) { submitAgent(agentName: "a", file: $f) { __typename } }'


def _multipart(operations: Any, files_map: Any) -> dict[str, Any]:
    return {
        "data": {"operations": json.dumps(operations), "map": json.dumps(files_map)},
        "files": {"0": ("a.py", b"x = 1\n", "text/x-python")},
    }


def _dry_run(document: str, variables: Any = None) -> dict[str, Any]:
    query = "query ($q: String!, $v: JSON) { dryRun(query: $q, variables: $v) { cost withinBudget } }"
    return {"json": {"query": query, "variables": {"q": document, "v": variables}}}


def _q(document: str) -> dict[str, Any]:
    return {"json": {"query": document}}


BOARD_AS_OF = '{ leaderboard(first: 1, asOf: "%s") { totalCount } }'
HOSTILE: dict[str, dict[str, Any]] = {
    "a variable of the wrong type": {"json": {"query": RUNS_FIRST, "variables": {"n": "ten"}}},
    "a float for an Int variable": {"json": {"query": RUNS_FIRST, "variables": {"n": 1.5}}},
    "a required variable left out": _q("query ($s: Boolean!) { currentSuite @skip(if: $s) { suiteId } }"),
    "variables that are a list": {"json": {"query": RUNS_FIRST, "variables": [1]}},
    "a body that is a number": {"json": 5},
    "a body that is a string": {"json": "query"},
    "a batch of numbers": {"json": [1, "x", None]},
    "a batch of batches": {"json": [[{"query": ONE}]]},
    "a batch operation whose query is a number": {"json": [{"query": 5}]},
    "a batch operation whose variables are a list": {"json": [{"query": RUNS_FIRST, "variables": [1]}]},
    "multipart operations that are a number": _multipart(5, {}),
    "multipart operations that are a string": _multipart("x", {}),
    "a multipart map that is a list": _multipart({"query": UPLOAD, "variables": {"f": None}}, [1]),
    "a multipart map into a missing batch item": _multipart(
        [{"query": UPLOAD, "variables": {"f": None}}], {"0": ["5.variables.f"]}
    ),
    "a multipart map through a string": _multipart(
        {"query": UPLOAD, "variables": {"f": "x"}}, {"0": ["variables.f.x"]}
    ),
    "dryRun with variables that are a list": _dry_run(ONE, [1, 2]),
    "dryRun with variables that are a number": _dry_run(ONE, 3),
    "dryRun of a document with a cyclic fragment": _dry_run("fragment F on Query { ...F } { ...F }"),
    "dryRun of a 100,000-token document": _dry_run("{ " + "a " * 100_000 + "}"),
    "asOf without an offset": _q(BOARD_AS_OF % "2026-01-01T00:00:00"),
    "asOf in year 1 at +14:00": _q(BOARD_AS_OF % "0001-01-01T00:00:00+14:00"),
    "asOf at the end of year 9999": _q(BOARD_AS_OF % "9999-12-31T23:59:59"),
    "a reliability window without offsets, reversed": _q(
        "{ validators(first: 2) { edges { node { reliability(window: "
        '{since: "9999-12-31T23:59:59", until: "0001-01-01T00:00:00"}) { __typename } } } } }'
    ),
    "a variance window before year 1 in UTC": _q(
        '{ currentSuite { validatorVariance(window: {since: "0001-01-01T00:00:00+14:00"}) { __typename } } }'
    ),
    "runs claimed after year 1 at -05:00": _q(
        '{ evaluationRuns(first: 1, filter: {claimedAfter: "0001-01-01T00:00:00-05:00"}) { totalCount } }'
    ),
    "a NUL in a hotkey": _q(
        '{ miner(hotkey: "a\\u0000b") { hotkey } validator(hotkey: "\\u0000") { hotkey } }'
    ),
    "a suite id past 32 bits": _q('{ suite(id: "99999999999999") { suiteId } }'),
    "a global id of an unknown type": _q('{ node(id: "Tm9wZToxMjM=") { id } }'),
    "a global id that is not base64": _q('{ node(id: "!!!") { id } }'),
    "a suite global id that is not a number": _q('{ node(id: "U3VpdGU6YWJj") { id } }'),
}


def test_every_hostile_request_is_refused_not_failed(serve: Any, error_log: ErrorLog) -> None:
    # given
    server = serve()
    seed(server.runtime)
    with server.http() as http:
        for name, request in HOSTILE.items():
            # when
            response = http.post("/graphql", **request)

            # then a 4xx saying why, or a GraphQL answer whose errors all carry a documented code
            assert response.status_code < 500, (name, response.text[:300])
            if response.status_code != 200:
                assert response.status_code < 500 and response.text.strip(), (name, response.text)
                continue
            body = response.json()
            for answer in body if isinstance(body, list) else [body]:
                for error in answer.get("errors") or []:
                    assert error.get("extensions", {}).get("code") in DOCUMENTED_CODES, (name, error)
            assert error_log.messages() == [], name
