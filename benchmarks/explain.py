"""The statements behind each hot read, captured at the driver, and their EXPLAIN ANALYZE plans.

The app is built in this process (``oro_graph.app.create_app``) over the bench database; every
statement it sends while answering one request is recorded with its parameters, then explained
on a separate connection (twice: the second, warm plan is kept).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import psycopg
from sqlalchemy import event

from benchmarks import config, queries
from benchmarks.datasets import Dataset


def _explain(database: str, statement: str, params: Any) -> str:
    with psycopg.connect(config.dsn(database)) as conn:
        text = ""
        for _ in range(2):
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, params).fetchall()
            text = "\n".join(_short_line(r[0]) for r in rows)
        conn.rollback()
    return text


def _short_line(line: str, limit: int = 240) -> str:
    return line if len(line) <= limit else line[:limit] + " ..."


def _short(statement: str, limit: int = 900) -> str:
    one = " ".join(statement.split())
    return one if len(one) <= limit else one[:limit] + " ..."


def capture(dataset: Dataset) -> tuple[dict[str, str], dict[str, Any]]:
    """Plans (title -> text) and per-request statement counts of the hot reads on ``dataset``."""
    from fastapi.testclient import TestClient

    from oro_graph.app import create_app
    from oro_graph.settings import load_settings

    settings = load_settings(
        database_url=config.sqlalchemy_url(dataset.database),
        secret_key="bench-secret-key-not-for-production-0123456789",
        data_dir=tempfile.mkdtemp(prefix="oro_bench_explain_"),
        rate_limit_per_minute=100_000_000,
        redis_url=None,
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

    plans: dict[str, str] = {}
    stats: dict[str, Any] = {}
    requests = {
        "graphql deep leaderboard": ("POST", "/graphql", {"query": queries.DEEP_LEADERBOARD}),
        "REST GET /v1/public/leaderboard": ("GET", queries.REST_LEADERBOARD, None),
        "graphql runs page (first)": (
            "POST",
            "/graphql",
            {"query": queries.RUNS_PAGE, "variables": {"first": 100}},
        ),
    }
    with TestClient(app) as client:
        for title, (method, path, body) in requests.items():
            client.request(method, path, json=body)  # warm: pools, caches, prepared plans
            seen.clear()
            t0 = time.perf_counter()
            response = client.request(method, path, json=body)
            elapsed = time.perf_counter() - t0
            ok = response.status_code == 200 and "errors" not in response.text[:200]
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
                        plan = _explain(dataset.database, statement, params)
                    except psycopg.Error as exc:
                        plan = f"(could not explain: {exc})"
                    plans[key] = _short(statement) + "\n\n" + plan
    app.state.runtime.close()
    plans["raw SQL deep leaderboard (json_agg, one statement)"] = (
        _short(queries.RAW_DEEP_LEADERBOARD)
        + "\n\n"
        + _explain(dataset.database, queries.RAW_DEEP_LEADERBOARD, None)
    )
    return plans, stats
