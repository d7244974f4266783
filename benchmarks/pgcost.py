"""What our compiled statements cost PostgreSQL next to the raw SQL: ``python -m benchmarks.pgcost``.

Throughput through the server mixes Python, HTTP and the database; this measures the database side
alone, for the deep leaderboard and the per-version page, ours (the statement the compiled path sends,
captured at ``driver.run`` from the app built in this process) against the raw SQL of
``benchmarks/queries.py`` (``RAW_DEEP_LEADERBOARD``, ``RAW_VERSION_PAGE``):

- **backend CPU per run**: one connection runs the statement prepared for ``--cpu-seconds``; the
  backend process's utime+stime (``/proc/PID/stat``) before and after, divided by the runs. Ours and
  raw alternate for ``--rounds`` rounds and the lowest of each is kept (interference only adds);
- **EXPLAIN ANALYZE**: the lowest execution time of ``--explains`` explained runs, and the plan;
- **pgbench**: each statement as a script (``-M prepared``, ``--clients`` clients, ``--seconds``
  each, ours and raw in turns twice): transactions per second and the ratio ours / raw.

Every connection has the server's session settings (``oro_graph.db.SESSION_SETTINGS``); the raw
statements are also measured with PostgreSQL's defaults (how the harness' raw SQL limit runs), and
ours with ``random_page_cost`` at its default, to show what that setting does.
``--writes`` adds the validator's claim, heartbeat and progress statements (captured from signed
calls on the loop database) planned with both ``random_page_cost`` values: the same plan cannot be
slower. Uses ``BENCH_DB_PREFIX`` like the harness.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import config, datasets, queries
from benchmarks.servers import cpu_seconds
from oro_graph.db import SESSION_SETTINGS

SECRET = "bench-secret-key-not-for-production-0123456789"
DEFAULT_PAGE_COST = "4"


def _settings(overrides: dict[str, str] | None = None) -> dict[str, str]:
    return {**SESSION_SETTINGS, **(overrides or {})}


@contextmanager
def _connection(database: str, settings: dict[str, str]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(config.dsn(database), autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(f"SET {name} = {value}")
        yield conn


# Ours: the statements the compiled path sends -------------------------------------------------


def captured(database: str, version_id: str) -> dict[str, tuple[str, list[Any]]]:
    """Our deep leaderboard's and version page's statements (text, values) as ``driver.run`` sends them."""
    from fastapi.testclient import TestClient

    from oro_graph.app import create_app
    from oro_graph.graphql.sqlcompile import driver
    from oro_graph.settings import load_settings

    settings = load_settings(
        database_url=config.sqlalchemy_url(database),
        secret_key=SECRET,
        data_dir=tempfile.mkdtemp(prefix="oro_bench_pgcost_"),
        rate_limit_per_minute=100_000_000,
        redis_url=None,
        response_cache=False,
        race_scheduler=False,  # it would write (a race): the dataset's counts, its cache stamp, would change
    )
    seen: list[tuple[str, list[Any]]] = []
    real = driver.run

    def run(session: Any, prepared: Any, params: dict[str, Any]) -> Any:
        seen.append((prepared.sql, prepared.values(params)))
        return real(session, prepared, params)

    driver.run = run  # type: ignore[assignment]
    app = create_app(settings, migrate=False)
    found = {}
    try:
        with TestClient(app) as client:
            for name, document, variables in [
                ("deep leaderboard", queries.DEEP_LEADERBOARD, None),
                ("version page", queries.VERSION_PAGE, {"id": version_id}),
            ]:
                seen.clear()
                response = client.post("/graphql", json={"query": document, "variables": variables or {}})
                assert response.status_code == 200 and "errors" not in response.json(), response.text[:300]
                assert len(seen) == 1, f"{name}: not answered by one compiled statement"
                found[name] = seen[0]
    finally:
        driver.run = real  # type: ignore[assignment]
        app.state.runtime.close()
    return found


def busiest_version(database: str) -> str:
    """The eligible version with the most runs: the heaviest version page."""
    with psycopg.connect(config.dsn(database)) as conn:
        row = conn.execute(
            "SELECT v.id FROM agentversion v JOIN evaluationrun r ON r.agent_version_id = v.id "
            "WHERE v.state = 'ELIGIBLE' GROUP BY v.id ORDER BY count(*) DESC, v.id LIMIT 1"
        ).fetchone()
    assert row is not None, "no eligible version with runs"
    return str(row[0])


# Measures --------------------------------------------------------------------------------------

Statement = tuple[str, Any]  # text, values (a list for $n, a dict for %(name)s, or None)


def _execute(conn: psycopg.Connection[Any], statement: Statement) -> None:
    text, values = statement
    cursor: Any = psycopg.RawCursor(conn) if isinstance(values, list) else conn.cursor()
    with cursor:
        cursor.execute(text, values, prepare=True)
        cursor.fetchall()


def cpu_per_run(database: str, statement: Statement, seconds: float, settings: dict[str, str]) -> float:
    """Milliseconds of backend CPU per run of the prepared statement, run for ``seconds`` (the
    clock ticks in hundredths of a second: seconds of runs keep that small), warmed past the
    generic plan first."""
    with _connection(database, settings) as conn:
        pid = conn.info.backend_pid
        for _ in range(10):
            _execute(conn, statement)
        before = cpu_seconds(pid)
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            _execute(conn, statement)
            runs += 1
        after = cpu_seconds(pid)
    assert before is not None and after is not None, "the backend's /proc entry is not readable"
    return (after - before) * 1000 / runs


def explained(database: str, statement: Statement, runs: int, settings: dict[str, str]) -> tuple[float, str]:
    """The lowest EXPLAIN ANALYZE execution time (ms) over ``runs`` and the last plan."""
    text, values = statement
    best, plan = float("inf"), ""
    with _connection(database, settings) as conn:
        for _ in range(runs):
            cursor: Any = psycopg.RawCursor(conn) if isinstance(values, list) else conn.cursor()
            with cursor:
                rows = cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + text, values).fetchall()
            plan = "\n".join(r[0] for r in rows)
            found = re.search(r"Execution Time: ([\d.]+) ms", plan)
            assert found is not None
            best = min(best, float(found.group(1)))
    return best, plan


def _script(statement: Statement) -> str:
    """The statement as a pgbench script: its values written in (pgbench cannot bind them), as
    ``CAST(... AS type)`` (pgbench reads the ``:name`` of a ``::type`` as a variable)."""
    text, values = statement
    if isinstance(values, list):

        def written(found: re.Match[str]) -> str:
            return _written(values[int(found.group(1)) - 1], found.group(2))

        text = re.sub(r"\$(\d+)(?:::(\w+(?: WITH(?:OUT)? TIME ZONE)?))?", written, text)
    elif isinstance(values, dict):
        for name, value in values.items():
            text = text.replace(f"%({name})s", _quoted(value))
    # pgbench takes any ":name" for a variable, inside a literal too (the instants' format,
    # 'HH24:MI:SS'): written with chr(58), which PostgreSQL folds back into the literal when it plans.
    text = re.sub(
        r"'(?:[^']|'')*'", lambda found: re.sub(r":(?=\w)", "' || chr(58) || '", found.group()), text
    )
    return text.strip() + ";\n"


def _written(value: Any, kind: str | None) -> str:
    """A value as SQL, cast to the placeholder's ``::type`` when it had one."""
    if value is None:
        shown = "NULL"
    elif isinstance(value, bool):
        shown = "TRUE" if value else "FALSE"
    elif isinstance(value, int | float):
        shown = repr(value)
    else:
        shown = _quoted(value)
        kind = kind or ("TIMESTAMPTZ" if hasattr(value, "isoformat") else "TEXT")
    return f"CAST({shown} AS {kind})" if kind else shown


