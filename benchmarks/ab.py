"""Checkouts side by side on a busy machine: ``python -m benchmarks.ab CHECKOUT [CHECKOUT ...]``.

``benchmarks.edgecost`` measures one quiet server's CPU per request; some costs only show when the
cores are busy (a thread hop is two context switches and a handover of the GIL per request, which a
saturated machine pays dearly for). This serves each checkout in turn on the harness' terms (two
server processes, Redis, 8 keep-alive connections from the pinned load generator, the full run's
warm-up and window) and drives one workload at each, ``--rounds`` times in alternation, so that
every checkout sees the same machine. It prints each drive (requests/s, p50, errors, CPU per server
process) and, per checkout, its requests/s sorted and its server CPU per request (both processes).

Workloads: ``version-page`` (workload (b): the per-version page, a different version each request;
answered from the response cache once warm) and ``deep`` (the cached deep leaderboard). The dataset
is the full run's (medium), built if missing. Uses ``BENCH_DB_PREFIX``/``BENCH_REDIS_URL``/
``BENCH_PORT_BASE`` like the harness (port base + 20 onwards).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import config, datasets, queries
from benchmarks.servers import cpu_share, start_ours, stop
from benchmarks.workloads import drive, http_spec, version_ids


def spec_for(workload: str, plan: config.Plan, server: Any, ids: list[str]) -> dict[str, Any]:
    if workload == "version-page":
        pool = [{"id": i} for i in ids]
        return http_spec(plan, server, "/graphql", body={"query": queries.VERSION_PAGE}, variables_pool=pool)
    return http_spec(plan, server, "/graphql", body={"query": queries.DEEP_LEADERBOARD})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("checkouts", nargs="+", help="worktrees to serve from (this one: .)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", choices=("version-page", "deep"), default="version-page")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the servers
    plan = config.make_plan(False)
    dataset = datasets.ensure(config.SIZES[plan.primary], log=lambda m: print(m, file=sys.stderr))
    database = dataset.size.database
    ids = version_ids(database)
    checkouts = [str(Path(c).resolve()) for c in args.checkouts]
    found: dict[str, list[tuple[float, float]]] = {c: [] for c in checkouts}
    for _ in range(args.rounds):
        for i, checkout in enumerate(checkouts):
            logs = Path(tempfile.mkdtemp(prefix="oro_ab_"))
            # The checkout named, not whichever one the virtual environment installed.
            env = {"PYTHONPATH": checkout + os.pathsep + os.environ.get("PYTHONPATH", "")}
            server = start_ours(f"ab{i}", database, config.PORT_BASE + 20 + i, plan.server_workers, logs, env)
            try:
                before, started = server.cpu_seconds(), time.perf_counter()
                figures = drive(spec_for(args.workload, plan, server, ids), timeout=plan.duration + 300)
                cpu = cpu_share(before, server.cpu_seconds(), time.perf_counter() - started)
            finally:
                stop(server)
            rps = float(figures.get("rps", 0.0))
            found[checkout].append((rps, sum(cpu)))
            print(
                f"{Path(checkout).name:16s} {rps:9.1f} req/s  p50 {figures.get('p50_ms')} ms  "
                f"errors {figures.get('errors')}  CPU per process {cpu}",
                flush=True,
            )
    for checkout in checkouts:
        rates = sorted(rps for rps, _ in found[checkout])
        # CPU over the whole drive (warm-up included) per request of the window: a ratio between
        # checkouts, not an absolute figure.
        per_request = sorted(cores / rps * 1000 for rps, cores in found[checkout] if rps)
        print(
            f"{Path(checkout).name:16s} req/s {rates}  server CPU ms/request "
            f"{[round(ms, 3) for ms in per_request]}"
        )


if __name__ == "__main__":
    main()
