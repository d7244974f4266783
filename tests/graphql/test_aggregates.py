"""`aggregates`: submissions and runs per UTC day and the board's score histogram, one statement each."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlmodel import Session

from oro_graph.models import Agent, AgentVersion, EvaluationRun, Miner, WorkItem
from oro_graph.runtime import Runtime
from tests.factories import make_world
from tests.graphql.conftest import Gql

BASE = datetime(2026, 3, 1, tzinfo=UTC)

SUBMISSIONS = """
query ($since: DateTime, $until: DateTime) {
  aggregates { submissionsPerDay(since: $since, until: $until) { day count } }
}
"""
RUNS = """
query ($since: DateTime, $until: DateTime) {
  aggregates {
    runsPerValidatorPerDay(since: $since, until: $until) { day validatorHotkey runs successes failures stale }
  }
}
"""
HISTOGRAM = "query { aggregates { scoreHistogram { suiteId total bins { lower upper count } } } }"

SCORES = [0.0, 0.05, 0.1, 0.15, 0.149, 0.5, 0.5, 0.95, 0.999, 1.0, 0.3, 0.7]
STATUSES = ["SUCCESS", "FAILED", "TIMED_OUT", "STALE", "SUCCESS"]


def _seed(session: Session, *, suite_id: int, validators: list[str], n: int, offset: int = 0) -> list[dict]:
    """``n`` versions submitted at odd hours across days (23:30 and 00:30 straddle midnight), the first
    ELIGIBLE ones scored from SCORES, each with one run per validator in a cycle of statuses."""
    raw = []
    for i in range(offset, offset + n):
        at = BASE + timedelta(hours=11 * i, minutes=30)
        hotkey = f"miner-{i:03d}"
        score = SCORES[i % len(SCORES)]
        eligible = i % 3 != 2
        agent = Agent(miner_hotkey=hotkey, name=f"a{i}", created_at=at)
        version = AgentVersion(
            agent_id=agent.id,
            version_number=1,
            suite_id=suite_id,
            state="ELIGIBLE" if eligible else "RUNNING",
            submitted_at=at,
            eligible_at=at if eligible else None,
            final_score=score if eligible else None,
            code_key="k",
            code_sha256="0" * 64,
            code_size=1,
        )
        work = WorkItem(agent_version_id=version.id, suite_id=suite_id, required_successes=2, created_at=at)
        session.add(Miner(hotkey=hotkey, created_at=at))
        session.flush()
        session.add(agent)
        session.flush()
        session.add(version)
        session.flush()
        session.add(work)
        session.flush()
        for j, validator in enumerate(validators):
            status = STATUSES[(i + j) % len(STATUSES)]
            claimed = at + timedelta(minutes=47 * j)
            session.add(
                EvaluationRun(
                    work_item_id=work.id,
                    agent_version_id=version.id,
                    validator_hotkey=validator,
                    suite_id=suite_id,
                    status=status,
                    claimed_at=claimed,
                    lease_expires_at=claimed,
                )
            )
            raw.append(
                {"kind": "run", "day": claimed.date().isoformat(), "hotkey": validator, "status": status}
            )
        raw.append({"kind": "version", "day": at.date().isoformat(), "score": score if eligible else None})
    session.flush()
    return raw


def one_statement(runtime: Runtime) -> int:
    """What one SELECT in its own transaction counts at the driver: SQLite's BEGIN is a statement too."""
    return 2 if runtime.db.engine.dialect.name == "sqlite" else 1


def _statements(debug_gql: Gql, document: str, variables: dict | None = None) -> tuple[dict, int]:
    body = debug_gql(document, variables or {}, errors=True)
    assert "errors" not in body, body["errors"]
    return body["data"]["aggregates"], body["extensions"]["sql"]["statements"]


