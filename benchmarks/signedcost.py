"""Instructions per validator cycle, in process: ``python -m benchmarks.signedcost``.

A validator cycle is four signed REST calls (claim, heartbeat, progress, complete). Their cost at the
edge (signature check, nonce, rate-limit charge, thread hops) is small next to the machine's noise,
so this counts instructions instead of timing: the app runs in this process (ASGI, no sockets, no
lifespan), one validator drives ``--cycles`` cycles through it against the loop database
(``datasets.build_loop_world``: PostgreSQL, Redis at ``BENCH_REDIS_URL``, as the harness' servers
run), and the whole process runs under ``valgrind --tool=callgrind`` twice, with ``--cycles`` and
with twice as many; the difference over the extra cycles is the cost of one cycle (start-up,
imports and warm-up cancel out). It includes the client's signing (the same for every checkout).
``--compare ../other-checkout`` counts that checkout too, the same way. ``--counts`` runs the cycles
once, without callgrind, and counts what a cycle asks for: signature verifications, worker-thread
hops, Redis commands and SQL statements.

Uses ``BENCH_DB_PREFIX``/``BENCH_REDIS_URL`` like the harness (database ``<prefix>_loop``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import config, datasets

WARM_CYCLES = 3


async def cycles(
    count: int, uri: str, problems: list[str], warmed: Callable[[], object] = lambda: None
) -> None:
    """``count`` validator cycles through the app, after ``WARM_CYCLES`` more (then ``warmed()``);
    each call must succeed."""
    import httpx
    from substrateinterface import Keypair

    from oro_graph.app import create_app
    from oro_graph.auth import sign_headers
    from oro_graph.runtime import Runtime
    from oro_graph.settings import load_settings

    data_dir = tempfile.mkdtemp(prefix="oro_signedcost_")
    settings = load_settings(
        database_url=config.sqlalchemy_url(config.LOOP_DATABASE),
        redis_url=config.REDIS_URL,
        rate_limit_per_minute=100_000_000,
        write_rate_limit="100000000/minute",
        secret_key="bench-secret-key-not-for-production-0123456789",
        data_dir=Path(data_dir),
        race_scheduler=False,
        require_inference_credential=False,
    )
    runtime = Runtime.build(settings)
    app = create_app(settings, runtime=runtime, migrate=False)
    keypair = Keypair.create_from_uri(uri)
    rng = random.Random(6)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def call(path: str, body: dict[str, object]) -> httpx.Response:
            answer = await client.post(path, json=body, headers=sign_headers(keypair))
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {answer.status_code}: {answer.text[:300]}")
            return answer

        for done in range(WARM_CYCLES + count):
            if done == WARM_CYCLES:
                warmed()
            run = (await call("/v1/validator/work/claim", {"cpu_pct": 12.5})).json()["eval_run_id"]
            base = f"/v1/validator/evaluation-runs/{run}"
            await call(f"{base}/heartbeat", {"cpu_pct": 20.0})
            progress = [{"problem_id": p, "status": "SUCCESS", "score": 0.5} for p in problems]
            await call(f"{base}/progress", {"problems": progress})
            score = round(rng.random(), 4)
            await call(f"{base}/complete", {"terminal_status": "SUCCESS", "validator_score": score})
    runtime.close()


def counts(count: int, uri: str, problems: list[str]) -> dict[str, float]:
    """Per cycle, in this process: SR25519 verifications (the client signs, it does not verify),
    worker-thread hops, Redis commands and SQL statements sent."""
    import anyio.to_thread
    import redis
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from substrateinterface import Keypair

    seen = dict.fromkeys(("signature verifications", "thread hops", "Redis commands", "SQL statements"), 0)

    def counting(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(fn):

            async def counted_async(*args: Any, **kwargs: Any) -> Any:
                seen[name] += 1
                return await fn(*args, **kwargs)

            return counted_async

        def counted(*args: Any, **kwargs: Any) -> Any:
            seen[name] += 1
            return fn(*args, **kwargs)

        return counted

    Keypair.verify = counting("signature verifications", Keypair.verify)  # type: ignore[method-assign]
    anyio.to_thread.run_sync = counting("thread hops", anyio.to_thread.run_sync)
    redis.Redis.execute_command = counting("Redis commands", redis.Redis.execute_command)  # type: ignore[method-assign]
    event.listen(
        Engine,
        "before_cursor_execute",
        lambda *_: seen.__setitem__("SQL statements", seen["SQL statements"] + 1),
    )
    asyncio.run(cycles(count, uri, problems, warmed=lambda: seen.update(dict.fromkeys(seen, 0))))
    return {name: value / count for name, value in seen.items()}


def instructions(checkout: str, count: int, world: datasets.LoopWorld) -> int:
    """Instructions (callgrind's Ir) of one process running ``count`` cycles from ``checkout``."""
    datasets.reset_loop_world(world.database)
    out = Path(tempfile.mkdtemp(prefix="oro_signedcost_cg_")) / "callgrind.out"
    env = {**os.environ, "PYTHONPATH": checkout + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,  # this file, whichever checkout ``oro_graph`` comes from
        "--run",
        str(count),
        "--uri",
        world.uris[0],
        *(arg for p in world.problems for arg in ("--problem", p)),
    ]
    subprocess.run(command, env=env, cwd=checkout, check=True, capture_output=True)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    assert found is not None, f"no totals in {out}"
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.signedcost", description=__doc__)
    parser.add_argument("--cycles", type=int, default=10, help="cycles of the shorter run (default 10)")
    parser.add_argument("--compare", metavar="CHECKOUT", help="also count this checkout")
    parser.add_argument(
        "--counts",
        action="store_true",
        help="no callgrind: count verifications, thread hops, Redis commands and SQL statements per cycle",
    )
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # the measured process
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--problem", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run is not None:
        asyncio.run(cycles(args.run, args.uri, args.problem))
        return
    world = datasets.build_loop_world()
    if args.counts:
        for name, value in counts(args.cycles, world.uris[0], world.problems).items():
            print(f"{name:24s} {value:6.2f} per cycle")
        return
    checkouts = [str(config.REPO)] + ([str(Path(args.compare).resolve())] if args.compare else [])
    per_cycle = {}
    for checkout in checkouts:
        short = instructions(checkout, args.cycles, world)
        long = instructions(checkout, 2 * args.cycles, world)
        per_cycle[checkout] = (long - short) / args.cycles
        name = Path(checkout).name
        print(f"{name:24s} {per_cycle[checkout] / 1e6:8.2f} M instructions per cycle", flush=True)
    if len(checkouts) == 2:
        ours, other = (per_cycle[c] for c in checkouts)
        print(f"ratio {ours / other:.3f} ({(ours - other) / other:+.1%})")


if __name__ == "__main__":
    main()
