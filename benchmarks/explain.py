"""The statements behind each hot request, captured at the driver, and their EXPLAIN ANALYZE plans.

The app is built in this process (``oro_graph.app.create_app``) over a bench database; every
statement it sends while answering one request is recorded with its parameters, then explained
on a separate connection inside a transaction that is rolled back (twice: the warm plan is kept).
"""

from __future__ import annotations

import re
import tempfile
import time
from typing import Any

import psycopg
from sqlalchemy import event

from benchmarks import config, queries
from benchmarks.datasets import Dataset

Request = tuple[str, str, Any]  # method, path, JSON body


def _short_line(line: str, limit: int = 240) -> str:
    return line if len(line) <= limit else line[:limit] + " ..."


def _short(statement: str, limit: int = 900) -> str:
    one = " ".join(statement.split())
    return one if len(one) <= limit else one[:limit] + " ..."


def _explain(database: str, statement: str, params: Any) -> str:
    """The warm plan of ``statement``; one with ``$1`` placeholders (the compiled graph reads, sent
    through ``RawCursor`` by ``oro_graph.graphql.sqlcompile.driver``) is explained the same way."""
    with psycopg.connect(config.dsn(database)) as conn:
        text = ""
        raw = re.search(r"\$\d", statement) is not None
        for _ in range(2):
            query = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement
            with psycopg.RawCursor(conn) if raw else conn.cursor() as cursor:
                rows = cursor.execute(query, params).fetchall()
            text = "\n".join(_short_line(r[0]) for r in rows)
        conn.rollback()
    return text


INCLUDED_PROBLEM_STATS = """
query IncludedProblemStats {
  currentSuite {
    problemStats(first: 100, scope: {includedOnly: true}, orderBy: {field: MEDIAN_SCORE, direction: DESC}) {
      edges { node { position attempts passRate medianScore discrimination } }
    }
  }
}
"""

RACE_PROBLEM_STATS = """
query RaceProblemStats($race: UUID!) {
  currentSuite {
    problemStats(first: 100, scope: {raceId: $race}, orderBy: {field: DISCRIMINATION, direction: DESC}) {
      edges { node { position attempts passRate medianScore discrimination } }
    }
  }
}
"""


