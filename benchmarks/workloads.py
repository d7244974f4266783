"""The six workloads of issue 6, each recording figures or the reason it could not run."""

from __future__ import annotations

import contextlib
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

from benchmarks import config, datasets, machinecpu, queries, signedfloor
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


def start_drive(spec: dict[str, Any]) -> tuple[subprocess.Popen[str], str]:
    """Start the load generator on one spec without waiting (see ``finish_drive``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", handle.name],
        cwd=str(config.REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, handle.name


def finish_drive(started: tuple[subprocess.Popen[str], str], timeout: float) -> dict[str, Any]:
    process, path = started
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    finally:
        Path(path).unlink(missing_ok=True)
    try:
        return dict(json.loads(out))
    except ValueError:
        return {"failed": f"load generator exited {process.returncode}: {err[-800:]}"}


def measured(
    results: Results,
    workload: str,
    server: str,
    spec: dict[str, Any],
    *,
    watch: Server | None = None,
    alongside: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Drive one spec and record it; a failed or error-only run is recorded as unavailable.

    ``watch``: the server whose per-process CPU (in cores, over the whole drive) is recorded.
    ``alongside``: a second spec (the writers) run in its own process at the same time; its figures
    are recorded under ``writers``."""
    duration = float(spec.get("duration", 0)) + float(spec.get("warmup", 0))
    before = watch.cpu_seconds() if watch else {}
    t0 = time.perf_counter()
    # The whole machine, inside the measured window: from the load generator's start-up (about a
    # second) and warm-up to half a second before the window closes.
    lead = float(spec.get("warmup", 0)) + 1.5
    span = float(spec.get("duration", 0)) - 2.0
    machine = machinecpu.Watch(list(before), lead, span) if watch is not None and span >= 1.0 else None
    with machine or contextlib.nullcontext():
        side = start_drive(alongside) if alongside else None
        figures = drive(spec, timeout=duration + float(spec.get("budget", 0)) + 180)
        if side is not None:
            figures["writers"] = finish_drive(side, timeout=duration + 120)
    if watch is not None:
        from benchmarks.servers import cpu_share

        figures["cpu_per_process"] = cpu_share(before, watch.cpu_seconds(), time.perf_counter() - t0)
    if machine is not None and (cores := machine.cores()) is not None:
        figures["machine_cores"] = cores
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
        watch=server,
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
                watch=server,
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
                watch=peer,
            )
        results.rss_mb["postgraphile (node)"] = peer.max_rss_mb()
        body = {"query": queries.PEER_DEEP_LEADERBOARD, "variables": variables}
        single = {"concurrency": 1, "duration": plan.duration / 2}
        measured(results, w, "postgraphile_c1", {**http_spec(plan, peer, "/graphql", body=body), **single})
        version_page(results, peer, dataset, peer=True)
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
    # The same server with one route more, the signed no-op of the signed floor (benchmarks.signedfloor).
    server = _loop_server(
        results,
        world,
        "ours_loop",
        "benchmarks.signedfloor:app",
        [f"rest_n{n}" for n in plan.loop_validators],
    )
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
                measured(results, w, f"rest_n{n}", spec, watch=server)
                found = datasets.loop_invariants(world.database)
                results.invariants[f"rest_n{n}"] = found
                worst += datasets.over_claims(found)
            if server is not None and n >= 8:
                # The floor of any signed REST call here: uvicorn + FastAPI answering /health (one
                # SELECT 1) at the same concurrency. A cycle is 4 calls, so floor / 4 bounds cycles/s.
                floor = http_spec(plan, server, "/health", concurrency=n, duration=plan.loop_duration)
                measured(results, w, f"http_floor_n{n}", floor, watch=server)
                # The signed floor: each call's signature, write charge and durable nonce, no work.
                signed = {
                    "kind": "signed",
                    "base_url": server.base_url,
                    "path": signedfloor.NOOP_PATH,
                    "uris": world.uris,
                    "concurrency": n,
                    "warmup": 1.0,
                    "duration": plan.loop_duration,
                }
                measured(results, w, f"signed_floor_n{n}", signed, watch=server)
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
    results.over_claims = worst + _lean_loop(results, world)


