"""What it costs the server to refuse an abusive GraphQL document: ``python -m benchmarks.refusals``.

Each document in ``ABUSES`` breaks one limit of the graph (depth, aliases, page size, ids, cost,
tokens, batch size). Each is sent ``--n`` times in process, on an empty SQLite database, two
ways, and timed with ``time.perf_counter`` (wall) and ``time.thread_time`` (CPU of the thread
that serves it: a refusal never leaves the event loop's thread, and on a shared machine the CPU
time is the steadier figure):

- schema: ``schema.execute`` alone (parse, validation and the limit rules), where a batch has no
  meaning and is skipped;
- app: the whole ASGI application called directly (size cap, rate limit, response cache,
  persisted queries, Strawberry's HTTP layer and the schema), without a socket.

It prints the median and 99th percentile per document, the median CPU time, and the SQL
statements run while they were refused (always 0: ``tests/hardening/test_graphql_limits.py``
asserts it).

``--health SECONDS`` measures what the refusals cost everyone else instead: a real server
(``python -m oro_graph serve``, one worker, SQLite; ``--per-minute`` points a client, lifted by
default) on loopback, 4 concurrent senders from one address posting the introspection flood or
the over-budget batch in a loop for SECONDS each (the same document, or a fresh one every time),
and ``/health`` probed every 150 ms from another address meanwhile (its latency, against the same
probe with no senders).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event

ONE = "query { currentSuite { suiteId } }"
COSTLY = """query {
  evaluationRuns(first: 100) { edges { node {
    problemResults(first: 100) { edges { node { problem { title } run { validator { name } } } } }
  } } }
}"""
# Just within the cost budget on its own (24,201 of 25,000): ten of them in one request are not.
WITHIN_BUDGET = """query {
  evaluationRuns(first: 100) { edges { node {
    problemResults(first: 60) { edges { node { problem { title } run { validator { name } } } } }
  } } }
}"""
# 30 aliased copies of a schema walk: each about 1,500 objects, 1.5 KB in all. Introspection was
# free, and such a document ran for a second and answered 1.6 MB.
INTROSPECTION_FLOOD = (
    "{" + "".join(f"a{i}:__schema{{types{{fields{{type{{name ofType{{name}}}}}}}}}}" for i in range(30)) + "}"
)


@dataclass(frozen=True)
class Abuse:
    """An abusive request body, and how it must be refused: HTTP status, error code, words in the message."""

    name: str
    body: Any
    status: int
    code: str | None
    words: str


ABUSES = [
    Abuse(
        "deep nesting (17 levels)",
        {
            "query": "{ currentSuite { "
            + "versions { edges { node { agent { miner { agents { edges { node { " * 2
            + "name"
            + " } } } } } } } }" * 2
            + " } }"
        },
        200,
        "GRAPHQL_VALIDATION_FAILED",
        "exceeds maximum operation depth",
    ),
    Abuse(
        "deep nesting (600 levels)",
        {"query": "{ " + "a { " * 600 + "b" + " }" * 600 + " }"},
        200,
        "GRAPHQL_VALIDATION_FAILED",
        "exceeds maximum operation depth",
    ),
    Abuse(
        "alias fan-out (200 aliases)",
        {"query": "{ " + " ".join(f"a{i}: currentSuite {{ suiteId }}" for i in range(200)) + " }"},
        200,
        "GRAPHQL_VALIDATION_FAILED",
        "aliases",
    ),
    Abuse(
        "huge page (first: 1000000)",
        {"query": "{ suites(first: 1000000) { totalCount } }"},
        200,
        "BAD_PAGE_ARGUMENT",
        "between 0 and 100",
    ),
    Abuse(
        "huge page in a variable (last: 2^31-1)",
        {"query": "query ($n: Int) { validators(last: $n) { totalCount } }", "variables": {"n": 2**31 - 1}},
        200,
        "BAD_PAGE_ARGUMENT",
        "between 0 and 100",
    ),
    Abuse(
        "10,000 ids in nodes(ids:)",
        {
            "query": "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            "variables": {"ids": ["U3VpdGU6MQ=="] * 10_000},
        },
        200,
        "BAD_PAGE_ARGUMENT",
        "at most 100",
    ),
    Abuse(
        "over the cost budget (100 x 100 nested pages)",
        {"query": COSTLY},
        200,
        "QUERY_TOO_COSTLY",
        "exceeds the budget",
    ),
    Abuse(
        "over the token budget (2,400 tokens)",
        {"query": "{ " + "currentSuite { suiteId } " * 600 + "}"},
        200,
        "GRAPHQL_VALIDATION_FAILED",
        "more than 2000 tokens",
    ),
    Abuse(
        "over the length limit (40,000 characters)",
        {"query": "{ currentSuite { suiteId } " + " " * 40_000 + "}"},
        200,
        "GRAPHQL_VALIDATION_FAILED",
        "characters; at most",
    ),
    Abuse(
        "fragment bomb (16 fragments, each spreading the last twice)",
        {
            "query": "{ ...F16 } fragment F0 on Query { currentSuite { suiteId } } "
            + " ".join(
                f"fragment F{i} on Query {{ ...F{i - 1} a{i}: __typename ...F{i - 1} }}" for i in range(1, 17)
            )
        },
        200,
        "GRAPHQL_VALIDATION_FAILED",
        "once its fragments are expanded",
    ),
    Abuse(
        "repeated fields (300 x currentSuite { suiteId })",
        {"query": "{ " + "currentSuite { suiteId } " * 300 + "}"},
        200,
        "GRAPHQL_VALIDATION_FAILED",
        "times at the same place",
    ),
    Abuse(
        "introspection flood (30 aliased __schema { types { fields { type } } })",
        {"query": INTROSPECTION_FLOOD},
        200,
        "QUERY_TOO_COSTLY",
        "of it is introspection",
    ),
    Abuse("batch of 11 operations", [{"query": ONE}] * 11, 400, None, "Too many operations"),
    Abuse(
        "batch of 10 operations, each within the cost budget",
        [{"query": WITHIN_BUDGET}] * 10,
        200,
        "QUERY_TOO_COSTLY",
        "operations of this batch cost 242010",
    ),
    Abuse(
        "batch of 10 over-budget operations",
        [{"query": COSTLY}] * 10,
        200,
        "QUERY_TOO_COSTLY",
        "exceeds the budget",
    ),
]


def errors_of(body: Any) -> list[dict[str, Any]]:
    """Every error of a GraphQL answer (of every operation, for a batch)."""
    answers = body if isinstance(body, list) else [body]
    return [error for answer in answers for error in answer.get("errors") or []]


class StatementCounter:
    """Counts every SQL statement an engine runs, from any thread (independent of the server's own count)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.count = 0

    def _on_execute(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)


async def call_app(app: Any, raw: bytes) -> tuple[int, bytes]:
    """POST the JSON ``raw`` to /graphql by calling the ASGI app directly: (status, answer bytes)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass
class Figure:
    name: str
    way: str
    n: int
    median_us: float
    p99_us: float
    cpu_median_us: float
    statements: int


def _figure(name: str, way: str, timings: list[tuple[float, float]], statements: int) -> Figure:
    wall = sorted(t[0] for t in timings)
    p99 = wall[min(len(wall) - 1, int(len(wall) * 0.99))]
    cpu = statistics.median(t[1] for t in timings)
    return Figure(name, way, len(wall), statistics.median(wall) * 1e6, p99 * 1e6, cpu * 1e6, statements)


def renamed(body: Any, i: int) -> Any:
    """The body with every document given its own operation name: a fresh document, parsed anew."""
    if isinstance(body, list):
        return [renamed(operation, i * 100 + j) for j, operation in enumerate(body)]
    query = body["query"]
    head = f"query Fresh{i}".replace("-", "_")
    query = f"{head} {query}" if query.startswith("{") else head + query.removeprefix("query")
    return {**body, "query": query}


async def _time(
    n: int, prepare: Callable[[int], Any], call: Callable[[Any], Awaitable[Any]], check: Callable[[Any], None]
) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of ``n`` calls, after a few to warm up. Call ``i`` sends ``prepare(i)``, a
    fresh document; preparing it (encoding JSON) and checking the answer are not timed."""
    for i in range(min(20, n)):  # imports, the validation rules' caches
        check(await call(prepare(-1 - i)))
    timings = []
    for i in range(n):
        request = prepare(i)
        wall, cpu = time.perf_counter(), time.thread_time()
        answer = await call(request)
        timings.append((time.perf_counter() - wall, time.thread_time() - cpu))
        check(answer)
    return timings


async def measure(app: Any, runtime: Any, n: int) -> list[Figure]:
    from oro_graph.graphql.context import Context
    from oro_graph.graphql.schema import schema

    async def execute(body: dict[str, Any]) -> Any:
        context = Context(runtime, headers={})
        return await schema.execute(
            body["query"], variable_values=body.get("variables"), context_value=context
        )

    def executed(result: Any) -> None:
        assert result.errors and result.data is None, result

    figures = []
    for abuse in ABUSES:
        if isinstance(abuse.body, dict):
            with StatementCounter(runtime.db.engine) as counter:
                timings = await _time(n, lambda i, body=abuse.body: renamed(body, i), execute, executed)
            figures.append(_figure(abuse.name, "schema", timings, counter.count))

        def refused(answer: tuple[int, bytes], expected: Abuse = abuse) -> None:
            status, body = answer
            assert status == expected.status and expected.words in body.decode(errors="replace"), answer

        with StatementCounter(runtime.db.engine) as counter:
            timings = await _time(
                n,
                lambda i, body=abuse.body: json.dumps(renamed(body, i)).encode(),
                lambda raw: call_app(app, raw),
                refused,
            )
        figures.append(_figure(abuse.name, "app", timings, counter.count))
    return figures


def build(tmp: Path) -> tuple[Any, Any]:
    """The served app over an empty, migrated SQLite database, with the rate limits lifted."""
    from oro_graph.app import create_app
    from oro_graph.migrations import upgrade
    from oro_graph.runtime import Runtime
    from oro_graph.settings import Settings

    url = f"sqlite:///{tmp / 'oro.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url, data_dir=tmp / "state", secret_key="refusals", rate_limit_per_minute=10**9
    )
    runtime = Runtime.build(settings)
    return create_app(settings, runtime=runtime, migrate=False), runtime