def _latest_race(database: str) -> str | None:
    """The race with the most runs (a race-scoped read worth measuring), if the dataset has races."""
    with psycopg.connect(config.dsn(database)) as conn:
        row = conn.execute(
            "SELECT race_id FROM evaluationrun WHERE race_id IS NOT NULL "
            "GROUP BY race_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    return str(row[0]) if row else None


def capture(dataset: Dataset, loop_database: str | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Plans (title -> text) and statement counts of the hot reads on ``dataset``, and of one
    validator claim on ``loop_database`` when given."""
    reads: dict[str, Request] = {
        "graphql deep leaderboard": ("POST", "/graphql", {"query": queries.DEEP_LEADERBOARD}),
        "REST GET /v1/public/leaderboard": ("GET", queries.REST_LEADERBOARD, None),
        "graphql runs page (first)": (
            "POST",
            "/graphql",
            {"query": queries.RUNS_PAGE, "variables": {"first": 100}},
        ),
        # issue 16: each filtered connection and the per-problem statistics
        "graphql leaderboard filtered (score, category mean)": (
            "POST",
            "/graphql",
            {"query": queries.FILTERED_LEADERBOARD},
        ),
        "graphql suite versions filtered, by final score (nulls last)": (
            "POST",
            "/graphql",
            {"query": queries.FILTERED_VERSIONS},
        ),
        "graphql validators filtered, by last seen (nulls last)": (
            "POST",
            "/graphql",
            {"query": queries.FILTERED_VALIDATORS},
        ),
        "graphql problem results filtered (status, category)": (
            "POST",
            "/graphql",
            {"query": queries.FILTERED_RESULTS},
        ),
        "graphql suite problem statistics": ("POST", "/graphql", {"query": queries.PROBLEM_STATS}),
        "graphql suite problem statistics, included runs": (
            "POST",
            "/graphql",
            {"query": INCLUDED_PROBLEM_STATS},
        ),
    }
    race = _latest_race(dataset.database)
    if race is not None:
        reads["graphql race problem statistics"] = (
            "POST",
            "/graphql",
            {"query": RACE_PROBLEM_STATS, "variables": {"race": race}},
        )
    plans, stats = _capture(dataset.database, reads)
    raw = queries.RAW_DEEP_LEADERBOARD
    plans["raw SQL deep leaderboard (json_agg, one statement)"] = (
        _short(raw) + "\n\n" + _explain(dataset.database, raw, None)
    )
    if loop_database:
        claim: dict[str, Request] = {
            "REST POST /v1/validator/work/claim": ("POST", "/v1/validator/work/claim", {})
        }
        more_plans, more_stats = _capture(loop_database, claim, signed=True)
        plans.update(more_plans)
        stats.update(more_stats)
    return plans, stats


def _capture(
    database: str, requests: dict[str, Request], *, signed: bool = False
) -> tuple[dict[str, str], dict[str, Any]]:
    from fastapi.testclient import TestClient
    from substrateinterface import Keypair

    from oro_graph.app import create_app
    from oro_graph.auth import sign_headers
    from oro_graph.settings import load_settings

    settings = load_settings(
        database_url=config.sqlalchemy_url(database),
        secret_key="bench-secret-key-not-for-production-0123456789",
        data_dir=tempfile.mkdtemp(prefix="oro_bench_explain_"),
        rate_limit_per_minute=100_000_000,
        redis_url=None,
        response_cache=False,  # every request executes: its statements are what is explained
        graphql_time_budget_seconds=120,  # a slow read is measured, not stopped
    )
    app = create_app(settings, migrate=False)
    engine = app.state.runtime.db.engine
    seen: list[tuple[str, Any, float]] = []
    starts: list[float] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        starts.append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seen.append((statement, params, time.perf_counter() - starts.pop()))

    keypair = Keypair.create_from_uri("//bench0")  # a validator of the loop database
    plans: dict[str, str] = {}
    stats: dict[str, Any] = {}
    with TestClient(app) as client:
        for title, (method, path, body) in requests.items():
            if not signed:  # a claim writes: it is sent once
                client.request(method, path, json=body)  # warm: pools, caches, prepared plans
            seen.clear()
            headers = sign_headers(keypair) if signed else None
            t0 = time.perf_counter()
            response = client.request(method, path, json=body, headers=headers)
            elapsed = time.perf_counter() - t0
            ok = response.status_code in (200, 204) and "errors" not in response.text[:200]
            stats[title] = {
                "ok": ok,
                "status": response.status_code,
                "statements": len(seen),
                "sql_ms": round(sum(s for _, _, s in seen) * 1000, 2),
                "request_ms": round(elapsed * 1000, 2),
                "bytes": len(response.content),
            }
            if not ok:
                stats[title]["error"] = response.text[:300]
                continue
            for i, (statement, params, seconds) in enumerate(list(seen)):
                if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    key = f"{title}, statement {i + 1} of {len(seen)} ({seconds * 1000:.1f} ms in the app)"
                    try:
                        plan = _explain(database, statement, params)
                    except psycopg.Error as exc:
                        plan = f"(could not explain: {exc})"
                    plans[key] = _short(statement) + "\n\n" + plan
    app.state.runtime.close()
    return plans, stats


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.explain [--size large] [--out FILE]``: build (or reuse) a dataset of that
    size, then print each hot read's statement count and times and write every plan to FILE."""
    import argparse
    import json

    from benchmarks import datasets

    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain", description=main.__doc__)
    parser.add_argument("--size", default="large", choices=sorted(config.SIZES))
    parser.add_argument("--out", default="explain.json", help="the plans and figures as JSON")
    parser.add_argument("--database", help="an existing database to explain instead, used as it is")
    args = parser.parse_args(argv)
    dataset = datasets.existing(args.database) if args.database else datasets.ensure(config.SIZES[args.size])
    plans, stats = capture(dataset)
    for title, figures in stats.items():
        print(
            f"{title}: {figures['statements']} statements, {figures['sql_ms']} ms of SQL, "
            f"{figures['request_ms']} ms in all{'' if figures['ok'] else ' (FAILED)'}"
        )
    with open(args.out, "w") as out:
        json.dump(
            {"stats": stats, "plans": plans, "counts": datasets.counts(dataset.database)}, out, indent=1
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
