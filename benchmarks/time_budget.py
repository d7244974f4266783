"""How soon a GraphQL request over its time budget is refused: ``python -m benchmarks.time_budget``.

The served app is called in process (as ``benchmarks.refusals`` does) over an empty SQLite
database with ``ORO_GRAPHQL_TIME_BUDGET_SECONDS`` at ``--budget`` (0.2 s), and
``{ currentSuite { suiteId validatorVariance { versions } } }`` is made slow three ways by
replacing the service behind ``currentSuite``:

- awaiting: the resolver awaits something that never comes (cancelled at the deadline);
- thread: the service blocks its worker thread for 5 s (the request is answered at the deadline,
  the thread finishes alone);
- loop: the call blocks the event loop itself for twice the budget (nothing can interrupt it;
  the fields after it are refused at the next field boundary).

For each it prints the median and worst wall time of ``--n`` requests and how far past the
budget the refusal came, and checks every answer is ``TIME_BUDGET_EXCEEDED``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.refusals import call_app

DOCUMENT = json.dumps({"query": "{ currentSuite { suiteId validatorVariance { versions } } }"}).encode()


def build(tmp: Path, budget: float) -> tuple[Any, Any]:
    from oro_graph.app import create_app
    from oro_graph.migrations import upgrade
    from oro_graph.runtime import Runtime
    from oro_graph.settings import Settings

    url = f"sqlite:///{tmp / 'oro.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        data_dir=tmp / "state",
        secret_key="time-budget",
        rate_limit_per_minute=10**9,
        graphql_time_budget_seconds=budget,
    )
    runtime = Runtime.build(settings)
    return create_app(settings, runtime=runtime, migrate=False), runtime


def slow_ways(budget: float) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    from oro_graph.services import suites

    async def awaiting(original: Any) -> Any:
        await asyncio.Event().wait()

    async def thread(original: Any) -> Any:
        return await original(lambda session: time.sleep(5.0))

    async def loop(original: Any) -> Any:
        time.sleep(2 * budget)
        return await original(suites.current_suite_or_none)

    return {"awaiting": awaiting, "thread": thread, "loop": loop}


async def measure(n: int, budget: float) -> list[dict[str, Any]]:
    from oro_graph.services import suites

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        app, runtime = build(Path(tmp), budget)
        original = runtime.db.run
        for name, slow in slow_ways(budget).items():

            async def run(fn: Any, *args: Any, _slow: Any = slow, **kwargs: Any) -> Any:
                if fn is suites.current_suite_or_none:
                    return await _slow(lambda f: original(f, *args, **kwargs))
                return await original(fn, *args, **kwargs)

            runtime.db.run = run
            walls = []
            for _ in range(n):
                started = time.perf_counter()
                status, answer = await call_app(app, DOCUMENT)
                walls.append(time.perf_counter() - started)
                body = json.loads(answer)
                code = body["errors"][0]["extensions"]["code"] if body.get("errors") else None
                if status != 200 or code != "TIME_BUDGET_EXCEEDED":
                    raise SystemExit(f"{name}: expected TIME_BUDGET_EXCEEDED, got {status} {body}")
            runtime.db.run = original
            median, worst = statistics.median(walls), max(walls)
            rows.append(
                {
                    "way": name,
                    "n": n,
                    "median_ms": round(median * 1000, 1),
                    "max_ms": round(worst * 1000, 1),
                    "past_budget_median_ms": round((median - budget) * 1000, 1),
                    "past_budget_max_ms": round((worst - budget) * 1000, 1),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.2)
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.n, args.budget))
    print(f"| slow how (budget {args.budget:g} s) | n | median | worst | past the budget, median | worst |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['way']} | {r['n']} | {r['median_ms']} ms | {r['max_ms']} ms | "
            f"{r['past_budget_median_ms']} ms | {r['past_budget_max_ms']} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
