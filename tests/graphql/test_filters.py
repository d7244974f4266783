"""Filters and orders on the main connections: SQL, keyset-paged with nulls last, priced, flat in rows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Miner,
    ProblemResult,
    ValidatorState,
    WorkItem,
)
from oro_graph.runtime import Runtime
from oro_graph.services import suites
from tests.factories import claim, make_world, submit
from tests.graphql.conftest import Gql

BASE = datetime(2026, 6, 1, tzinfo=UTC)
STATUSES = ["SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED", "PENDING"]


def _seed(
    session: Session, *, suite_id: int, problems: list[Any], validators: list[str], start: int, n: int
) -> None:
    """``n`` released versions by miners m0..m3 (every third DISCARDED, without a final score), each with
    one included run per validator reporting every problem (some scores and durations null)."""
    rng = random.Random(start)
    for i in range(start, start + n):
        at = BASE + timedelta(hours=i)
        hotkey = f"m{i % 4}"
        if session.get(Miner, hotkey) is None:
            session.add(Miner(hotkey=hotkey, created_at=BASE))
            session.flush()
        agent = Agent(miner_hotkey=hotkey, name=f"a{i}", created_at=at)
        eligible = i % 3 != 2
        version = AgentVersion(
            agent_id=agent.id,
            version_number=1,
            suite_id=suite_id,
            state="ELIGIBLE" if eligible else "DISCARDED",
            submitted_at=at,
            eligible_at=at - timedelta(days=2),
            discarded_at=None if eligible else at,
            final_score=round(rng.random(), 2) if eligible else None,
            code_key="k",
            code_sha256="0" * 64,
            code_size=1,
        )
        work = WorkItem(agent_version_id=version.id, suite_id=suite_id, required_successes=1, created_at=at)
        for row in (agent, version, work):
            session.add(row)
            session.flush()
        for validator in validators:
            run = EvaluationRun(
                work_item_id=work.id,
                agent_version_id=version.id,
                validator_hotkey=validator,
                suite_id=suite_id,
                status="SUCCESS",
                claimed_at=at,
                lease_expires_at=at,
                completed_at=at,
                is_included=True,
            )
            session.add(run)
            session.flush()
            for problem in problems:
                session.add(
                    ProblemResult(
                        run_id=run.id,
                        problem_id=problem.id,
                        status=rng.choice(STATUSES),
                        score=None if rng.random() < 0.25 else round(rng.random(), 2),
                        execution_time=None if rng.random() < 0.25 else round(rng.uniform(1, 9), 1),
                        updated_at=at,
                    )
                )
    session.flush()


def _world(runtime: Runtime, n: int = 12, validators: int = 1) -> tuple[Any, list[Any]]:
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    runtime.db.call(
        _seed,
        suite_id=world.suite.id,
        problems=problems,
        validators=world.validators[:validators],
        start=0,
        n=n,
    )
    return world, problems


def _page_through(
    gql: Gql, document: str, path: list[str], variables: dict[str, Any], size: int
) -> list[Any]:
    """Every node, ``size`` at a time forward; then checks the same list read backward."""
    forward, after = [], None
    while True:
        data = gql(document, {**variables, "first": size, "after": after})
        for key in path:
            data = data[key]
        forward += [e["node"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    backward, before = [], None
    while True:
        data = gql(document, {**variables, "last": size, "before": before})
        for key in path:
            data = data[key]
        backward = [e["node"] for e in data["edges"]] + backward
        if not data["pageInfo"]["hasPreviousPage"]:
            break
        before = data["pageInfo"]["startCursor"]
    assert backward == forward
    return forward


def _nulls_last_sorted(values: list[Any], descending: bool) -> bool:
    present = [v for v in values if v is not None]
    return values == sorted(present, reverse=descending) + [None] * (len(values) - len(present))


RESULTS = """
query ($filter: EvaluationRunFilter, $results: ProblemResultFilter, $order: ProblemResultOrder,
       $first: Int, $after: String, $last: Int, $before: String) {
  evaluationRuns(filter: $filter, first: 1) { edges { node {
    problemResults(filter: $results, orderBy: $order, first: $first, after: $after, last: $last,
                   before: $before) {
      totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { status score executionTime problem { position category difficulty } } }
    }
  } } }
}
"""


def test_problem_results_filtered_and_ordered_with_nulls_last(runtime: Runtime, gql: Gql) -> None:
    # given a run of the 6-problem suite with seeded statuses, scores and durations
    world, _ = _world(runtime, n=1)
    everything = gql(RESULTS, {"first": 100})["evaluationRuns"]["edges"][0]["node"]["problemResults"]
    rows = [e["node"] for e in everything["edges"]]

    # when filtered by status and category
    wanted = {"status": ["SUCCESS", "FAILED", "SKIPPED", "TIMED_OUT", "PENDING"], "category": "Product"}
    some = gql(RESULTS, {"results": wanted, "first": 100})["evaluationRuns"]["edges"][0]["node"][
        "problemResults"
    ]

    # then
    expected = [r for r in rows if r["problem"]["category"] == "Product"]
    assert some["totalCount"] == len(expected) == 2
    assert sorted(map(str, some["edges"])) == sorted(str({"node": r}) for r in expected)
    easy = gql(RESULTS, {"results": {"difficulty": "easy"}, "first": 100})
    assert {
        e["node"]["problem"]["difficulty"]
        for e in easy["evaluationRuns"]["edges"][0]["node"]["problemResults"]["edges"]
    } == {"easy"}

    # and every order pages the same forward and backward, nulls last
    for field, key in (("SCORE", "score"), ("EXECUTION_TIME", "executionTime"), ("POSITION", None)):
        for direction in ("ASC", "DESC"):
            order = {"field": field, "direction": direction}
            nodes = _page_through(
                gql, RESULTS, ["evaluationRuns", "edges", 0, "node", "problemResults"], {"order": order}, 2
            )
            values = [n[key] if key else n["problem"]["position"] for n in nodes]
            assert len(values) == 6 and _nulls_last_sorted(values, direction == "DESC"), (field, values)


VERSIONS = """
query ($suite: ID!, $filter: AgentVersionFilter, $order: AgentVersionOrder,
       $first: Int, $after: String, $last: Int, $before: String) {
  suite(id: $suite) {
    versions(filter: $filter, orderBy: $order, first: $first, after: $after, last: $last, before: $before) {
      totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { state finalScore eligibleAt submittedAt agent { minerHotkey } } }
    }
  }
}
"""


def test_suite_versions_filtered_and_ordered_by_final_score_nulls_last(runtime: Runtime, gql: Gql) -> None:
    # given 12 released versions, 4 of them discarded without a final score
    world, _ = _world(runtime, n=12)
    suite = str(world.suite.id)

    # when
    for direction in ("ASC", "DESC"):
        order = {"field": "FINAL_SCORE", "direction": direction}
        nodes = _page_through(gql, VERSIONS, ["suite", "versions"], {"suite": suite, "order": order}, 3)

        # then: nulls last either way, and the cursor of a row among the nulls still pages
        scores = [n["finalScore"] for n in nodes]
        assert (
            len(scores) == 12 and scores.count(None) == 4 and _nulls_last_sorted(scores, direction == "DESC")
        )

    # and filters narrow in SQL
    mine = {
        "minerHotkey": "m1",
        "state": ["ELIGIBLE"],
        "submittedAfter": (BASE + timedelta(hours=2)).isoformat(),
    }
    found = gql(VERSIONS, {"suite": suite, "filter": mine, "first": 100})["suite"]["versions"]
    hours = [i for i in range(12) if i % 4 == 1 and i % 3 != 2 and i >= 2]
    assert found["totalCount"] == len(hours) == len(found["edges"])
    assert {e["node"]["agent"]["minerHotkey"] for e in found["edges"]} == {"m1"}
    eligible = gql(
        VERSIONS, {"suite": suite, "order": {"field": "ELIGIBLE_AT", "direction": "DESC"}, "first": 100}
    )
    at = [e["node"]["eligibleAt"] for e in eligible["suite"]["versions"]["edges"]]
    assert len(at) == 12 and at == sorted(at, reverse=True)


def test_unreleased_versions_stay_out_of_filtered_lists(runtime: Runtime, gql: Gql) -> None:
    # given a fresh submission (not released)
    world = make_world(runtime)
    submit(runtime, world.miners[0], "fresh")

    # when
    found = gql(VERSIONS, {"suite": str(world.suite.id), "filter": {"state": ["QUEUED"]}, "first": 10})

    # then
    assert found["suite"]["versions"]["totalCount"] == 0


VALIDATORS = """
query ($filter: ValidatorFilter, $order: ValidatorOrder, $first: Int, $after: String, $last: Int,
       $before: String) {
  validators(filter: $filter, orderBy: $order, first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { hotkey status lastSeenAt } }
  }
}
"""


def test_validators_by_status_and_last_seen_with_nulls_last(runtime: Runtime, gql: Gql) -> None:
    # given Charlie holds a run, Dave was seen an hour ago, Eve never
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    claim(runtime, world.validators[0])
    seen = datetime.now(UTC) - timedelta(hours=1)
    runtime.db.call(lambda s: s.merge(ValidatorState(hotkey=world.validators[1], last_seen_at=seen)))

    # when
    evaluating = gql(VALIDATORS, {"filter": {"status": "EVALUATING"}})["validators"]
    available = gql(VALIDATORS, {"filter": {"status": "AVAILABLE"}})["validators"]
    recent = gql(VALIDATORS, {"filter": {"lastSeenAfter": (seen - timedelta(minutes=1)).isoformat()}})[
        "validators"
    ]

    # then
    assert [e["node"]["hotkey"] for e in evaluating["edges"]] == [world.validators[0]]
    assert {e["node"]["hotkey"] for e in available["edges"]} == set(world.validators[1:])
    assert evaluating["totalCount"] + available["totalCount"] == 3
    assert {e["node"]["hotkey"] for e in recent["edges"]} == set(world.validators[:2])
    for direction in ("ASC", "DESC"):
        order = {"field": "LAST_SEEN_AT", "direction": direction}
        nodes = _page_through(gql, VALIDATORS, ["validators"], {"order": order}, 1)
        assert _nulls_last_sorted([n["lastSeenAt"] for n in nodes], direction == "DESC")
        assert nodes[-1]["hotkey"] == world.validators[2]  # never seen: last either way


BOARD = """
query ($filter: LeaderboardFilter, $first: Int, $after: String, $last: Int, $before: String) {
  leaderboard(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { rank finalScore agentVersionId agentVersion { agent { minerHotkey } } } }
  }
}
"""


def _category_means(session: Session, category: str) -> dict[str, float]:
    from sqlmodel import select

    from oro_graph.models import Problem

    rows = session.exec(
        select(EvaluationRun.agent_version_id, ProblemResult.score)
        .join(ProblemResult, ProblemResult.run_id == EvaluationRun.id)
        .join(Problem, Problem.id == ProblemResult.problem_id)
        .where(Problem.category == category, EvaluationRun.is_included)
    ).all()
    sums: dict[str, list[float]] = {}
    for version, score in rows:
        sums.setdefault(str(version), []).append(score or 0.0)
    return {v: sum(s) / len(s) for v, s in sums.items()}


def test_leaderboard_filters_keep_the_boards_ranks(runtime: Runtime, gql: Gql) -> None:
    # given a board of 8 eligible versions
    world, _ = _world(runtime, n=12)
    board = [e["node"] for e in gql(BOARD, {"first": 100})["leaderboard"]["edges"]]
    rank = {n["agentVersionId"]: n["rank"] for n in board}

    # when
    scored = gql(BOARD, {"filter": {"minScore": 0.3, "maxScore": 0.8}, "first": 100})["leaderboard"]
    by_miner = _page_through(gql, BOARD, ["leaderboard"], {"filter": {"minerHotkey": "m0"}}, 1)
    means = runtime.db.call(_category_means, "Shop")
    category = {"category": "Shop", "minMeanScore": 0.4}
    shop = gql(BOARD, {"filter": {"category": category}, "first": 100})["leaderboard"]

    # then
    expected = [n for n in board if 0.3 <= n["finalScore"] <= 0.8]
    assert [e["node"] for e in scored["edges"]] == expected and scored["totalCount"] == len(expected)
    assert [n["agentVersionId"] for n in by_miner] == [
        n["agentVersionId"] for n in board if n["agentVersion"]["agent"]["minerHotkey"] == "m0"
    ]
    assert all(n["rank"] == rank[n["agentVersionId"]] for n in by_miner)  # the whole board's ranks
    wanted = [n["agentVersionId"] for n in board if means.get(n["agentVersionId"], 0.0) >= 0.4]
    assert [e["node"]["agentVersionId"] for e in shop["edges"]] == wanted and 0 < len(wanted) < len(board)


def test_filters_cost_statements_flat_in_rows_and_are_priced(
    runtime: Runtime, debug_gql: Gql, gql: Gql
) -> None:
    # given
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    seed = {"suite_id": world.suite.id, "problems": problems, "validators": world.validators[:2]}
    runtime.db.call(_seed, start=0, n=3, **seed)
    document = """
    query ($suite: ID!) {
      suite(id: $suite) { versions(filter: {state: [ELIGIBLE, DISCARDED]},
                                   orderBy: {field: FINAL_SCORE, direction: DESC},
                                   first: 50) {
        edges { node { runs(first: 10) { edges { node {
          problemResults(filter: {category: "Shop"}, orderBy: {field: SCORE, direction: DESC}, first: 10) {
            totalCount edges { node { score } } } } } } } } } }
      validators(filter: {status: AVAILABLE}, orderBy: {field: LAST_SEEN_AT}) { edges { node { hotkey } } }
      flagged: validators(filter: {flags: [BIASED, STALE, SLOW]}) { totalCount edges { node { hotkey } } }
      leaderboard(filter: {minScore: 0.1, category: {category: "Shop", minMeanScore: 0.1}}) {
        edges { node { rank } }
      }
    }
    """

    # when the data grows tenfold
    small = debug_gql(document, {"suite": str(world.suite.id)}, errors=True)
    runtime.db.call(_seed, start=3, n=27, **seed)
    large = debug_gql(document, {"suite": str(world.suite.id)}, errors=True)

    # then
    assert "errors" not in large, large["errors"]
    assert len(large["data"]["suite"]["versions"]["edges"]) == 30
    assert small["extensions"]["sql"]["statements"] == large["extensions"]["sql"]["statements"]
    # and a filtered connection costs more than the same unfiltered one
    plain = "query { validators(first: 10) { edges { node { hotkey } } } }"
    narrowed = "query { validators(first: 10, filter: {status: AVAILABLE}, orderBy: {field: LAST_SEEN_AT}) { edges { node { hotkey } } } }"  # noqa: E501
    costs = [
        gql("query ($q: String!) { dryRun(query: $q) { cost } }", {"q": q})["dryRun"]["cost"]
        for q in (plain, narrowed)
    ]
    assert costs[1] == costs[0] + 2
