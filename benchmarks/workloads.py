"""The six workloads of issue 6, each recording figures or the reason it could not run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from benchmarks import config, datasets, queries
from benchmarks.servers import (
    Server,
    Unavailable,
    get_json,
    post_json,
    sampling,
    start_ours,
    start_peer,
    stop,
)


@dataclass
class Results:
    """Everything one run measured: figures per workload and server, notes, reasons, plans."""

    plan: config.Plan
    workloads: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rss_mb: dict[str, float | None] = field(default_factory=dict)
    invariants: dict[str, dict[str, int]] = field(default_factory=dict)
    over_claims: int | None = None
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    sql_stats: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="oro_bench_logs_")))

    def put(self, workload: str, server: str, figures: dict[str, Any]) -> None:
        self.workloads.setdefault(workload, {})[server] = figures
        shown = {
            k: figures.get(k) for k in ("rps", "p50_ms", "p99_ms", "errors", "unavailable") if k in figures
        }
        print(f"  {workload:<22} {server:<26} {json.dumps(shown)}", flush=True)

    def unavailable(self, workload: str, server: str, reason: str) -> None:
        self.put(workload, server, {"rps": None, "p50_ms": None, "p99_ms": None, "unavailable": reason[:600]})

    def get(self, workload: str, server: str) -> dict[str, Any] | None:
        figures = self.workloads.get(workload, {}).get(server)
        return None if figures is None or figures.get("unavailable") else figures


def drive(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run the load generator in its own process on one spec; its JSON result."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.loadgen", handle.name],
            cwd=str(config.REPO),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        Path(handle.name).unlink(missing_ok=True)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        return {"failed": f"load generator exited {done.returncode}: {done.stderr[-800:]}"}
    return result


def measured(results: Results, workload: str, server: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Drive one spec and record it; a failed or error-only run is recorded as unavailable."""
    duration = float(spec.get("duration", 0)) + float(spec.get("warmup", 0))
    figures = drive(spec, timeout=duration + float(spec.get("budget", 0)) + 180)
    if "failed" in figures:
        results.unavailable(workload, server, figures["failed"])
        return None
    if not figures.get("requests") and not figures.get("pages"):
        results.unavailable(
            workload, server, f"no successful request: {figures.get('error_sample', 'no answer')}"
        )
        return None
    results.put(workload, server, figures)
    return figures


def http_spec(
    plan: config.Plan, server: Server, path: str, *, body: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "http",
        "host": "127.0.0.1",
        "port": server.port,
        "path": path,
        "method": "POST" if body is not None else "GET",
        "json": body,
        "graphql": path.endswith("/graphql"),
        "concurrency": plan.concurrency,
        "warmup": plan.warmup,
        "duration": plan.duration,
        **extra,
    }


def sql_spec(plan: config.Plan, database: str, statement: str) -> dict[str, Any]:
    return {
        "kind": "sql",
        "dsn": config.dsn(database),
        "statement": statement,
        "concurrency": plan.concurrency,
        "warmup": plan.warmup,
        "duration": plan.duration,
    }


# ------------------------------------------------------------------------------------------------
# Probes: say why a piece is missing instead of measuring errors.


def validate_against_sdl(document: str) -> str | None:
    """Errors of a document against the committed schema.graphql, or None (also when there is none)."""
    if not config.SCHEMA_SDL.exists():
        return None
    from graphql import build_schema, parse, validate

    try:
        schema = build_schema(config.SCHEMA_SDL.read_text())
        errors = validate(schema, parse(document))
    except Exception as exc:  # an SDL being written right now may not parse
        return f"schema.graphql could not be used: {exc}"
    return "; ".join(e.message for e in errors[:5]) or None


