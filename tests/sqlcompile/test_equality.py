"""Compiled and executed answers are the same bytes, for every field the compiler covers.

The documents are generated from the compiler's own mapping (``oro_graph.graphql.sqlcompile.mapping``):
every covered field of every covered type, nested, with page sizes and then cursors, over the demo
world with a running race (its runs' scores embargoed), score ties, integral floats, versions not
yet released and nulls.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLObjectType

from benchmarks.queries import DEEP_LEADERBOARD, RUNS_PAGE, VERSION_PAGE
from oro_graph.graphql.schema import schema
from oro_graph.graphql.sqlcompile.mapping import TYPES, Leaf, Many, One
from tests.sqlcompile.conftest import Graph, parsed

pytestmark = pytest.mark.postgres

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }"


def selection(type_name: str, depth: int, seen: set[str], page_info: bool = True) -> str:
    """Every field of ``type_name`` the compiler maps; relations and connections ``depth`` deep,
    connections with their ``pageInfo`` or without it (a page read without its next row)."""
    seen.add(type_name)
    gql_type = schema._schema.type_map[type_name]
    assert isinstance(gql_type, GraphQLObjectType)
    parts = ["__typename"]
    for name, spec in TYPES[type_name].fields.items():
        assert name in gql_type.fields, f"{type_name}.{name} is mapped but not in the schema"
        if isinstance(spec, Leaf):
            parts.append(name)
        elif depth > 0 and isinstance(spec, One):
            parts.append(f"{name} {{ {selection(spec.target, depth - 1, seen, page_info)} }}")
        elif depth > 0 and isinstance(spec, Many):
            node = selection(spec.target, depth - 1, seen, page_info)
            parts.append(
                f"{name}(first: 3) {{ totalCount {PAGE_INFO if page_info else ''} __typename "
                f"edges {{ cursor __typename node {{ {node} }} }} }}"
            )
    return "\n".join(parts)


def same(graph: Graph, document: str, variables: dict[str, Any] | None = None) -> Any:
    compiled = graph.post(document, variables, compiled=True)
    executed = graph.post(document, variables, compiled=False)
    assert compiled == executed, first_difference(parsed(compiled), parsed(executed))
    body = parsed(compiled)
    assert "errors" not in body, body
    return body["data"]


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two answers part (for the failure message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{path}.{k}"))), None)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        return next(
            (
                d
                for i, (x, y) in enumerate(zip(a, b, strict=True))
                if (d := first_difference(x, y, f"{path}[{i}]"))
            ),
            None,
        )
    return None if (type(a), a) == (type(b), b) else f"{path}: {a!r} != {b!r}"


def ids(graph: Graph, sql: str) -> list[str]:
    from sqlalchemy import text

    with graph.runtime.db.engine.connect() as conn:
        return [str(v) for v in conn.execute(text(sql)).scalars()]


def test_the_benchmark_documents_are_compiled_and_equal(world: Graph, compiled_answers: list[bool]) -> None:
    board = same(world, DEEP_LEADERBOARD)
    assert len(board["leaderboard"]["edges"]) == 100
    for version in ids(world, "SELECT id FROM agentversion ORDER BY submitted_at DESC LIMIT 5"):
        same(world, VERSION_PAGE, {"id": version})
    assert compiled_answers == [True] * 6


@pytest.mark.parametrize("page_info", [True, False], ids=["nested pageInfo", "no nested pageInfo"])
def test_every_covered_field_of_the_board_paged_with_cursors(
    world: Graph, compiled_answers: list[bool], page_info: bool
) -> None:
    seen: set[str] = set()
    entry = selection("LeaderboardEntry", 3, seen, page_info)
    document = f"""
    query Board($after: String) {{
      leaderboard(first: 7, after: $after) {{
        totalCount {PAGE_INFO}
        edges {{ cursor node {{ {entry} }} }}
      }}
    }}"""
    after, pages, ranks = None, 0, []
    while pages < 4:
        page = same(world, document, {"after": after})["leaderboard"]
        ranks += [edge["node"]["rank"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 4 and ranks == list(range(1, 29))
    assert compiled_answers == [True] * pages
    assert seen >= {"LeaderboardEntry", "AgentVersion", "Agent", "Miner", "EvaluationRun", "Validator"}


def test_every_covered_type_from_its_root_with_the_embargo(
    world: Graph, compiled_answers: list[bool]
) -> None:
    seen: set[str] = set()
    version, run, agent = (selection(t, 2, seen) for t in ("AgentVersion", "EvaluationRun", "Agent"))
    document = f"""
    query One($version: ID!, $run: ID!, $agent: ID!) {{
      agentVersion(id: $version) {{ {version} }}
      evaluationRun(id: $run) {{ {run} }}
      agent(id: $agent) {{ {agent} }}
    }}"""
    racing = ids(
        world,
        "SELECT r.id::text || ' ' || r.agent_version_id::text || ' ' || v.agent_id::text "
        "FROM evaluationrun r "
        "JOIN race ON race.id = r.race_id AND race.status = 'RACE_RUNNING' "
        "JOIN agentversion v ON v.id = r.agent_version_id "
        "WHERE r.validator_score IS NOT NULL ORDER BY r.id LIMIT 3",
    )
    qualifying = ids(
        world,
        "SELECT r.id::text || ' ' || r.agent_version_id::text || ' ' || v.agent_id::text "
        "FROM evaluationrun r "
        "JOIN agentversion v ON v.id = r.agent_version_id WHERE r.race_id IS NULL ORDER BY r.id LIMIT 3",
    )
    hidden = ids(world, "SELECT id FROM agentversion WHERE eligible_at IS NULL LIMIT 2")
    assert racing and qualifying and hidden
    embargoed = 0
    for line in racing + qualifying:
        run_id, version_id, agent_id = line.split()
        data = same(world, document, {"version": version_id, "run": run_id, "agent": agent_id})
        embargoed += data["evaluationRun"]["validatorScore"] is None and line in racing
    for version_id in hidden:
        data = same(world, document, {"version": version_id, "run": "nope", "agent": "nope"})
        assert data == {"agentVersion": None, "evaluationRun": None, "agent": None}
    assert embargoed == len(racing)  # a running race's run scores are hidden on both paths
    assert seen == set(TYPES) - {"LeaderboardEntry"}
    assert compiled_answers == [True] * (len(racing) + len(qualifying) + len(hidden))


def test_runs_and_results_page_through_their_cursors(world: Graph, compiled_answers: list[bool]) -> None:
    (version,) = ids(
        world,
        "SELECT agent_version_id FROM evaluationrun GROUP BY agent_version_id ORDER BY count(*) DESC, "
        "agent_version_id LIMIT 1",
    )
    document = """
    query Runs($id: ID!, $after: String, $results: String) {
      agentVersion(id: $id) {
        runs(first: 2, after: $after) {
          totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          edges { cursor node { id claimedAt validatorScore
            problemResults(first: 4, after: $results) {
              pageInfo { hasNextPage endCursor } edges { cursor node { id score updatedAt } }
            } } }
        }
      }
    }"""
    after, results, pages = None, None, 0
    while True:
        runs = same(world, document, {"id": version, "after": after, "results": results})["agentVersion"][
            "runs"
        ]
        pages += 1
        edges = runs["edges"]
        if edges and edges[0]["node"]["problemResults"]["pageInfo"]["hasNextPage"] and results is None:
            results = edges[0]["node"]["problemResults"]["pageInfo"]["endCursor"]
            continue
        if not runs["pageInfo"]["hasNextPage"]:
            break
        after, results = runs["pageInfo"]["endCursor"], None
    assert pages >= 3
    assert compiled_answers == [True] * pages


def test_pages_without_page_info_page_through_their_edges_cursors(
    world: Graph, compiled_answers: list[bool]
) -> None:
    """A connection asked without ``pageInfo`` reads only its page's rows (no row past it, no
    numbering): the same bytes, empty pages and pages after a cursor included."""
    (version,) = ids(
        world,
        "SELECT agent_version_id FROM evaluationrun GROUP BY agent_version_id ORDER BY count(*) DESC, "
        "agent_version_id LIMIT 1",
    )
    document = """
    query Runs($id: ID!, $first: Int!, $after: String) {
      agentVersion(id: $id) {
        runs(first: $first, after: $after) {
          __typename totalCount
          edges { cursor node { id claimedAt problemResults(first: 2) { edges { cursor node { id } } } } }
        }
      }
    }"""
    assert same(world, document, {"id": version, "first": 0})["agentVersion"]["runs"]["edges"] == []
    after, pages, seen = None, 0, []
    while True:
        edges = same(world, document, {"id": version, "first": 2, "after": after})["agentVersion"]["runs"][
            "edges"
        ]
        pages += 1
        seen += [edge["node"]["id"] for edge in edges]
        if len(edges) < 2:
            break
        after = edges[-1]["cursor"]
    assert pages >= 3 and len(seen) == len(set(seen)) == 2 * pages - 2 + len(edges)
    assert compiled_answers == [True] * (pages + 1)


def test_fragments_aliases_and_typename_are_compiled(world: Graph, compiled_answers: list[bool]) -> None:
    document = """
    query Aliased {
      top: leaderboard(first: 3) { edges { node { ...Entry place: rank } } }
      second: leaderboard(first: 0) { edges { cursor } pageInfo { hasNextPage startCursor endCursor } }
      __typename
    }
    fragment Entry on LeaderboardEntry { agentName score: finalScore ... on LeaderboardEntry { wasTop } }
    """
    same(world, document)
    assert compiled_answers == [True]


def test_the_root_run_lists_are_compiled_and_page_through_their_cursors(
    world: Graph, compiled_answers: list[bool]
) -> None:
    after, pages, runs = None, 0, []
    while pages < 3:
        page = same(world, RUNS_PAGE, {"first": 40, "after": after})["evaluationRuns"]
        runs += [edge["node"]["id"] for edge in page["edges"]]
        pages += 1
        after = page["pageInfo"]["endCursor"]
    assert len(set(runs)) == 120
    run = selection("EvaluationRun", 1, set())
    document = f"""
    query Running($after: String) {{
      runningEvaluations(first: 2, after: $after) {{
        totalCount {PAGE_INFO} edges {{ cursor node {{ {run} }} }}
      }}
      evaluationRuns(first: 3) {{ totalCount __typename edges {{ node {{ id leaseExpiresAt }} }} }}
    }}"""
    running = same(world, document)["runningEvaluations"]
    assert running["totalCount"] > 2
    same(world, document, {"after": running["pageInfo"]["endCursor"]})
    assert compiled_answers == [True] * (pages + 2)


def test_a_connection_asked_only_for_its_count_is_compiled(
    world: Graph, compiled_answers: list[bool]
) -> None:
    """Found by the whole-schema test: a connection without ``edges`` or ``pageInfo`` was built over its
    page's rows, a cardinality error past one row (the executor answered) and null on an empty page."""
    (empty,) = ids(
        world,
        "SELECT a.id FROM agent a WHERE NOT EXISTS (SELECT 1 FROM agentversion v "
        "WHERE v.agent_id = a.id AND v.eligible_at IS NOT NULL) ORDER BY a.id LIMIT 1",
    )
    versions = "query Counted($id: ID!) { agent(id: $id) { versions(first: 1) { totalCount __typename } } }"
    assert same(world, versions, {"id": empty})["agent"]["versions"] == {
        "totalCount": 0,
        "__typename": "AgentVersionConnection",
    }
    assert same(world, "{ leaderboard(first: 2) { totalCount } }")["leaderboard"]["totalCount"] > 3
    assert compiled_answers == [True, True]


