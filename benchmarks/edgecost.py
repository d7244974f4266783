"""CPU per request of the layers in front of the routers: ``python -m benchmarks.edgecost``.

Throughput on a shared machine is noise; CPU seconds a server process spends per request are not
(much). This starts one server process (``serve --workers 1``, Redis as the harness sets it) from
this checkout, warms each request, then sends it ``--requests`` times over 8 keep-alive connections
and reads the process's utime+stime (``/proc/PID/stat``, its threads included) before and after.
It prints milliseconds of server CPU per request for: a cached GraphQL answer (the deep
leaderboard), a cached per-version page, the same two uncached (a new comment on every request, as
the harness' ``graphql_uncached`` does: no response cache can answer it, so the edge, the executor
and the statement run every time), ``/health`` (one ``SELECT 1``) and the cached REST leaderboard.
``--rounds`` repeats each and keeps the lowest (interference only ever adds CPU); ``--compare
../other-checkout`` serves that checkout too and measures the two in turns.

Uses ``BENCH_DB_PREFIX``/``BENCH_REDIS_URL``/``BENCH_PORT_BASE`` like the harness (port base + 7).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import config, datasets, queries
from benchmarks.loadgen import HttpConnection, build_request
from benchmarks.servers import cpu_seconds, start_ours, stop

CONCURRENCY = 8
UNIQUE = itertools.count()  # the uncached requests' comments: never the same twice in a run

Request = Callable[[], bytes]  # the next request's bytes


def requests(port: int, version_id: str) -> dict[str, Request]:
    spec = {"host": "127.0.0.1", "port": port}

    def post(document: str, variables: dict[str, Any] | None = None) -> bytes:
        body: dict[str, Any] = {"query": document}
        if variables:
            body["variables"] = variables
        return build_request({**spec, "path": "/graphql", "method": "POST"}, json.dumps(body).encode())

    def same(raw: bytes) -> Request:
        return lambda: raw

    def uncached(document: str, variables: dict[str, Any] | None = None) -> Request:
        return lambda: post(f"# edgecost {os.getpid()}-{next(UNIQUE)}\n{document}", variables)

    return {
        "graphql cached (deep leaderboard)": same(post(queries.DEEP_LEADERBOARD)),
        "graphql cached (version page)": same(post(queries.VERSION_PAGE, {"id": version_id})),
        "graphql uncached (deep leaderboard)": uncached(queries.DEEP_LEADERBOARD),
        "graphql uncached (version page)": uncached(queries.VERSION_PAGE, {"id": version_id}),
        "/health": same(build_request({**spec, "path": "/health"}, None)),
        "REST cached leaderboard": same(build_request({**spec, "path": queries.REST_LEADERBOARD}, None)),
    }


async def drive(port: int, request: Request, count: int) -> int:
    """Send ``count`` requests over CONCURRENCY connections; the number of non-200 answers."""
    left = [count]
    bad = [0]

    async def worker() -> None:
        conn = HttpConnection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                status, _ = await conn.request(request())
                if status != 200:
                    bad[0] += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return bad[0]


def measure(pid: int, port: int, request: Request, count: int) -> tuple[float, float, int]:
    """(ms of server CPU per request, requests/s, non-200 answers) for ``count`` requests."""
    before = cpu_seconds(pid)
    started = time.perf_counter()
    bad = asyncio.run(drive(port, request, count))
    wall = time.perf_counter() - started
    after = cpu_seconds(pid)
    assert before is not None and after is not None
    return (after - before) * 1000 / count, count / wall, bad


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edgecost", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="measure only the requests whose name contains this")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also serve from this checkout (another worktree), measured in turns with this one "
        "so that both see the same machine: the ratio is the figure to trust on a busy machine",
    )
    args = parser.parse_args(argv)
    dataset = datasets.ensure(config.SIZES["small"], log=lambda m: print(m, file=sys.stderr))
    import psycopg

    with psycopg.connect(config.dsn(dataset.size.database)) as conn:
        row = conn.execute(
            "SELECT id FROM agentversion WHERE final_score IS NOT NULL ORDER BY final_score DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    extra = dict(item.split("=", 1) for item in args.env)
    checkouts = [str(config.REPO)] + ([args.compare] if args.compare else [])
    servers = []
    try:
        for i, checkout in enumerate(checkouts):
            port = config.PORT_BASE + 7 + i
            logs = Path(tempfile.mkdtemp(prefix="oro_edgecost_"))
            # The checkout named, not whichever one the virtual environment installed.
            env = {**extra, "PYTHONPATH": checkout + os.pathsep + os.environ.get("PYTHONPATH", "")}
            servers.append(
                (checkout, port, start_ours(f"edgecost{i}", dataset.size.database, port, 1, logs, env))
            )
        names = list(requests(0, str(row[0])))
        for name in names:
            if args.only and args.only not in name:
                continue
            found: dict[str, list[tuple[float, float, int]]] = {c: [] for c in checkouts}
            for _checkout, port, _server in servers:
                request = requests(port, str(row[0]))[name]
                asyncio.run(drive(port, request, 200))  # warm: cache filled, code paths imported
            for _ in range(args.rounds):
                for checkout, port, server in servers:
                    request = requests(port, str(row[0]))[name]
                    found[checkout].append(measure(server.process.pid, port, request, args.requests))
            line = f"{name:36s}"
            for checkout in checkouts:
                ms, rps, bad = min(found[checkout])
                line += f" {ms:6.3f} ms ({Path(checkout).name}, non-200: {bad})"
            if len(checkouts) == 2:
                line += f"  ratio {min(found[checkouts[0]])[0] / min(found[checkouts[1]])[0]:.2f}"
            print(line, flush=True)
    finally:
        for _, _, server in servers:
            stop(server)


if __name__ == "__main__":
    main()
