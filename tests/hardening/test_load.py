"""Mixed load from locust against two server processes on PostgreSQL sharing Redis: the smoke
version of ``python -m benchmarks load`` (benchmarks/load/). Validators claim, heartbeat, report and
complete with real signatures while analysts page the graph and readers poll the public REST
paths; nothing answers 5xx, nothing fails but the protocol's own 204/409 on claim, and every
lifecycle invariant counts zero afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from psycopg import sql

from benchmarks import datasets
from benchmarks.load import runner

SMOKE = runner.LoadOptions(  # its own run database, so two test sessions at once do not collide
    seconds=15, users=12, validators=4, demo=runner.SMOKE_DEMO, database=f"load_smoke_run_{os.getpid()}"
)
# What each request type may answer; anything else fails the run.
ALLOWED = {"POST claim": {"200", "204", "409"}}
EXPECTED = {
    "POST claim",
    "POST heartbeat",
    "POST progress",
    "POST complete",
    "gql leaderboard",  # an analyst opens with the validators and the board; pages come at random
    "gql validators reliability",
    "GET /v1/public/leaderboard",
    "GET /v1/public/top",
}


@pytest.fixture
def smoke_run(pg_database: str, redis_url: str) -> Iterator[runner.LoadReport]:
    try:
        yield runner.run(SMOKE, log=lambda _: None)
    finally:
        with datasets.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SMOKE.database))
            )


@pytest.mark.slow
@pytest.mark.postgres
def test_mixed_load_on_two_processes_answers_everything_and_keeps_the_invariants(
    smoke_run: runner.LoadReport,
) -> None:
    report = smoke_run
    described = runner.describe(report)
    assert report.server_errors == 0, described
    assert report.problems() == [], described
    assert EXPECTED <= set(report.requests), described
    for name, figures in report.requests.items():
        assert set(figures["statuses"]) <= ALLOWED.get(name, {"200"}), (name, figures["statuses"])
    assert report.invariants == dict.fromkeys(report.invariants, 0) and len(report.invariants) == 9
    assert report.summary["outcomes"].get("completed_success", 0) > 0, described


def _report(statuses: dict[str, int], failures: int = 0, internal: int = 0) -> runner.LoadReport:
    figures = {"requests": sum(statuses.values()), "failures": failures, "statuses": statuses}
    return runner.LoadReport(
        runner.LoadOptions(),
        summary={
            "requests": {"GET /v1/public/top": figures},
            "total": {"requests": figures["requests"], "failures": failures},
            "errors": [{"name": "GET /v1/public/top", "error": "HTTP 500", "occurrences": failures}],
            "exceptions": [],
            "outcomes": {"completed_success": 1, "graphql_internal_errors": internal},
        },
        invariants={"over_claimed_work_items": 0},
    )


def test_a_load_run_with_a_500_or_a_failure_does_not_pass() -> None:
    assert _report({"200": 10}).problems() == []
    assert _report({"200": 9, "500": 1}, failures=1).problems()[0].startswith("1 server errors")
    assert _report({"200": 9, "503": 1}, failures=1).server_errors == 1
    assert "failed requests" in _report({"200": 10, "404": 1}, failures=1).problems()[0]
    assert (
        _report({"200": 10}, failures=1, internal=1).server_errors == 1
    )  # GraphQL's 200 + INTERNAL_SERVER_ERROR
