"""`Problem.stats` and `Suite.problemStats`, checked against pandas on the raw rows (both databases)."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlmodel import Session

from oro_graph.analytics import metrics
from oro_graph.models import Agent, AgentVersion, EvaluationRun, Miner, ProblemResult, Race, WorkItem
from oro_graph.runtime import Runtime
from oro_graph.services import suites
from tests.factories import make_world
from tests.graphql.conftest import Gql

BASE = datetime(2026, 5, 1, tzinfo=UTC)
STATUSES = ["SUCCESS", "SUCCESS", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED", "PENDING", "RUNNING"]

SUITE_STATS = """
query ($id: ID!, $scope: ProblemStatsScope, $order: ProblemStatsOrder, $first: Int, $after: String,
       $last: Int, $before: String) {
  suite(id: $id) {
    problemStats(scope: $scope, orderBy: $order, first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage endCursor startCursor }
      edges { node {
        problemId position attempts passes timeouts versions passRate timeoutRate meanScore medianScore
        meanDurationSeconds discrimination problem { title }
      } }
    }
  }
}
"""

PROBLEM_STATS = """
query ($id: ID!, $scope: ProblemStatsScope) {
  node(id: $id) { ... on Problem { position stats(scope: $scope) { attempts passRate discrimination } } }
}
"""


def _seed(session: Session, *, suite_id: int, problems: list[Any], validators: list[str], start: int, n: int,
          race_id: uuid.UUID | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """``n`` versions, each with a run per validator (claimed a day apart per version, some included)
    and a result per problem with seeded statuses, scores (some null) and durations."""
    rng = random.Random(start)
    raw = []
    for i in range(start, start + n):
        at = BASE + timedelta(days=i)
        hotkey = f"m{i:03d}"
        agent = Agent(miner_hotkey=hotkey, name=f"a{i}", created_at=at)
        version = AgentVersion(
            agent_id=agent.id, version_number=1, suite_id=suite_id, state="RUNNING", submitted_at=at,
            code_key="k", code_sha256="0" * 64, code_size=1,
        )  # fmt: skip
        work = WorkItem(agent_version_id=version.id, suite_id=suite_id, required_successes=2, created_at=at)
        for row in (Miner(hotkey=hotkey, created_at=at), agent, version, work):
            session.add(row)
            session.flush()
        skill = rng.random()
        for j, validator in enumerate(validators):
            run = EvaluationRun(
                work_item_id=work.id, agent_version_id=version.id, validator_hotkey=validator,
                suite_id=suite_id,
                status="SUCCESS", claimed_at=at + timedelta(hours=j), lease_expires_at=at,
                is_included=(i + j) % 3 != 0, race_id=race_id,
            )  # fmt: skip
            session.add(run)
            session.flush()
            for k, problem in enumerate(problems):
                status = rng.choice(STATUSES)
                score = (
                    None
                    if rng.random() < 0.1
                    else round(min(1.0, max(0.0, skill - 0.15 * k + rng.gauss(0, 0.2))), 3)
                )
                duration = None if rng.random() < 0.2 else round(rng.uniform(1, 30), 2)
                session.add(
                    ProblemResult(
                        run_id=run.id, problem_id=problem.id, status=status, score=score,
                        execution_time=duration,
                        updated_at=at,
                    )
                )  # fmt: skip
                raw.append(
                    {
                        "run_id": str(run.id), "agent_version_id": str(version.id),
                        "problem_id": str(problem.id),
                        "status": status, "score": score, "execution_time": duration,
                        "claimed_at": run.claimed_at, "is_included": run.is_included,
                    }
                )  # fmt: skip
    session.flush()
    return raw


def _expected(
    raw: list[dict[str, Any]], since: datetime | None = None, included_only: bool = False
) -> pd.DataFrame:
    """The statistics computed independently with pandas on the raw rows."""
    df = pd.DataFrame(raw)
    if since is not None:
        df = df[df["claimed_at"] >= since]
    if included_only:
        df = df[df["is_included"]]
    df = df[~df["status"].isin(["PENDING", "RUNNING"])].assign(x=lambda d: d["score"].fillna(0.0))
    out = df.groupby("problem_id").agg(
        attempts=("x", "size"),
        passes=("status", lambda s: int((s == "SUCCESS").sum())),
        timeouts=("status", lambda s: int((s == "TIMED_OUT").sum())),
        versions=("agent_version_id", "nunique"),
        mean_score=("x", "mean"),
        median_score=("x", "median"),
        mean_duration=("execution_time", "mean"),
    )
    # corrected item-total correlation, from the versions x problems matrix of mean scores
    matrix = df.groupby(["agent_version_id", "problem_id"])["x"].mean().unstack()
    rest = matrix.apply(lambda col: (matrix.sum(axis=1) - col) / (matrix.notna().sum(axis=1) - 1))
    r = {}
    for p in matrix.columns:
        pair = pd.DataFrame({"x": matrix[p], "y": rest[p]}).dropna()
        ok = len(pair) >= 3 and pair["x"].var() > 0 and pair["y"].var() > 0
        r[p] = float(np.corrcoef(pair["x"], pair["y"])[0, 1]) if ok else None
    out["discrimination"] = pd.Series(r)
    return out


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return abs(a - b) < 1e-9


def _world(runtime: Runtime, n: int = 12) -> tuple[Any, list[Any], list[dict[str, Any]]]:
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    raw = runtime.db.call(
        _seed, suite_id=world.suite.id, problems=problems, validators=world.validators[:2], start=0, n=n
    )
    return world, problems, raw


def _stats(gql: Gql, suite_id: int, **variables: Any) -> dict[str, Any]:
    return gql(SUITE_STATS, {"id": str(suite_id), "first": 100, **variables})["suite"]["problemStats"]


@pytest.mark.parametrize("included_only", [False, True])
def test_suite_problem_stats_match_pandas_on_the_raw_rows(
    runtime: Runtime, gql: Gql, included_only: bool
) -> None:
    # given 12 versions x 2 runs x 6 problems of seeded results, and a window dropping the first 3 days
    world, problems, raw = _world(runtime)
    since = BASE + timedelta(days=3)

    # when
    scope = {"since": since.isoformat(), "includedOnly": included_only}
    got = _stats(gql, world.suite.id, scope=scope)

    # then
    expected = _expected(raw, since, included_only)
    assert got["totalCount"] == len(problems)
    nodes = [e["node"] for e in got["edges"]]
    assert [n["position"] for n in nodes] == list(range(len(problems)))  # suite order by default
    for node in nodes:
        row = expected.loc[node["problemId"]]
        assert (node["attempts"], node["passes"], node["timeouts"], node["versions"]) == (
            row["attempts"], row["passes"], row["timeouts"], row["versions"],
        )  # fmt: skip
        assert _close(node["passRate"], row["passes"] / row["attempts"])
        assert _close(node["timeoutRate"], row["timeouts"] / row["attempts"])
        for field, column in (("meanScore", "mean_score"), ("medianScore", "median_score"),
                              ("meanDurationSeconds", "mean_duration"),
                              ("discrimination", "discrimination")):  # fmt: skip
            assert _close(node[field], row[column]), (field, node[field], row[column])
    assert any(n["discrimination"] is not None for n in nodes)


def test_discrimination_and_timeout_rate_are_the_notebooks_numbers(runtime: Runtime, gql: Gql) -> None:
    # given
    world, _, raw = _world(runtime)
    frame = pd.DataFrame(raw)

    # when
    nodes = [e["node"] for e in _stats(gql, world.suite.id, scope={"includedOnly": True})["edges"]]
    every = [e["node"] for e in _stats(gql, world.suite.id)["edges"]]

    # then: metrics.item_analysis's corrected_r on included runs, metrics.timeout_loss's rate on all
    items = metrics.item_analysis(frame[frame["is_included"]]).set_index("problem_id")
    loss = metrics.timeout_loss(frame, by="problem_id").set_index("problem_id")
    for node in nodes:
        assert _close(node["discrimination"], items.loc[node["problemId"], "corrected_r"])
    for node in every:
        assert _close(node["timeoutRate"], loss.loc[node["problemId"], "timeout_rate"])


def test_problem_stats_by_race_and_without_attempts(runtime: Runtime, gql: Gql) -> None:
    # given runs of one race next to qualifying runs
    world, problems, raw = _world(runtime, n=4)
    race = Race(
        race_number=1, suite_id=world.suite.id, max_qualifiers=4, problem_count=3, required_successes=1,
        max_attempts=2, qualifying_closes_at=BASE, seed_commitment="0" * 64, secret="1" * 64,
    )  # fmt: skip
    runtime.db.call(lambda s: (s.add(race), s.flush()))
    raced = runtime.db.call(
        _seed, suite_id=world.suite.id, problems=problems[:2], validators=world.validators[2:], start=50, n=5,
        race_id=race.id,
    )  # fmt: skip

    # when
    got = _stats(gql, world.suite.id, scope={"raceId": str(race.id)})

    # then only the race's results count; problems it did not run have no attempts and null figures
    expected = _expected(raced)
    by_position = {e["node"]["position"]: e["node"] for e in got["edges"]}
    assert by_position[0]["attempts"] == expected.loc[str(problems[0].id), "attempts"]
    assert by_position[5]["attempts"] == 0
    assert by_position[5]["passRate"] is None and by_position[5]["medianScore"] is None
    assert raw


def test_problem_stats_ordered_by_any_figure_with_nulls_last_and_cursors(runtime: Runtime, gql: Gql) -> None:
    # given problems with and without a discrimination (a race ran only two of them)
    world, problems, _ = _world(runtime, n=4)

    # when paging two at a time through every order, forward and backward
    for field in ("ATTEMPTS", "PASS_RATE", "MEAN_SCORE", "MEDIAN_SCORE", "MEAN_DURATION", "TIMEOUT_RATE",
                  "DISCRIMINATION", "POSITION"):  # fmt: skip
        for direction in ("ASC", "DESC"):
            order = {"field": field, "direction": direction}
            scope = {"until": (BASE + timedelta(days=2)).isoformat()}  # two versions: no discrimination
            whole = [e["node"] for e in _stats(gql, world.suite.id, order=order, scope=scope)["edges"]]
            paged, after = [], None
            while True:
                page = gql(SUITE_STATS, {"id": str(world.suite.id), "order": order, "scope": scope,
                                         "first": 2,
                                         "after": after})["suite"]["problemStats"]  # fmt: skip
                paged += [e["node"] for e in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            backward = gql(
                SUITE_STATS, {"id": str(world.suite.id), "order": order, "scope": scope, "last": 4}
            )
            tail = [e["node"] for e in backward["suite"]["problemStats"]["edges"]]

            # then
            assert paged == whole and tail == whole[-4:]
            key = {"ATTEMPTS": "attempts", "PASS_RATE": "passRate", "MEAN_SCORE": "meanScore",
                   "MEDIAN_SCORE": "medianScore", "MEAN_DURATION": "meanDurationSeconds",
                   "TIMEOUT_RATE": "timeoutRate", "DISCRIMINATION": "discrimination",
                   "POSITION": "position"}[field]  # fmt: skip
            values = [n[key] for n in whole]
            present = [v for v in values if v is not None]
            assert values == present + [None] * (len(values) - len(present))  # nulls last either way
            assert present == sorted(present, reverse=direction == "DESC")
    assert len(problems) == 6


def test_problem_stats_on_a_problem_and_the_statement_count_is_flat(runtime: Runtime, debug_gql: Gql) -> None:
    # given
    world, problems, _ = _world(runtime, n=3)
    document = "query ($id: ID!) { suite(id: $id) { problems(first: 100) { edges { node { stats { attempts discrimination } } } } problemStats(first: 100) { edges { node { meanScore } } } } }"  # noqa: E501

    # when the data grows tenfold
    small = debug_gql(document, {"id": str(world.suite.id)}, errors=True)
    runtime.db.call(
        _seed, suite_id=world.suite.id, problems=problems, validators=world.validators, start=100, n=27
    )
    large = debug_gql(document, {"id": str(world.suite.id)}, errors=True)

    # then the statements stay the same (one loader batch serves the connection and every Problem.stats)
    assert "errors" not in large, large["errors"]
    assert small["extensions"]["sql"]["statements"] == large["extensions"]["sql"]["statements"]
    attempts = [e["node"]["stats"]["attempts"] for e in large["data"]["suite"]["problems"]["edges"]]
    assert len(attempts) == 6 and min(attempts) > 0


def test_problem_stats_of_one_problem_by_its_node(runtime: Runtime, gql: Gql) -> None:
    # given
    world, problems, raw = _world(runtime)
    listed = {e["node"]["position"]: e["node"] for e in _stats(gql, world.suite.id)["edges"]}
    global_id = gql("query ($id: ID!) { suite(id: $id) { problems(first: 1) { edges { node { id } } } } }",
                    {"id": str(world.suite.id)})["suite"]["problems"]["edges"][0]["node"]["id"]  # fmt: skip

    # when
    one = gql(PROBLEM_STATS, {"id": global_id})["node"]

    # then
    assert one["position"] == 0
    assert (
        one["stats"]["attempts"]
        == listed[0]["attempts"]
        == _expected(raw).loc[str(problems[0].id), "attempts"]
    )
    assert one["stats"]["discrimination"] == listed[0]["discrimination"]


def test_problem_stats_refuse_an_empty_window(runtime: Runtime, gql: Gql) -> None:
    # given
    world, _, _ = _world(runtime, n=1)

    # when
    scope = {"since": BASE.isoformat(), "until": BASE.isoformat()}
    body = gql(SUITE_STATS, {"id": str(world.suite.id), "scope": scope}, errors=True)

    # then
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"