def test_submissions_per_day_match_the_raw_rows_in_one_statement(runtime: Runtime, debug_gql: Gql) -> None:
    # given 30 versions over about two weeks
    world = make_world(runtime)
    raw = runtime.db.call(_seed, suite_id=world.suite.id, validators=world.validators, n=30)
    window = {"since": BASE.isoformat(), "until": (BASE + timedelta(days=60)).isoformat()}

    # when
    data, statements = _statements(debug_gql, SUBMISSIONS, window)

    # then
    expected = Counter(r["day"] for r in raw if r["kind"] == "version")
    assert {d["day"]: d["count"] for d in data["submissionsPerDay"]} == dict(expected)
    assert [d["day"] for d in data["submissionsPerDay"]] == sorted(expected)
    assert statements == one_statement(runtime)


def test_submissions_window_is_half_open(runtime: Runtime, gql: Gql) -> None:
    # given
    world = make_world(runtime)
    runtime.db.call(_seed, suite_id=world.suite.id, validators=[], n=3)  # at 00:30, 11:30, 22:30 on day 1

    # when the window ends exactly at the third submission
    until = BASE + timedelta(hours=22, minutes=30)
    rows = gql(SUBMISSIONS, {"since": BASE.isoformat(), "until": until.isoformat()})["aggregates"]

    # then
    assert rows["submissionsPerDay"] == [{"day": "2026-03-01", "count": 2}]


def test_runs_per_validator_per_day_match_the_raw_rows_in_one_statement(
    runtime: Runtime, debug_gql: Gql
) -> None:
    # given
    world = make_world(runtime)
    raw = runtime.db.call(_seed, suite_id=world.suite.id, validators=world.validators, n=20)
    window = {"since": BASE.isoformat(), "until": (BASE + timedelta(days=60)).isoformat()}

    # when
    data, statements = _statements(debug_gql, RUNS, window)

    # then
    expected: dict[tuple[str, str], Counter] = {}
    for r in raw:
        if r["kind"] == "run":
            expected.setdefault((r["day"], r["hotkey"]), Counter())[r["status"]] += 1
    got = {(d["day"], d["validatorHotkey"]): d for d in data["runsPerValidatorPerDay"]}
    assert set(got) == set(expected)
    for key, counts in expected.items():
        row = got[key]
        assert row["runs"] == sum(counts.values())
        assert row["successes"] == counts["SUCCESS"]
        assert row["failures"] == counts["FAILED"] + counts["TIMED_OUT"]
        assert row["stale"] == counts["STALE"]
    assert list(got) == sorted(got)
    assert statements == one_statement(runtime)


def test_score_histogram_matches_numpy_in_one_statement(runtime: Runtime, debug_gql: Gql) -> None:
    # given the board's scores include the bins' edges (0.05, 0.1, 0.15, 1.0)
    world = make_world(runtime)
    raw = runtime.db.call(_seed, suite_id=world.suite.id, validators=[], n=36)

    # when
    data, statements = _statements(debug_gql, HISTOGRAM)

    # then
    scores = [r["score"] for r in raw if r["kind"] == "version" and r["score"] is not None]
    # edges i/20 (0.15 is the bin [0.15, 0.2)); numpy's own linspace edges are an ulp off (3 * 0.05),
    # and its last bin is closed, as the graph's is
    expected, edges = np.histogram(scores, bins=np.arange(21) / 20)
    histogram = data["scoreHistogram"]
    assert histogram["suiteId"] == world.suite.id
    assert [b["count"] for b in histogram["bins"]] == expected.tolist()
    assert [b["lower"] for b in histogram["bins"]] == edges[:-1].tolist()
    assert histogram["total"] == len(scores)
    assert statements == one_statement(runtime)


def test_score_histogram_without_a_board_is_empty_bins(runtime: Runtime, gql: Gql) -> None:
    # given a suite and nothing eligible
    make_world(runtime)

    # when
    histogram = gql(HISTOGRAM)["aggregates"]["scoreHistogram"]

    # then
    assert histogram["total"] == 0 and len(histogram["bins"]) == 20


def test_a_window_longer_than_a_year_is_refused(runtime: Runtime, gql: Gql) -> None:
    # when
    body = gql(
        SUBMISSIONS,
        {"since": BASE.isoformat(), "until": (BASE + timedelta(days=400)).isoformat()},
        errors=True,
    )

    # then
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"
    assert "366 days" in body["errors"][0]["message"]