def probe_graphql(server: Server, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    status, body = post_json(server.base_url + "/graphql", {"query": document, "variables": variables or {}})
    if status == 404:
        raise Unavailable("/graphql is not mounted on this server (oro_graph.graphql is not installed yet)")
    if status != 200 or body.get("errors") or not body.get("data"):
        sdl = validate_against_sdl(document)
        errors = json.dumps(body.get("errors") or body)[:500]
        raise Unavailable(
            f"/graphql answered HTTP {status}: {errors}" + (f"; against schema.graphql: {sdl}" if sdl else "")
        )
    return body


def probe_rest(server: Server, path: str) -> None:
    status, body = get_json(server.base_url + path)
    if status != 200:
        raise Unavailable(f"GET {path} answered HTTP {status}: {json.dumps(body)[:300]}")


def settle(server: Server, budget: float = 30.0) -> None:
    """Wait until the server has finished the requests a measurement left in flight (slow ones
    keep burning CPU after the load generator stops), so they do not slow the next measurement."""
    deadline = time.monotonic() + budget
    quick = 0
    while quick < 3 and time.monotonic() < deadline:
        t0 = time.perf_counter()
        get_json(server.base_url + "/health")
        quick = quick + 1 if time.perf_counter() - t0 < 0.02 else 0
        time.sleep(0.1)


def leaderboard_rows(body: dict[str, Any]) -> int:
    return len(((body.get("data") or {}).get("leaderboard") or {}).get("edges") or [])


# ------------------------------------------------------------------------------------------------
# Workloads 1, 4, 5 (primary size) and 6 against one server set.


def leaderboard_on(
    results: Results, server: Server, dataset: datasets.Dataset, *, workload: str, label: str
) -> None:
    """The deep leaderboard through our GraphQL on one server (used by workloads 1, 5 and 6)."""
    plan = results.plan
    try:
        body = probe_graphql(server, queries.DEEP_LEADERBOARD)
    except Unavailable as exc:
        results.unavailable(workload, label, str(exc))
        return
    rows = leaderboard_rows(body)
    if rows < 100:
        results.notes.append(
            f"{dataset.database}: the leaderboard has {rows} eligible versions (fewer than 100)"
        )
    measured(
        results,
        workload,
        label,
        http_spec(plan, server, "/graphql", body={"query": queries.DEEP_LEADERBOARD}),
    )


def workload_1(results: Results, server: Server, dataset: datasets.Dataset) -> None:
    plan = results.plan
    w = "deep_leaderboard"
    server.clear_rss()
    with sampling([server]):
        leaderboard_on(results, server, dataset, workload=w, label="graphql")
        if results.get(w, "graphql"):
            # Every request a new document: what a miss of any response cache costs.
            measured(
                results,
                w,
                "graphql_uncached",
                http_spec(
                    plan, server, "/graphql", body={"query": queries.DEEP_LEADERBOARD}, unique_document=True
                ),
            )
            settle(server)
    results.rss_mb["ours (deep leaderboard, per process)"] = server.max_rss_mb()
    try:
        probe_rest(server, queries.REST_LEADERBOARD)
        measured(results, w, "rest", http_spec(plan, server, queries.REST_LEADERBOARD))
    except Unavailable as exc:
        results.unavailable(w, "rest", str(exc))
    measured(results, w, "raw_sql", sql_spec(plan, dataset.database, queries.RAW_DEEP_LEADERBOARD))
    # One client at a time: latency without queueing (the peer's figure in the issue is at 1 and 8).
    single = {"concurrency": 1, "duration": plan.duration / 2}
    if results.get(w, "graphql"):
        body = {"query": queries.DEEP_LEADERBOARD}
        measured(results, w, "graphql_c1", {**http_spec(plan, server, "/graphql", body=body), **single})
    if results.get(w, "rest"):
        measured(results, w, "rest_c1", {**http_spec(plan, server, queries.REST_LEADERBOARD), **single})
    measured(
        results, w, "raw_sql_c1", {**sql_spec(plan, dataset.database, queries.RAW_DEEP_LEADERBOARD), **single}
    )


def workload_2(results: Results, dataset: datasets.Dataset) -> None:
    plan = results.plan
    w = "deep_leaderboard_peer"
    try:
        peer = start_peer(dataset.database, plan.ports["peer"], results.logs)
    except Unavailable as exc:
        results.unavailable(w, "postgraphile", str(exc))
        return
    try:
        variables = {"suiteId": dataset.suite_id}
        try:
            body = probe_graphql(peer, queries.PEER_DEEP_LEADERBOARD, variables)
        except Unavailable as exc:
            results.unavailable(w, "postgraphile", f"PostGraphile refused the query: {exc}")
            return
        nodes = body["data"]["allAgentversions"]["nodes"]
        results.notes.append(f"postgraphile answered {len(nodes)} versions on {dataset.database}")
        peer.clear_rss()
        with sampling([peer]):
            measured(
                results,
                w,
                "postgraphile",
                http_spec(
                    plan,
                    peer,
                    "/graphql",
                    body={"query": queries.PEER_DEEP_LEADERBOARD, "variables": variables},
                ),
            )
        results.rss_mb["postgraphile (node)"] = peer.max_rss_mb()
        body = {"query": queries.PEER_DEEP_LEADERBOARD, "variables": variables}
        single = {"concurrency": 1, "duration": plan.duration / 2}
        measured(results, w, "postgraphile_c1", {**http_spec(plan, peer, "/graphql", body=body), **single})
    finally:
        stop(peer)


def tail_cursor(database: str, page: int = 100) -> str | None:
    """A cursor after which exactly the last ``page`` runs (by claim time, then id) follow.

    Built with ``oro_graph.graphql.pagination.encode_cursor`` for the order ``evaluationRuns`` uses,
    so the last page of a large dataset is measured without walking every page before it."""
    try:
        from oro_graph.graphql.pagination import encode_cursor
    except ImportError:
        return None
    import psycopg

    with psycopg.connect(config.dsn(database)) as conn:
        total = conn.execute("SELECT count(*) FROM evaluationrun").fetchone()[0]
        if total <= page:
            return None
        row = conn.execute(
            "SELECT claimed_at, id FROM evaluationrun ORDER BY claimed_at, id OFFSET %s LIMIT 1",
            (total - page - 1,),
        ).fetchone()
    claimed_at, run_id = row
    try:
        return encode_cursor("run.claimed_at.asc", (claimed_at.astimezone(UTC), run_id))
    except Exception:  # the cursor format changed: the walk's deepest page is used instead
        return None


def workload_4(results: Results, server: Server, dataset: datasets.Dataset) -> None:
    plan = results.plan
    w = "analyst_paging"
    try:
        probe_graphql(server, queries.RUNS_PAGE, {"first": 1, "after": None})
    except Unavailable as exc:
        results.unavailable(w, "graphql", str(exc))
        return
    spec = {
        "tail_cursor": tail_cursor(dataset.database),
        "kind": "paging",
        "base_url": server.base_url,
        "document": queries.RUNS_PAGE,
        "connection": ["evaluationRuns"],
        "page_size": 100,
        "budget": plan.paging_budget,
    }
    figures = measured(results, w, "graphql", spec)
    if figures:
        figures["dataset"] = dataset.database
        if not figures.get("complete"):
            results.notes.append(
                f"analyst paging stopped after its {plan.paging_budget:.0f} s budget "
                f"at page {figures['pages']} "
                f"of about {dataset.counts.get('evaluationrun', 0) // 100 + 1} on {dataset.database}"
            )


def workload_3(results: Results) -> None:
    """Validators through the REST paths on 2 server processes, then the raw SQL loop, per N."""
    plan = results.plan
    w = "validator_loop"
    try:
        world = datasets.build_loop_world()
    except Exception as exc:
        for n in plan.loop_validators:
            results.unavailable(w, f"rest_n{n}", f"could not build the loop database: {exc}")
        return
    try:
        server = start_ours(
            "ours_loop", world.database, plan.ports["loop"], plan.server_workers, results.logs
        )
    except Unavailable as exc:
        server = None
        for n in plan.loop_validators:
            results.unavailable(w, f"rest_n{n}", str(exc))
    worst = 0
    try:
        for n in plan.loop_validators:
            common = {
                "validators": n,
                "problems": world.problems,
                "warmup": 1.0,
                "duration": plan.loop_duration,
            }
            if server is not None:
                datasets.reset_loop_world(world.database)
                spec = {"kind": "validators", "base_url": server.base_url, "uris": world.uris, **common}
                measured(results, w, f"rest_n{n}", spec)
                found = datasets.loop_invariants(world.database)
                results.invariants[f"rest_n{n}"] = found
                worst += datasets.over_claims(found)
            if server is not None and n == max(plan.loop_validators):
                # The floor of any signed REST call here: uvicorn + FastAPI answering /health (one
                # SELECT 1) at the same concurrency. A cycle is 4 calls, so floor / 4 bounds cycles/s.
                floor = http_spec(plan, server, "/health", concurrency=n, duration=plan.loop_duration)
                measured(results, w, f"http_floor_n{n}", floor)
            datasets.reset_loop_world(world.database)
            spec = {
                "kind": "raw_claims",
                "dsn": config.dsn(world.database),
                "hotkeys": world.hotkeys,
                **common,
            }
            measured(results, w, f"raw_sql_n{n}", spec)
            found = datasets.loop_invariants(world.database)
            results.invariants[f"raw_sql_n{n}"] = {
                "over_claimed_work_items": found["over_claimed_work_items"]
            }
            worst += found["over_claimed_work_items"]
    finally:
        if server is not None:
            stop(server)
    results.over_claims = worst


def with_server(
    results: Results,
    name: str,
    dataset: datasets.Dataset,
    port: int,
    workers: int,
    body: Callable[[Server], None],
    *,
    workloads: list[tuple[str, str]],
) -> None:
    """Start our server on a dataset, run ``body``, stop it; if it will not start, say so for each figure."""
    try:
        server = start_ours(name, dataset.database, port, workers, results.logs)
    except Unavailable as exc:
        for workload, label in workloads:
            results.unavailable(workload, label, str(exc))
        return
    try:
        body(server)
    finally:
        stop(server)


def run_all(plan: config.Plan, log: Callable[[str], None] = print) -> Results:
    results = Results(plan)
    started = time.perf_counter()
    sizes = [plan.primary, *[s for s in plan.scale_sizes if s != plan.primary]]
    if plan.paging_size not in sizes:
        sizes.append(plan.paging_size)
    built: dict[str, datasets.Dataset] = {}
    for name in sizes:
        try:
            ds = datasets.ensure(config.SIZES[name], log=log)
            built[name] = ds
            results.datasets[name] = {
                "database": ds.database,
                "counts": ds.counts,
                "reused": ds.reused,
                "build_seconds": ds.build_seconds,
            }
        except Unavailable as exc:
            results.datasets[name] = {"database": config.SIZES[name].database, "unavailable": str(exc)}
            log(f"dataset {name} unavailable: {exc}")

    primary = built.get(plan.primary)
    w1 = [("deep_leaderboard", s) for s in ("graphql", "graphql_uncached", "rest", "raw_sql")]
    if primary is None:
        reason = results.datasets[plan.primary]["unavailable"]
        for workload, label in [
            *w1,
            ("deep_leaderboard_peer", "postgraphile"),
            ("analyst_paging", "graphql"),
        ]:
            results.unavailable(workload, label, f"no dataset: {reason}")
        for workers in (1, 2):
            results.unavailable(
                "workers", f"graphql_{workers}_worker{'s' if workers > 1 else ''}", f"no dataset: {reason}"
            )
    else:
        log(f"workloads 1, 4, 6 on {primary.database} ({plan.server_workers} server processes)")

        def primary_block(server: Server) -> None:
            workload_1(results, server, primary)
            figures = results.workloads["deep_leaderboard"]["graphql"]
            results.put("workers", "graphql_2_workers", dict(figures))
            results.put("scale", f"graphql_{plan.primary}", dict(figures))
            if results.get("deep_leaderboard", "raw_sql"):
                results.put(
                    "scale", f"raw_sql_{plan.primary}", dict(results.workloads["deep_leaderboard"]["raw_sql"])
                )
            if plan.paging_size == plan.primary:
                workload_4(results, server, primary)

        with_server(
            results, "ours_2w", primary, plan.ports["ours"], plan.server_workers, primary_block, workloads=w1
        )

        log("workload 6: one server process")
        with_server(
            results,
            "ours_1w",
            primary,
            plan.ports["ours_1w"],
            1,
            lambda s: leaderboard_on(results, s, primary, workload="workers", label="graphql_1_worker"),
            workloads=[("workers", "graphql_1_worker")],
        )
        log("workload 2: PostGraphile")
        workload_2(results, primary)

    for name in plan.scale_sizes:
        if name == plan.primary:
            continue
        ds = built.get(name)
        if ds is None:
            results.unavailable(
                "scale", f"graphql_{name}", f"no dataset: {results.datasets[name].get('unavailable')}"
            )
            continue
        log(f"workload 5: scale on {ds.database}")

        def scale_block(server: Server, ds: datasets.Dataset = ds, name: str = name) -> None:
            leaderboard_on(results, server, ds, workload="scale", label=f"graphql_{name}")
            measured(
                results, "scale", f"raw_sql_{name}", sql_spec(plan, ds.database, queries.RAW_DEEP_LEADERBOARD)
            )
            if plan.paging_size == name:
                workload_4(results, server, ds)

        with_server(
            results,
            f"ours_{name}",
            ds,
            plan.ports["scale"],
            plan.server_workers,
            scale_block,
            workloads=[("scale", f"graphql_{name}")],
        )

    if plan.paging_size not in built and not results.workloads.get("analyst_paging"):
        results.unavailable("analyst_paging", "graphql", f"no {plan.paging_size} dataset")

    log("workload 3: validator loop")
    workload_3(results)

    if primary is not None:
        from benchmarks import explain

        try:
            results.plans, results.sql_stats = explain.capture(primary, config.LOOP_DATABASE)
        except Exception as exc:
            results.notes.append(f"query plans could not be captured: {type(exc).__name__}: {exc}")
    results.notes.append(f"the run took {time.perf_counter() - started:.0f} s")
    return results


def run_loop(plan: config.Plan, log: Callable[[str], None] = print) -> Results:
    """Workload 3 alone (``python -m benchmarks loop``): the validator loop, its limit, the HTTP floor."""
    results = Results(plan)
    log(f"workload 3: validators {plan.loop_validators}, {plan.loop_duration:.0f} s each")
    workload_3(results)
    return results