def _loop_server(
    results: Results, world: datasets.LoopWorld, name: str, app: str, figures: list[str]
) -> Server | None:
    """Workload 3's server on the loop database, serving ``app``; None (each of ``figures`` recorded
    as unavailable, with the reason) when it does not start."""
    plan = results.plan
    try:
        return start_ours(
            name, world.database, plan.ports["loop"], plan.server_workers, results.logs, app=app
        )
    except Unavailable as exc:
        for figure in figures:
            results.unavailable("validator_loop", figure, str(exc))
        return None


def _lean_loop(results: Results, world: datasets.LoopWorld) -> int:
    """The lean loop at each N >= 8 (``benchmarks.signedfloor.lean_app``): the same server, edge and
    signed calls, each call's work one raw SQL statement. What the real loop could reach on this stack
    if its services cost no more than the harness' raw lifecycle. Returns the over-claims it found."""
    plan = results.plan
    w = "validator_loop"
    counts = [n for n in plan.loop_validators if n >= 8]
    if not counts:
        return 0
    server = _loop_server(
        results, world, "ours_lean", "benchmarks.signedfloor:lean_app", [f"lean_n{n}" for n in counts]
    )
    if server is None:
        return 0
    worst = 0
    try:
        for n in counts:
            datasets.reset_loop_world(world.database)
            spec = {
                "kind": "validators",
                "base_url": server.base_url,
                "uris": world.uris,
                "validators": n,
                "problems": world.problems,
                "warmup": 1.0,
                "duration": plan.loop_duration,
            }
            measured(results, w, f"lean_n{n}", spec, watch=server)
            found = datasets.over_claims(datasets.loop_invariants(world.database))
            results.invariants[f"lean_n{n}"] = {"over_claimed_work_items": found}
            worst += found
    finally:
        stop(server)
    return worst


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
            version_page(results, server, primary, peer=False)

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
        log("workload (a) of issue 13: the deep leaderboard under signed writes")
        workload_writes(results, primary)

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


# ------------------------------------------------------------------------------------------------
# Issue 13: the deep leaderboard under signed writes (a), the per-version page with distinct ids (b).

WRITE_RATES = (0, 1, 5, 20)  # signed writes per second from the writer process
WRITERS = 4  # validators, each holding one claimed run (heartbeats and progress in turn)
VERSION_IDS = 400  # distinct versions the per-version page cycles through


