"""Where a deep-leaderboard request spends its CPU in our server: py-spy over one server process.

``python -m benchmarks profile [--seconds S] [--size small]`` starts one server process with
``ORO_GRAPHQL_DEBUG=1`` (so one answer reports its SQL statement count and time), drives the deep
leaderboard at it from the load generator, and samples the process with ``py-spy record`` (on-CPU
samples only). Each sample is put in the category of the innermost frame that belongs to a known
library; standard-library frames count for whoever called them, except ``json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import config, datasets, queries, report
from benchmarks.servers import post_json, start_ours, stop

RATE = 200  # py-spy samples per second

# Checked in order against a frame's file path; the first that matches names the category.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("our GraphQL layer (oro_graph/graphql)", ("oro_graph/graphql/",)),
    ("our services and REST layer", ("oro_graph/", "rest_compat/")),
    ("GraphQL execution (strawberry)", ("/strawberry/",)),
    ("GraphQL execution (graphql-core)", ("/graphql/",)),
    ("SQL: SQLAlchemy/SQLModel (statement building, ORM rows)", ("/sqlalchemy/", "/sqlmodel/")),
    ("SQL: psycopg driver", ("/psycopg",)),
    ("serialisation: json", ("/json/", "orjson")),
    ("serialisation/validation: pydantic", ("/pydantic",)),
    (
        "HTTP/ASGI: uvicorn, starlette, fastapi",
        ("/uvicorn/", "/starlette/", "/fastapi/", "/httptools", "/h11/"),
    ),
    (
        "threads and event loop (anyio, asyncio, threading)",
        ("/anyio/", "/asyncio/", "concurrent/futures", "threading.py", "uvloop"),
    ),
    ("redis and rate limits", ("/redis/", "/limits/")),
]


def _category(path: str) -> str | None:
    for name, needles in CATEGORIES:
        if any(n in path for n in needles):
            return name
    return None


def classify(stack: list[str]) -> str:
    """The category of the innermost frame that has one (stdlib frames fall through to their caller)."""
    for frame in reversed(stack):
        path = "/" + (frame[frame.rfind("(") + 1 :] if "(" in frame else frame)
        name = _category(path)
        if name:
            return name
    return "other (interpreter, stdlib at the top)"


def summarise(raw: Path) -> tuple[Counter[str], Counter[str], int]:
    by_category: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack_text, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = stack_text.split(";")
        total += count
        by_category[classify(frames)] += count
        by_function[frames[-1].strip()] += count
    return by_category, by_function, total


def _record(server_pid: int, spec: dict[str, Any], seconds: float, out: Path) -> dict[str, Any]:
    """Drive ``spec`` from the load generator and sample the server with py-spy meanwhile."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({**spec, "warmup": 2.0, "duration": seconds + 2.0}, handle)
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", handle.name],
        cwd=str(config.REPO),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    # --gil: only samples of the thread holding the GIL, i.e. Python doing work (waits are left out).
    command = [spy, "record", "--pid", str(server_pid), "--duration", str(int(seconds)), "--rate", str(RATE)]
    command += ["--format", "raw", "--nonblocking", "--gil", "--output", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    stdout, _ = load.communicate(timeout=seconds + 60)
    Path(handle.name).unlink(missing_ok=True)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {done.stderr[-500:]}")
    return json.loads(stdout or "{}")


def _table(label: str, load: dict[str, Any], raw: Path, seconds: float, unit: str) -> str:
    by_category, by_function, total = summarise(raw)
    busy = total / (RATE * seconds)
    rate = load.get("rps")
    rows = [f"#### {label}", ""]
    if rate:
        rows.append(
            f"Load: {rate} {unit}/s, p50 {load.get('p50_ms')} ms, p99 {load.get('p99_ms')} ms, "
            f"errors {load.get('errors')}. The GIL was held {busy:.0%} of the time: about "
            f"{1000 * busy / rate:.1f} ms of Python per {unit}."
        )
    else:
        rows.append(f"Load: {json.dumps(load)[:300]}.")
    if not total:
        return "\n".join(rows)
    rows += ["", "| where (innermost known library) | share of GIL samples |", "| --- | --- |"]
    rows += [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_category.most_common()]
    rows += ["", "| hottest functions (self) | share |", "| --- | --- |"]
    rows += [f"| `{fn[:120]}` | {100 * n / total:.1f}% |" for fn, n in by_function.most_common(12)]
    rows += ["", f"Raw stacks: `{raw}` (not kept in git)."]
    return "\n".join(rows)


def _http(port: int, path: str, body: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "host": "127.0.0.1",
        "port": port,
        "path": path,
        "method": "POST" if body is not None else "GET",
        "json": body,
        "graphql": path == "/graphql",
        "concurrency": 4,
        **extra,
    }


def main(
    *, seconds: float = 15.0, size: str = "small", database: str | None = None, write: bool = True
) -> str:
    """Profile the deep leaderboard (GraphQL, uncached and repeated), the REST board, the validator loop."""
    ds = datasets.ensure(config.SIZES[size]) if database is None else datasets.existing(database)
    size = size if database is None else database
    logs = Path(tempfile.mkdtemp(prefix="oro_bench_profile_"))
    option = "--database" if database else "--size"
    sections = [
        f"`python -m benchmarks profile --seconds {seconds:g} {option} {size}`: "
        "one server process "
        f"(`--workers 1`, `ORO_GRAPHQL_DEBUG=1`) on {ds.database}, py-spy at {RATE} Hz with `--gil` (samples "
        "of the thread holding the GIL: Python at work, waits left out), load generator at concurrency 4. "
        "Each sample counts for the innermost frame in a known library; standard-library frames count for "
        "their caller, except `json`."
    ]
    server = start_ours("ours_profile", ds.database, 18440, 1, logs, extra_env={"ORO_GRAPHQL_DEBUG": "1"})
    try:
        status, body = post_json(server.base_url + "/graphql", {"query": queries.DEEP_LEADERBOARD})
        if status == 200 and not body.get("errors"):
            ext = body.get("extensions") or {}
            sections.append(f"One deep-leaderboard answer's `extensions`: `{json.dumps(ext)[:400]}`.")
            variants = [
                ("GraphQL deep leaderboard, a new document per request (no cache can answer)", True),
                ("GraphQL deep leaderboard, the same document repeated", False),
            ]
            for label, unique in variants:
                raw = logs / f"pyspy_graphql_{'uncached' if unique else 'repeated'}.txt"
                spec = _http(
                    server.port, "/graphql", {"query": queries.DEEP_LEADERBOARD}, unique_document=unique
                )
                sections.append(
                    _table(label, _record(server.process.pid, spec, seconds, raw), raw, seconds, "request")
                )
        else:
            sections.append(f"GraphQL deep leaderboard not profiled: HTTP {status}, {json.dumps(body)[:300]}")
        raw = logs / "pyspy_rest_leaderboard.txt"
        load = _record(server.process.pid, _http(server.port, queries.REST_LEADERBOARD, None), seconds, raw)
        sections.append(_table("REST GET /v1/public/leaderboard?limit=100", load, raw, seconds, "request"))
    finally:
        stop(server)

    world = datasets.build_loop_world()
    server = start_ours("ours_profile_loop", world.database, 18441, 1, logs)
    try:
        spec = {"kind": "validators", "base_url": server.base_url, "uris": world.uris, "validators": 8}
        spec["problems"] = world.problems
        raw = logs / "pyspy_validator_loop.txt"
        load = _record(server.process.pid, spec, seconds, raw)
        sections.append(
            _table(
                "Validator loop, 8 validators (claim, heartbeat, progress, complete)",
                load,
                raw,
                seconds,
                "claim",
            )
        )
    finally:
        stop(server)
    text = "\n\n".join(sections)
    if write:
        report.write_section("profile", text)
    print(text)
    return text
