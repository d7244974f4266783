"""What a Redis outage costs a running server: ``python -m benchmarks.redis_outage``.

One ``python -m oro_graph serve`` process (SQLite in a temporary folder, or ``--database-url``) on
a private ``redis-server`` without persistence. Three phases of ``--seconds`` each:

1. Redis up;
2. Redis hung (SIGSTOP: connections accepted, nothing answered);
3. Redis killed, then started again (empty).

Throughout, 4 threads send ``GET /health`` back to back, ``--signed`` threads send signed validator
calls (``POST /v1/validator/work/claim``, which answers 204 with no work: a signature, a nonce, a
registry check and a transaction) and public reads (``/v1/public/leaderboard``). It prints, per
phase, the latency of /health (median, p99, max), the statuses of the signed calls and their
slowest, and for the validator the longest gap between two answered signed calls around each
fault: how long validators pause.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _count(statuses: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--signed", type=int, default=20, help="threads sending signed calls")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args(argv)

    from oro_graph.migrations import upgrade
    from oro_graph.runtime import Runtime
    from oro_graph.settings import Settings
    from tests.factories import make_world
    from tests.hardening.support import PrivateRedis, ServerProcess, signed

    work = Path(tempfile.mkdtemp(prefix="oro-redis-bench-"))
    url = args.database_url or f"sqlite:///{work / 'oro.db'}"
    upgrade(url)
    settings = Settings(database_url=url, secret_key="bench", data_dir=work / "state")
    runtime = Runtime.build(settings)
    make_world(runtime)
    runtime.close()
    redis_server = PrivateRedis()
    server = ServerProcess(
        {
            "ORO_DATABASE_URL": url,
            "ORO_SECRET_KEY": "bench",
            "ORO_DATA_DIR": str(work / "state"),
            "ORO_REDIS_URL": redis_server.url,
            "ORO_RATE_LIMIT_PER_MINUTE": "1000000",
        },
        work,
    ).start()

    phase = ["up"]
    health: list[tuple[str, float]] = []
    calls: list[tuple[str, float, float, int]] = []  # (phase, started, seconds, status)
    stop = threading.Event()

    def health_sender() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            while not stop.is_set():
                t0 = time.perf_counter()
                http.get("/health")
                health.append((phase[0], time.perf_counter() - t0))

    def signed_sender(i: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            while not stop.is_set():
                t0, wall = time.perf_counter(), time.monotonic()
                if i % 2:
                    status = http.get("/v1/public/leaderboard").status_code
                else:
                    status = http.post("/v1/validator/work/claim", headers=signed("Charlie")).status_code
                calls.append((phase[0], wall, time.perf_counter() - t0, status if i % 2 == 0 else -status))
                time.sleep(0.05)

    threads = [threading.Thread(target=health_sender) for _ in range(4)]
    threads += [threading.Thread(target=signed_sender, args=(i,)) for i in range(args.signed)]
    marks: dict[str, float] = {}
    try:
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        phase[0], marks["hung"] = "hung", time.monotonic()
        redis_server.proc.send_signal(signal.SIGSTOP)
        time.sleep(args.seconds)
        redis_server.proc.send_signal(signal.SIGCONT)
        phase[0], marks["killed"] = "killed", time.monotonic()
        redis_server.proc.kill()
        redis_server.proc.wait(10)
        time.sleep(args.seconds)
        phase[0], marks["back"] = "back", time.monotonic()
        redis_server.proc = redis_server._start()
        time.sleep(args.seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        redis_state = httpx.get(server.base_url + "/health", timeout=10).json().get("redis")
        server.stop()
        redis_server.close()

    report: dict[str, Any] = {"redis at the end": redis_state}
    for name in ("up", "hung", "killed", "back"):
        h = [s for p, s in health if p == name]
        signed_calls = [(s, st) for p, _, s, st in calls if p == name and st >= 0]
        public = [(s, -st) for p, _, s, st in calls if p == name and st < 0]
        report[name] = {
            "/health": {
                "n": len(h),
                "median_ms": round(statistics.median(h) * 1000, 1) if h else None,
                "p99_ms": round(_percentile(h, 0.99) * 1000, 1),
                "max_ms": round(max(h) * 1000, 1) if h else None,
            },
            "signed claims": {
                "statuses": {
                    str(k): sum(1 for _, st in signed_calls if st == k)
                    for k in {st for _, st in signed_calls}
                },
                "max_ms": round(max(s for s, _ in signed_calls) * 1000, 1) if signed_calls else None,
            },
            "public reads": {
                "statuses": _count(st for _, st in public),
                "max_ms": round(max(s for s, _ in public) * 1000, 1) if public else None,
            },
        }
    # How long validators pause: the longest time, around each fault, with no answered signed call.
    answered = sorted(t + s for _, t, s, st in calls if st in (200, 204))
    for fault in ("hung", "killed", "back"):
        at = marks[fault]
        window = [t for t in answered if at - 1 <= t <= at + args.seconds]
        gaps = [b - a for a, b in zip(window, window[1:], strict=False)]
        report[f"longest gap in answered signed calls after '{fault}' (s)"] = (
            round(max(gaps), 3) if gaps else None
        )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