def version_ids(database: str, n: int = VERSION_IDS) -> list[str]:
    """Versions of the active suite that have runs, in a fixed pseudo-random order."""
    import psycopg

    with psycopg.connect(config.dsn(database)) as conn:
        rows = conn.execute(
            """
            SELECT v.id FROM agentversion v
            WHERE v.suite_id = (SELECT id FROM suite WHERE is_active ORDER BY id DESC LIMIT 1)
              AND EXISTS (SELECT 1 FROM evaluationrun r WHERE r.agent_version_id = v.id)
            ORDER BY md5(v.id::text) LIMIT %s
            """,
            (n,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def version_page(results: Results, server: Server, dataset: datasets.Dataset, *, peer: bool) -> None:
    """Workload (b): one version's page per request, a different version each time."""
    plan = results.plan
    w = "version_page"
    ids = version_ids(dataset.database)
    if not ids:
        results.unavailable(w, "postgraphile" if peer else "graphql", "no version with runs")
        return
    document = queries.PEER_VERSION_PAGE if peer else queries.VERSION_PAGE
    label = "postgraphile" if peer else "graphql"
    try:
        probe_graphql(server, document, {"id": ids[0]})
    except Unavailable as exc:
        results.unavailable(w, label, str(exc))
        return
    spec = http_spec(
        plan, server, "/graphql", body={"query": document}, variables_pool=[{"id": i} for i in ids]
    )
    measured(results, w, label, spec, watch=server)
    if peer:
        return
    pages = [[p.format(id=i) for p in queries.REST_VERSION_PAGE] for i in ids]
    try:
        for path in pages[0]:
            probe_rest(server, path)
    except Unavailable as exc:
        results.unavailable(w, "rest", str(exc))
        return
    measured(results, w, "rest", http_spec(plan, server, pages[0][0], path_pool=pages), watch=server)


WRITES_DATABASE = f"{config.DB_PREFIX}_writes"


def prepare_writes_database(dataset: datasets.Dataset) -> list[str]:
    """A copy of the primary dataset (the writes change it) with WRITERS registered validators and
    one open work item they can each claim; their key URIs."""
    import psycopg
    from psycopg import sql
    from substrateinterface import Keypair

    uris = [f"//benchwriter{i}" for i in range(WRITERS)]
    with datasets.admin() as conn:
        conn.autocommit = True
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(WRITES_DATABASE))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(WRITES_DATABASE), sql.Identifier(dataset.database)
            )
        )
    from oro_graph.db import Database
    from oro_graph.models import Role
    from oro_graph.services import registry
    from oro_graph.settings import load_settings

    db = Database(load_settings(database_url=config.sqlalchemy_url(WRITES_DATABASE), secret_key="x" * 40))
    try:
        for i, uri in enumerate(uris):
            address = Keypair.create_from_uri(uri).ss58_address
            db.call(registry.add_hotkey, address, role=Role.VALIDATOR, name=f"bench-writer-{i}")
    finally:
        db.dispose()
    with psycopg.connect(config.dsn(WRITES_DATABASE), autocommit=True) as conn:
        suite = conn.execute("SELECT id FROM suite WHERE is_active ORDER BY id DESC LIMIT 1").fetchone()[0]
        agent = conn.execute("SELECT id FROM agent ORDER BY created_at LIMIT 1").fetchone()[0]
        version = conn.execute(
            """
            INSERT INTO agentversion (id, agent_id, version_number, suite_id, state, submitted_at,
                                      code_key, code_sha256, code_size)
            SELECT gen_random_uuid(), %(agent)s,
                   (SELECT coalesce(max(version_number), 0) + 1 FROM agentversion
                    WHERE agent_id = %(agent)s),
                   %(suite)s, 'QUEUED', now() - interval '30 days', 'agents/bench/writes.py',
                   repeat('0', 64), 64
            RETURNING id
            """,
            {"agent": agent, "suite": suite},
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO workitem (id, agent_version_id, suite_id, required_successes, included_successes, "
            "active_runs, is_closed, created_at) "
            "VALUES (gen_random_uuid(), %s, %s, %s, 0, 0, false, now() - interval '30 days')",
            (version, suite, WRITERS),
        )
    return uris


def claim_runs(server: Server, uris: list[str]) -> list[tuple[str, str, list[str]]]:
    """Each writer claims one run through the signed REST path; (uri, run id, 3 of its problems)."""
    import httpx
    import psycopg
    from substrateinterface import Keypair

    from oro_graph.auth import sign_headers

    holders = []
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for uri in uris:
            response = client.post(
                "/v1/validator/work/claim", json={}, headers=sign_headers(Keypair.create_from_uri(uri))
            )
            if response.status_code != 200:
                raise Unavailable(
                    f"a writer's claim answered HTTP {response.status_code}: {response.text[:300]}"
                )
            holders.append((uri, response.json()["eval_run_id"]))
    out = []
    with psycopg.connect(config.dsn(WRITES_DATABASE)) as conn:
        for uri, run in holders:
            # A race's run may report only the problems its race drew (the medium and large datasets
            # have races, and the claim takes race work first): 3 of those, else 3 of the suite's.
            problems = [
                str(r[0])
                for r in conn.execute(
                    "SELECT p.id FROM problem p JOIN evaluationrun r ON r.suite_id = p.suite_id "
                    "LEFT JOIN race ON race.id = r.race_id "
                    "WHERE r.id = %s AND (race.problem_ids IS NULL OR p.id::text IN "
                    "(SELECT json_array_elements_text(race.problem_ids::json))) "
                    "ORDER BY p.position LIMIT 3",
                    (run,),
                )
            ]
            out.append((uri, run, problems))
    return out


def run_writes(
    plan: config.Plan, log: Callable[[str], None] = print, *, peer: bool = False, rescore: bool = False
) -> Results:
    """Workload (a) alone (``python -m benchmarks writes``): the writers alone, then under our reads
    (and PostGraphile's with ``peer``), on the primary dataset (built or reused)."""
    results = Results(plan)
    dataset = datasets.ensure(config.SIZES[plan.primary], log=log)
    log(f"workload (a): writers at {WRITE_RATES} writes/s on a copy of {dataset.database}")
    workload_writes(results, dataset, peer=peer, rescore=rescore)
    return results


def workload_writes(
    results: Results, dataset: datasets.Dataset, *, peer: bool = True, rescore: bool = False
) -> None:
    """Workload (a): the deep leaderboard while a writer process sends 0, 1, 5 and 20 signed writes
    per second to our server; read by our server, then by PostGraphile (the writes still go to ours).
    ``rescore``: each progress report moves the scores (by default it re-sends the same results)."""
    plan = results.plan
    with_peer = peer
    w = "writes"
    try:
        uris = prepare_writes_database(dataset)
        server = start_ours(
            "ours_writes", WRITES_DATABASE, plan.ports["writes"], plan.server_workers, results.logs
        )
    except (Unavailable, Exception) as exc:
        for rate in WRITE_RATES:
            results.unavailable(w, f"graphql_w{rate}", f"{type(exc).__name__}: {exc}")
        return
    peer: Server | None = None
    try:
        holders = claim_runs(server, uris)

        def writers(rate: float, duration: float | None = None) -> dict[str, Any]:
            return {
                "kind": "writers",
                "base_url": server.base_url,
                "holders": holders,
                "rate": rate,
                "rescore": rescore,
                "warmup": plan.warmup,
                "duration": duration or plan.duration,
            }

        # The writers alone: their latency with nothing else to wait for.
        alone = drive(writers(max(WRITE_RATES)), timeout=plan.duration + plan.warmup + 120)
        results.put(w, f"writers_alone_w{max(WRITE_RATES)}", alone)
        read = {"query": queries.DEEP_LEADERBOARD}
        server.clear_rss()
        with sampling([server]):
            for rate in WRITE_RATES:
                spec = http_spec(plan, server, "/graphql", body=read)
                measured(results, w, f"graphql_w{rate}", spec, watch=server, alongside=writers(rate))
                settle(server)
        results.rss_mb["ours (deep leaderboard under writes, per process)"] = server.max_rss_mb()
        if not with_peer:
            return
        try:
            peer = start_peer(WRITES_DATABASE, plan.ports["peer"], results.logs)
            variables = {"suiteId": dataset.suite_id}
            probe_graphql(peer, queries.PEER_DEEP_LEADERBOARD, variables)
        except Unavailable as exc:
            for rate in WRITE_RATES:
                results.unavailable(w, f"postgraphile_w{rate}", str(exc))
            return
        body = {"query": queries.PEER_DEEP_LEADERBOARD, "variables": variables}
        for rate in WRITE_RATES:
            spec = http_spec(plan, peer, "/graphql", body=body)
            measured(results, w, f"postgraphile_w{rate}", spec, watch=peer, alongside=writers(rate))
    except Unavailable as exc:
        for rate in WRITE_RATES:
            results.unavailable(w, f"graphql_w{rate}", str(exc))
    finally:
        if peer is not None:
            stop(peer)
        stop(server)