def _quoted(value: Any) -> str:
    shown = value.isoformat() if hasattr(value, "isoformat") else str(getattr(value, "value", value))
    return "'" + shown.replace("'", "''") + "'"


def pgbench(
    database: str, statement: Statement, seconds: float, clients: int, settings: dict[str, str]
) -> float:
    """Transactions per second of the statement as the only script, ``clients`` connections."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(_script(statement))
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    env = {**os.environ, "PGOPTIONS": options}
    command = [
        "pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
        "-T", str(int(seconds)), "-f", script.name, config.dsn(database),
    ]  # fmt: skip
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    found = re.search(r"tps = ([\d.]+)", out)
    assert found is not None, out
    return float(found.group(1))


def lowest(measure: Callable[[], float], rounds: int) -> float:
    return min(measure() for _ in range(rounds))


def compare(
    database: str, name: str, ours: Statement, raw: Statement, args: argparse.Namespace
) -> dict[str, Any]:
    server = _settings()
    defaults = _settings({"random_page_cost": DEFAULT_PAGE_COST})
    cpu: dict[str, float] = {}
    for _ in range(args.rounds):  # in turns, so that interference falls on both
        for label, statement, settings in [
            ("ours", ours, server),
            ("raw", raw, server),
            ("ours, random_page_cost 4", ours, defaults),
            ("raw, random_page_cost 4", raw, defaults),
        ]:
            found = cpu_per_run(database, statement, args.cpu_seconds, settings)
            cpu[label] = min(cpu.get(label, found), found)
    ours_ms, ours_plan = explained(database, ours, args.explains, server)
    raw_ms, raw_plan = explained(database, raw, args.explains, server)
    result: dict[str, Any] = {
        "cpu_ms_per_run": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_ours_vs_raw": round(cpu["ours"] / cpu["raw"], 2),
        "explain_ms": {"ours": ours_ms, "raw": raw_ms},
        "explain_ours_vs_raw": round(ours_ms / raw_ms, 2),
        "plans": {"ours": ours_plan, "raw": raw_plan},
    }
    if args.seconds > 0 and shutil.which("pgbench"):
        tps: dict[str, float] = {"ours": 0.0, "raw": 0.0}
        for _ in range(2):
            tps["ours"] += pgbench(database, ours, args.seconds / 2, args.clients, server)
            tps["raw"] += pgbench(database, raw, args.seconds / 2, args.clients, server)
        result["pgbench_tps"] = {k: round(v / 2, 1) for k, v in tps.items()}
        result["pgbench_ours_vs_raw"] = round(tps["ours"] / tps["raw"], 2)
    return result


# The validator's writes under both page costs ------------------------------------------------------


def write_plans(runs: int) -> dict[str, Any]:
    """Claim, heartbeat and progress as the server sends them (signed REST calls on a fresh loop
    database, captured at the cursor), each statement planned with random_page_cost 4 and the
    server's value: whether the plan changes, and the lowest EXPLAIN ANALYZE time of each (rolled back)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event
    from substrateinterface import Keypair

    from oro_graph.app import create_app
    from oro_graph.auth import sign_headers
    from oro_graph.settings import load_settings

    world = datasets.build_loop_world()
    settings = load_settings(
        database_url=config.sqlalchemy_url(world.database),
        secret_key=SECRET,
        data_dir=tempfile.mkdtemp(prefix="oro_bench_pgcost_"),
        rate_limit_per_minute=100_000_000,
        redis_url=None,
        require_inference_credential=False,
    )
    app = create_app(settings, migrate=False)
    seen: list[tuple[str, Any]] = []

    @event.listens_for(app.state.runtime.db.engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if not many:
            seen.append((statement, params))

    calls: dict[str, list[Statement]] = {}
    with TestClient(app) as client:

        def call(name: str, path: str, body: dict[str, Any]) -> Any:
            seen.clear()
            response = client.post(path, json=body, headers=sign_headers(keypair))
            assert response.status_code == 200, f"{name}: {response.status_code} {response.text[:300]}"
            calls[name] = [
                s for s in seen if s[0].lstrip()[:6].upper() in {"SELECT", "INSERT", "UPDATE", "WITH"}
            ]
            return response.json()

        # The first claim of a fresh world also schedules its race: another validator makes it.
        keypair = Keypair.create_from_uri(world.uris[1])
        call("first claim", "/v1/validator/work/claim", {"cpu_pct": 12.5})
        keypair = Keypair.create_from_uri(world.uris[0])
        run = call("claim", "/v1/validator/work/claim", {"cpu_pct": 12.5})["eval_run_id"]
        call("heartbeat", f"/v1/validator/evaluation-runs/{run}/heartbeat", {"cpu_pct": 20.0})
        results = [{"problem_id": p, "status": "SUCCESS", "score": 0.5} for p in world.problems]
        call("progress", f"/v1/validator/evaluation-runs/{run}/progress", {"problems": results})
    app.state.runtime.close()
    out: dict[str, Any] = {}
    calls.pop("first claim")
    for name, statements in calls.items():
        for i, statement in enumerate(statements):
            plans = {}
            times = {}
            for cost in (DEFAULT_PAGE_COST, SESSION_SETTINGS["random_page_cost"]):
                plan, best = _write_plan(world.database, statement, cost, runs)
                plans[cost] = plan
                times[cost] = best
            out[f"{name} {i + 1}/{len(statements)}"] = {
                "statement": " ".join(statement[0].split())[:160],
                "same_plan": len(set(plans.values())) == 1,
                "explain_ms": times,
            }
    return out


def _write_plan(database: str, statement: Statement, cost: str, runs: int) -> tuple[str, float | None]:
    """The plan with ``random_page_cost`` at ``cost``, and the lowest EXPLAIN ANALYZE time of the
    statement, each run rolled back (None when it cannot run again, such as an insert of a fixed key)."""
    text, params = statement
    best: float | None = None
    with _connection(database, _settings({"random_page_cost": cost})) as conn:
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (COSTS OFF) " + text, params).fetchall())
        for _ in range(runs):
            try:
                with conn.transaction(force_rollback=True):
                    rows = conn.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + text, params).fetchall()
            except psycopg.Error:
                break
            found = re.search(r"Execution Time: ([\d.]+) ms", "\n".join(r[0] for r in rows))
            assert found is not None
            best = min(best, float(found.group(1))) if best is not None else float(found.group(1))
    return plan, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pgcost", description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=sorted(config.SIZES))
    parser.add_argument("--database", help="an existing database to measure instead, used as it is")
    parser.add_argument("--cpu-seconds", type=float, default=3, help="seconds of runs per CPU measure")
    parser.add_argument("--rounds", type=int, default=3, help="CPU measures of each, the lowest kept")
    parser.add_argument("--explains", type=int, default=20, help="EXPLAIN ANALYZE runs, the lowest kept")
    parser.add_argument("--seconds", type=float, default=20, help="pgbench seconds per statement (0: none)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--writes", action="store_true", help="also plan the validator's writes both ways")
    parser.add_argument("--out", default="pgcost.json", help="the figures and plans as JSON")
    args = parser.parse_args(argv)
    dataset = datasets.existing(args.database) if args.database else datasets.ensure(config.SIZES[args.size])
    database = dataset.database
    version = busiest_version(database)
    ours = captured(database, version)
    report: dict[str, Any] = {"database": database, "counts": dataset.counts, "settings": SESSION_SETTINGS}
    pairs = {
        "deep leaderboard": (ours["deep leaderboard"], (queries.RAW_DEEP_LEADERBOARD, None)),
        "version page": (ours["version page"], (queries.RAW_VERSION_PAGE, {"id": version})),
    }
    started = time.perf_counter()
    for name, (mine, raw) in pairs.items():
        found = compare(database, name, mine, raw, args)
        report[name] = found
        cpu = found["cpu_ms_per_run"]
        line = (
            f"{name}: backend CPU per run ours {cpu['ours']:.2f} ms, raw {cpu['raw']:.2f} ms "
            f"(ours/raw {found['cpu_ours_vs_raw']}); with random_page_cost 4: ours "
            f"{cpu['ours, random_page_cost 4']:.2f} ms, raw {cpu['raw, random_page_cost 4']:.2f} ms; "
            f"EXPLAIN ANALYZE ours {found['explain_ms']['ours']} ms, raw {found['explain_ms']['raw']} ms"
        )
        if "pgbench_tps" in found:
            tps = found["pgbench_tps"]
            ratio = found["pgbench_ours_vs_raw"]
            line += f"; pgbench ours {tps['ours']} tps, raw {tps['raw']} tps (ours/raw {ratio})"
        print(line, flush=True)
    if args.writes:
        report["writes"] = write_plans(args.explains)
        for title, figures in report["writes"].items():
            print(
                f"{title}: {'same plan' if figures['same_plan'] else 'PLAN CHANGES'} with random_page_cost "
                f"4 and {SESSION_SETTINGS['random_page_cost']}; EXPLAIN ANALYZE ms {figures['explain_ms']} "
                f"({figures['statement'][:70]})"
            )
    report["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
