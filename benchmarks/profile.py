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

from benchmarks import config, datasets, queries, report
from benchmarks.servers import post_json, start_ours, stop

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
        path = frame[frame.rfind("(") + 1 :] if "(" in frame else frame
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


def _profile_once(
    server_pid: int, server_port: int, document_unique: bool, seconds: float, out: Path
) -> dict[str, object]:
    spec = {
        "kind": "http",
        "host": "127.0.0.1",
        "port": server_port,
        "path": "/graphql",
        "method": "POST",
        "json": {"query": queries.DEEP_LEADERBOARD},
        "graphql": True,
        "unique_document": document_unique,
        "concurrency": 4,
        "warmup": 2.0,
        "duration": seconds + 2.0,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", handle.name],
        cwd=str(config.REPO),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    done = subprocess.run(
        [
            spy,
            "record",
            "--pid",
            str(server_pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    stdout, _ = load.communicate(timeout=seconds + 60)
    Path(handle.name).unlink(missing_ok=True)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {done.stderr[-500:]}")
    return json.loads(stdout or "{}")


def main(*, seconds: float = 15.0, size: str = "small", write: bool = True) -> str:
    ds = datasets.ensure(config.SIZES[size])
    logs = Path(tempfile.mkdtemp(prefix="oro_bench_profile_"))
    server = start_ours("ours_profile", ds.database, 18440, 1, logs, extra_env={"ORO_GRAPHQL_DEBUG": "1"})
    sections = []
    try:
        status, body = post_json(server.base_url + "/graphql", {"query": queries.DEEP_LEADERBOARD})
        ext = body.get("extensions") if isinstance(body, dict) else None
        sql_note = json.dumps((ext or {}).get("sql")) if ext else "no extensions in the answer"
        sections.append(
            f"Profile of one server process (`ORO_GRAPHQL_DEBUG=1`) on {ds.database}; py-spy at 200 Hz, "
            f"on-CPU samples only, {seconds:g} s per variant, load generator at concurrency 4. "
            f"One answer's `extensions.sql`: {sql_note}."
        )
        for unique, label in (
            (True, "new document per request (uncached path)"),
            (False, "the same document repeated"),
        ):
            raw = logs / f"pyspy_{'uncached' if unique else 'repeated'}.txt"
            load = _profile_once(server.process.pid, server.port, unique, seconds, raw)
            by_category, by_function, total = summarise(raw)
            cpu = total / (200 * seconds)
            rows = [
                f"#### {label}",
                "",
                f"Load: {load.get('rps')} req/s, p50 {load.get('p50_ms')} ms, p99 {load.get('p99_ms')} ms, "
                f"errors {load.get('errors')}; {total} samples, the process busy {cpu:.0%} of one core "
                f"(about {1000 * cpu / load['rps']:.1f} ms of CPU per request)."
                if load.get("rps")
                else f"Load: {json.dumps(load)[:300]}; {total} samples.",
                "",
                "| where | share of CPU samples |",
                "| --- | --- |",
            ]
            rows += (
                [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_category.most_common()]
                if total
                else []
            )
            rows += ["", "Hottest functions (self time):", "", "| function | share |", "| --- | --- |"]
            rows += (
                [f"| `{fn[:140]}` | {100 * n / total:.1f}% |" for fn, n in by_function.most_common(15)]
                if total
                else []
            )
            rows += ["", f"Raw stacks: `{raw}` (not kept in git)."]
            sections.append("\n".join(rows))
    finally:
        stop(server)
    text = "\n\n".join(sections)
    if write:
        report.write_section("profile", text)
    print(text)
    return text
