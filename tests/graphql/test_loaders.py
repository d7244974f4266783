"""No N+1: the statements a query costs depend on its shape, not on how many rows it returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Miner,
    ProblemResult,
    Race,
    RaceQualifier,
    WorkItem,
)
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


# Each loader is reached by one path: a loader reached by two paths (say validators from runs and from
# the variance) batches once per path or once in all, as the threads answering the paths finish: the
# count then depends on timing (by at most the number of paths), never on rows.
DEEP_RACES_QUERY = """
query {
  races(first: 10) {
    edges {
      node {
        raceNumber suite { suiteId } drawnProblems { position }
        winner { raceRank raceScore }
        qualifiers(first: 10) {
          edges {
            node {
              raceRank raceScore weight { units }
              agentVersion { agentVersionId agent { name } raceEntries { raceRank } }
              miner { hotkey raceSelection { locked } }
              runs { validatorScore validator { hotkey } }
            }
          }
        }
        weights { minerHotkey units share }
        validatorVariance { pairCount validators { validatorHotkey } }
      }
    }
  }
}
"""


def _seed_races(
    session: Session,
    *,
    suite_id: int,
    validators: list[str],
    problems: list[Any],
    start: int,
    races: int,
    field: int,
) -> None:
    """``races`` completed races of ``field`` qualifiers each, every qualifier with two race runs (rows
    written directly; the services' cycle is tested in test_races.py)."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    tables: dict[str, list[Any]] = {
        k: [] for k in ("miners", "agents", "versions", "races", "entries", "work", "runs")
    }
    for r in range(start, start + races):
        at = base + timedelta(days=r)
        race = Race(
            race_number=r + 1,
            suite_id=suite_id,
            status="RACE_COMPLETE",
            max_qualifiers=field,
            problem_count=2,
            required_successes=2,
            max_attempts=2,
            created_at=at,
            qualifying_closes_at=at,
            race_started_at=at,
            race_deadline_at=at,
            race_completed_at=at,
            seed_commitment="0" * 64,
            secret="1" * 64,
            secret_revealed=True,
            problem_ids=[str(p.id) for p in problems[:2]],
            qualifier_count=field,
            scored_count=field,
            updated_at=at,
        )
        tables["races"].append(race)
        for q in range(field):
            hotkey = f"racer-{r:03d}-{q:03d}"
            agent = Agent(miner_hotkey=hotkey, name=f"racer-{r}-{q}", created_at=at)
            version = AgentVersion(
                agent_id=agent.id,
                version_number=1,
                suite_id=suite_id,
                state="ELIGIBLE",
                submitted_at=at,
                eligible_at=at,
                final_score=0.5,
                code_key=f"agents/racer-{r}-{q}.py",
                code_sha256="0" * 64,
                code_size=1,
            )
            if q == 0:
                race.winner_agent_version_id, race.winner_score = version.id, 0.9
            work = WorkItem(
                agent_version_id=version.id,
                suite_id=suite_id,
                race_id=race.id,
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
            tables["entries"].append(
                RaceQualifier(
                    race_id=race.id,
                    agent_version_id=version.id,
                    miner_hotkey=hotkey,
                    qualification_type="SCORED",
                    qualifying_score=0.5,
                    entered_at=at,
                    race_score=0.9 - q / 100,
                    race_rank=q + 1,
                    finished_at=at,
                )
            )
            tables["runs"] += [
                EvaluationRun(
                    work_item_id=work.id,
                    agent_version_id=version.id,
                    validator_hotkey=validator,
                    suite_id=suite_id,
                    race_id=race.id,
                    status="SUCCESS",
                    claimed_at=at,
                    lease_expires_at=at,
                    completed_at=at,
                    validator_score=0.9 - q / 100,
                    is_included=True,
                )
                for validator in validators[:2]
            ]
    for rows in tables.values():  # parents first: the models declare no relationships to order inserts by
        session.add_all(rows)
        session.flush()


def test_deep_races_cost_the_same_statements_for_1_and_6_races(runtime: Runtime, debug_gql: Gql) -> None:
    # given one race of two qualifiers
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    seed = {"suite_id": world.suite.id, "validators": world.validators, "problems": problems}
    runtime.db.call(_seed_races, start=0, races=1, field=2, **seed)

    # when the same deep query runs over it, then over five more races of six qualifiers
    debug_gql(DEEP_RACES_QUERY, errors=True)  # warm: the pool's first connections are not the query's
    small = debug_gql(DEEP_RACES_QUERY, errors=True)
    runtime.db.call(_seed_races, start=1, races=5, field=6, **seed)
    large = debug_gql(DEEP_RACES_QUERY, errors=True)

    # then the answers grew and the statements did not
    assert "errors" not in small and "errors" not in large, large.get("errors")
    assert len(small["data"]["races"]["edges"]) == 1 and len(large["data"]["races"]["edges"]) == 6
    newest = large["data"]["races"]["edges"][0]["node"]
    assert newest["raceNumber"] == 6 and len(newest["qualifiers"]["edges"]) == 6
    entry = newest["qualifiers"]["edges"][1]["node"]
    assert entry["raceRank"] == 2 and {r["validator"]["hotkey"] for r in entry["runs"]} == set(
        world.validators[:2]
    )
    assert newest["weights"][0]["minerHotkey"] is None and newest["validatorVariance"]["pairCount"] == 6
    assert small["extensions"]["sql"]["statements"] == large["extensions"]["sql"]["statements"]