@pytest.mark.parametrize(
    "document",
    [
        '{ leaderboard(first: 2, search: "a") { edges { node { rank } } } }',
        "{ leaderboard(last: 2) { edges { node { rank } } } }",
        "{ leaderboard(first: 2) { edges { node { rank @include(if: true) } } } }",
        "{ leaderboard(first: 2) { edges { node { agentVersion { scoreInterval { lower } } } } } }",
        "{ validators(first: 2) { edges { node { hotkey } } } }",
        "{ evaluationRuns(first: 2, orderBy: {field: CLAIMED_AT, direction: DESC}) "
        "{ edges { node { id } } } }",
        "{ evaluationRuns(first: 2, filter: {status: [SUCCESS]}) { edges { node { id } } } }",
        "{ runningEvaluations(last: 2) { edges { node { id } } } }",
        "{ leaderboard(first: 101) { edges { node { rank } } } }",
        '{ leaderboard(first: 2, after: "bogus") { edges { node { rank } } } }',
        "{ evaluationRuns(first: 2) { edges { node { problemResults(first: 2, filter: {status: [FAILED]}) "
        "{ edges { node { score } } } } } } }",
    ],
)
def test_what_the_compiler_does_not_cover_is_executed(
    world: Graph, compiled_answers: list[bool], document: str
) -> None:
    compiled = world.post(document, compiled=True)
    assert compiled == world.post(document, compiled=False)
    assert compiled_answers == []


def test_a_statement_is_built_once_per_document_and_serves_every_id(
    world: Graph, compiled_answers: list[bool], built: list[str]
) -> None:
    versions = ids(world, "SELECT id FROM agentversion ORDER BY eligible_at NULLS FIRST, id LIMIT 12")
    for version in versions + ["not an id"]:
        same(world, VERSION_PAGE, {"id": version})
    same(world, DEEP_LEADERBOARD)
    same(world, DEEP_LEADERBOARD)
    paged = "query Paged($n: Int) { leaderboard(first: $n) { edges { node { rank } } } }"
    for n in (1, 2, 1):
        same(world, paged, {"n": n})
    # the page size shapes the statement: one per value
    assert built == ["VersionPage", "DeepLeaderboard", "Paged", "Paged"]
    assert compiled_answers == [True] * (len(versions) + 6)
