"""No N+1: the statements a query costs depend on its shape, not on how many rows it returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from oro_graph.models import Agent, AgentVersion, EvaluationRun, Miner, ProblemResult, WorkItem
from oro_graph.runtime import Runtime
from oro_graph.services import suites
from tests.factories import make_world
from tests.graphql.conftest import Gql

DEEP_LEADERBOARD_QUERY = """
query ($first: Int!) {
  leaderboard(first: $first) {
    edges {
      node {
        rank
        agentVersion {
          finalScore
          agent { name miner { hotkey } }
          runs(first: 10) {
            edges {
              node {
                status validatorScore
                validator { name hotkey }
                problemResults(first: 10) { edges { node { status score problem { position } } } }
              }
            }
          }
        }
      }
    }
  }
}
"""


def _seed_board(
    session: Session, *, suite_id: int, validators: list[str], problems: list[Any], start: int, n: int
) -> None:
    """``n`` eligible versions, each with two successful runs reporting two problems.

    The rows are written directly.
    """
    base = datetime(2025, 1, 1, tzinfo=UTC)
    tables: dict[str, list[Any]] = {
        "miners": [],
        "agents": [],
        "versions": [],
        "work": [],
        "runs": [],
        "results": [],
    }
    for i in range(start, start + n):
        at = base + timedelta(minutes=i)
        hotkey = f"miner-{i:04d}"
        agent = Agent(miner_hotkey=hotkey, name=f"agent-{i:04d}", created_at=at)
        version = AgentVersion(
            agent_id=agent.id,
            version_number=1,
            suite_id=suite_id,
            state="ELIGIBLE",
            submitted_at=at,
            eligible_at=at,
            final_score=(i % 97) / 100,
            code_key=f"agents/{i}.py",
            code_sha256="0" * 64,
            code_size=1,
        )
        work = WorkItem(
            agent_version_id=version.id,
            suite_id=suite_id,
            required_successes=2,
            included_successes=2,
            is_closed=True,
            created_at=at,
            closed_at=at,
        )
        tables["miners"].append(Miner(hotkey=hotkey, created_at=at, last_submitted_at=at))
        tables["agents"].append(agent)
        tables["versions"].append(version)
        tables["work"].append(work)
        for validator in validators[:2]:
            run = EvaluationRun(
                work_item_id=work.id,
                agent_version_id=version.id,
                validator_hotkey=validator,
                suite_id=suite_id,
                status="SUCCESS",
                claimed_at=at,
                lease_expires_at=at,
                completed_at=at,
                validator_score=0.5,
                is_included=True,
            )
            tables["runs"].append(run)
            tables["results"] += [
                ProblemResult(run_id=run.id, problem_id=p.id, status="SUCCESS", score=0.5, updated_at=at)
                for p in problems[:2]
            ]
    for rows in tables.values():  # parents first: the models declare no relationships to order inserts by
        session.add_all(rows)
        session.flush()


def _deep(debug_gql: Gql, first: int) -> tuple[dict[str, Any], int]:
    body = debug_gql(DEEP_LEADERBOARD_QUERY, {"first": first}, errors=True)
    assert "errors" not in body, body["errors"]
    return body["data"], body["extensions"]["sql"]["statements"]


def test_deep_leaderboard_costs_the_same_statements_for_10_and_100_entries(
    runtime: Runtime, debug_gql: Gql
) -> None:
    # given
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    seed = {"suite_id": world.suite.id, "validators": world.validators, "problems": problems}
    runtime.db.call(_seed_board, start=0, n=10, **seed)

    # when
    small, small_statements = _deep(debug_gql, 100)
    runtime.db.call(_seed_board, start=10, n=90, **seed)
    large, large_statements = _deep(debug_gql, 100)

    # then
    assert len(small["leaderboard"]["edges"]) == 10
    assert len(large["leaderboard"]["edges"]) == 100
    entry = large["leaderboard"]["edges"][-1]["node"]
    assert entry["rank"] == 100
    runs = entry["agentVersion"]["runs"]["edges"]
    assert {r["node"]["validator"]["hotkey"] for r in runs} == set(world.validators[:2])
    assert [len(r["node"]["problemResults"]["edges"]) for r in runs] == [2, 2]
    assert entry["agentVersion"]["agent"]["miner"]["hotkey"].startswith("miner-")
    assert small_statements == large_statements
    assert small_statements <= 20  # six batches: board, miners, runs, validators (3), results


def test_debug_extension_is_off_by_default(runtime: Runtime, gql: Gql) -> None:
    # given
    make_world(runtime)

    # when
    body = gql("query { currentSuite { suiteId } }", errors=True)

    # then
    assert "sql" not in body.get("extensions", {})
    assert body["extensions"]["cost"]["requested"] == 1