def markdown(figures: list[Figure]) -> str:
    lines = [
        "| refused document | way | n | wall median | wall p99 | CPU median | SQL statements |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.way} | {f.n} | {f.median_us:,.0f} µs | {f.p99_us:,.0f} µs "
            f"| {f.cpu_median_us:,.0f} µs | {f.statements} |"
        )
    return "\n".join(lines)


# (name, body, whether each request is made a fresh document, as an attacker dodging memos would)
ATTACKS: list[tuple[str, Any, bool]] = [
    ("none (baseline)", None, False),
    ("introspection flood, the same document", {"query": INTROSPECTION_FLOOD}, False),
    ("introspection flood, a fresh document each time", {"query": INTROSPECTION_FLOOD}, True),
    ("batch of 10 operations within the cost budget, the same", [{"query": WITHIN_BUDGET}] * 10, False),
    ("batch of 10 operations within the cost budget, fresh", [{"query": WITHIN_BUDGET}] * 10, True),
]


def health_under_attack(seconds: float, senders: int = 4, per_minute: int = 10**9) -> list[dict[str, Any]]:
    """/health latency while ``senders`` threads send each attack for ``seconds``, on a real server
    with ``per_minute`` points a client. Per attack, the senders share one address (127.0.1.k) and
    the probe has its own (127.0.2.k)."""
    import os
    import socket
    import subprocess
    import threading

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "ORO_DATABASE_URL": f"sqlite:///{tmp}/oro.db",
            "ORO_DATA_DIR": f"{tmp}/state",
            "ORO_SECRET_KEY": "refusals-health",
            "ORO_RATE_LIMIT_PER_MINUTE": str(per_minute),
        }
        for name in ("ORO_REDIS_URL", "ORO_GRAPHQL_DEBUG"):
            env.pop(name, None)
        server = subprocess.Popen(
            [sys.executable, "-m", "oro_graph", "serve", "--port", str(port), "--workers", "1"],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.2)
            for k, (name, body, fresh) in enumerate(ATTACKS):
                stop = threading.Event()
                refusals: list[float] = []
                throttled: list[int] = []

                def send(
                    payload: Any = body,
                    address: str = f"127.0.1.{k + 1}",
                    fresh: bool = fresh,
                    stop: threading.Event = stop,
                    refusals: list[float] = refusals,
                    throttled: list[int] = throttled,
                    counter: Iterator[int] = itertools.count(),  # noqa: B008 (one per attack, on purpose)
                ) -> None:
                    sender = httpx.HTTPTransport(local_address=address)
                    with httpx.Client(base_url=base, timeout=60, transport=sender) as http:
                        while not stop.is_set():
                            started = time.perf_counter()
                            sent = renamed(payload, next(counter)) if fresh else payload
                            answer = http.post("/graphql", json=sent)
                            refusals.append(time.perf_counter() - started)
                            assert "QUERY_TOO_COSTLY" in answer.text or answer.status_code == 429, (
                                answer.text[:300]
                            )
                            if answer.status_code == 429:
                                throttled.append(1)

                threads = [threading.Thread(target=send) for _ in range(senders if body else 0)]
                for thread in threads:
                    thread.start()
                probes = []
                probe = httpx.HTTPTransport(local_address=f"127.0.2.{k + 1}")
                with httpx.Client(base_url=base, timeout=60, transport=probe) as http:
                    end = time.monotonic() + seconds
                    while time.monotonic() < end:
                        started = time.perf_counter()
                        assert http.get("/health").status_code == 200
                        probes.append(time.perf_counter() - started)
                        time.sleep(0.15)  # within a client's default 100 points a minute
                stop.set()
                for thread in threads:
                    thread.join()
                probes.sort()
                rows.append(
                    {
                        "attack": name,
                        "senders": len(threads),
                        "refused": len(refusals) - len(throttled),
                        "throttled": len(throttled),
                        "refusal_median_ms": statistics.median(refusals) * 1e3 if refusals else None,
                        "health_n": len(probes),
                        "health_median_ms": statistics.median(probes) * 1e3,
                        "health_p99_ms": probes[min(len(probes) - 1, int(len(probes) * 0.99))] * 1e3,
                        "health_max_ms": probes[-1] * 1e3,
                    }
                )
        finally:
            server.terminate()
            server.wait(timeout=15)
    return rows


def health_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| attack | senders | refused | 429 | answer, median at a sender | /health n | median | p99 | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        refusal = "-" if r["refusal_median_ms"] is None else f"{r['refusal_median_ms']:.1f} ms"
        lines.append(
            f"| {r['attack']} | {r['senders']} | {r['refused']} | {r['throttled']} | {refusal} "
            f"| {r['health_n']} "
            f"| {r['health_median_ms']:.1f} ms | {r['health_p99_ms']:.1f} ms | {r['health_max_ms']:.1f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="refused requests per document and way")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--health", type=float, metavar="SECONDS", help="/health latency under 4 concurrent senders instead"
    )
    parser.add_argument(
        "--per-minute", type=int, default=10**9, help="with --health: points a client (default: lifted)"
    )
    args = parser.parse_args(argv)
    if args.health:
        rows = health_under_attack(args.health, per_minute=args.per_minute)
        print(health_markdown(rows))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        app, runtime = build(Path(tmp))
        try:
            figures = asyncio.run(measure(app, runtime, args.n))
        finally:
            runtime.close()
    print(markdown(figures))
    if args.json:
        args.json.write_text(json.dumps([f.__dict__ for f in figures], indent=1))
    return 0 if all(f.statements == 0 for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
