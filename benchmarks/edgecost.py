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

``--validator-cycles N`` measures the validator loop instead, in this process: the app on the loop
database (``datasets.build_loop_world``, rebuilt), N full signed cycles (claim, heartbeat, progress of
3 problems, complete; real SR25519 signatures, made before the measure) through the ASGI app, and the
process CPU per cycle. With ``--callgrind`` the same runs twice under ``valgrind --tool=callgrind``,
with N cycles and with none, and the difference gives instructions per cycle: a count that other
processes on the machine do not move, the figure to compare checkouts with.

Uses ``BENCH_DB_PREFIX``/``BENCH_REDIS_URL``/``BENCH_PORT_BASE`` like the harness (port base + 7).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
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


def measure(pid: int, port: int, request: Request, count: int) -> tuple[float, float, int, float]:
    """(ms of server CPU per request, requests/s, non-200 answers, ms of this client's CPU per
    request) for ``count`` requests. The client's share matters on a machine the client and the
    servers share, as the harness' do: how an answer is written decides how often the client wakes."""
    before = cpu_seconds(pid)
    client_before = time.process_time()
    started = time.perf_counter()
    bad = asyncio.run(drive(port, request, count))
    wall = time.perf_counter() - started
    client = time.process_time() - client_before
    after = cpu_seconds(pid)
    assert before is not None and after is not None
    return (after - before) * 1000 / count, count / wall, bad, client * 1000 / count


VALIDATOR_WARMUP = 5  # cycles before the measure: imports done, statements compiled, pools filled


def _loop_world(*, reuse: bool) -> datasets.LoopWorld:
    """The loop database, built afresh, or (``reuse``: what the callgrind runs do, so that building it
    is not measured under valgrind) the one the last build left, reset."""
    if not reuse:
        return datasets.build_loop_world()
    import psycopg

    database = config.LOOP_DATABASE
    datasets.reset_loop_world(database)
    with psycopg.connect(config.dsn(database)) as conn:
        problems = [
            str(r[0])
            for r in conn.execute(
                "SELECT id FROM problem ORDER BY position LIMIT %s", (datasets.LOOP_PROGRESS_PROBLEMS,)
            )
        ]
    uris = [f"//bench{i}" for i in range(datasets.LOOP_VALIDATORS)]
    return datasets.LoopWorld(database, uris, [], problems)


async def _validator_cycles(count: int, world: datasets.LoopWorld) -> float:
    """Run VALIDATOR_WARMUP + ``count`` signed cycles through the app in this process; the process CPU
    seconds the last ``count`` took (signing excluded: every header is signed before)."""
    import httpx
    from substrateinterface import Keypair

    from benchmarks.servers import ours_env
    from oro_graph.app import create_app
    from oro_graph.auth import sign_headers
    from oro_graph.settings import load_settings

    data_dir = Path(tempfile.mkdtemp(prefix="oro_edgecost_"))
    env = ours_env(world.database, config.PORT_BASE + 7, data_dir)
    # Headers are signed before the measure, which under callgrind lasts minutes: a wide skew.
    env["ORO_TIMESTAMP_SKEW_SECONDS"] = "86400"
    os.environ.update(env)
    app = create_app(load_settings(), migrate=False)
    keypairs = [Keypair.create_from_uri(uri) for uri in world.uris]
    total = VALIDATOR_WARMUP + count
    headers = [[sign_headers(keypairs[i % len(keypairs)]) for _ in range(4)] for i in range(total)]
    progress = {"problems": [{"problem_id": p, "status": "SUCCESS", "score": 0.5} for p in world.problems]}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://edgecost") as client,
    ):

        async def cycle(signed: list[dict[str, str]]) -> None:
            claim = await client.post("/v1/validator/work/claim", json={"cpu_pct": 12.5}, headers=signed[0])
            assert claim.status_code == 200, claim.text
            run = f"/v1/validator/evaluation-runs/{claim.json()['eval_run_id']}"
            for path, body, signed_by in (
                ("heartbeat", {"cpu_pct": 20.0}, signed[1]),
                ("progress", progress, signed[2]),
                ("complete", {"terminal_status": "SUCCESS", "validator_score": 0.5}, signed[3]),
            ):
                answer = await client.post(f"{run}/{path}", json=body, headers=signed_by)
                assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"

        for signed in headers[:VALIDATOR_WARMUP]:
            await cycle(signed)
        started = time.process_time()
        for signed in headers[VALIDATOR_WARMUP:]:
            await cycle(signed)
        return time.process_time() - started


def _callgrind_instructions(count: int) -> int:
    """Instructions (every thread) of this module's ``--validator-cycles count`` under callgrind."""
    out = Path(tempfile.mkdtemp(prefix="oro_callgrind_")) / "callgrind.out"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.edgecost",
            "--validator-cycles",
            str(count),
            "--reuse-world",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    found = re.search(r"^summary:\s*(\d+)", out.read_text(errors="replace"), re.MULTILINE)
    assert found is not None, f"no summary line in {out}"
    return int(found.group(1))


def validator_cycles(count: int, *, callgrind: bool, reuse: bool) -> None:
    """Print the validator loop's CPU per cycle, or (``callgrind``) its instructions per cycle."""
    if not callgrind:
        seconds = asyncio.run(_validator_cycles(count, _loop_world(reuse=reuse)))
        if count:
            ms = seconds * 1000 / count
            print(f"validator cycle (claim, heartbeat, progress, complete): {ms:.2f} ms CPU")
        return
    _loop_world(reuse=reuse)  # built here, outside valgrind
    with_cycles, without = _callgrind_instructions(count), _callgrind_instructions(0)
    per_cycle = (with_cycles - without) / count
    print(
        f"validator cycle: {per_cycle / 1e6:.1f} M instructions "
        f"({with_cycles:,} with {count} cycles, {without:,} with none)"
    )


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
    parser.add_argument(
        "--validator-cycles",
        type=int,
        metavar="N",
        help="measure N signed validator cycles in this process instead (CPU ms per cycle)",
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="with --validator-cycles: instructions per cycle"
    )
    parser.add_argument("--reuse-world", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, kill) unwinds through the finally below, which stops the servers: a killed
    # run once left its server holding bench_small, and the next quick run failed on it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.validator_cycles is not None:
        validator_cycles(args.validator_cycles, callgrind=args.callgrind, reuse=args.reuse_world)
        return
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
            found: dict[str, list[tuple[float, float, int, float]]] = {c: [] for c in checkouts}
            for _checkout, port, _server in servers:
                request = requests(port, str(row[0]))[name]
                asyncio.run(drive(port, request, 200))  # warm: cache filled, code paths imported
            for _ in range(args.rounds):
                for checkout, port, server in servers:
                    request = requests(port, str(row[0]))[name]
                    found[checkout].append(measure(server.process.pid, port, request, args.requests))
            line = f"{name:36s}"
            for checkout in checkouts:
                ms, _rps, bad, _client = min(found[checkout])
                client = min(round[3] for round in found[checkout])
                line += f" {ms:6.3f} ms ({Path(checkout).name}, client {client:.3f} ms, non-200: {bad})"
            if len(checkouts) == 2:
                line += f"  ratio {min(found[checkouts[0]])[0] / min(found[checkouts[1]])[0]:.2f}"
            print(line, flush=True)
    finally:
        for _, _, server in servers:
            stop(server)


if __name__ == "__main__":
    main()
