"""``python -m benchmarks run [--quick] [--json FILE]``, ``loop``, ``writes``, ``load`` and ``profile``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from benchmarks import config, report, workloads

    plan = config.make_plan(args.quick)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.perf_counter()
    results = workloads.run_all(plan, log=lambda m: print(m, file=sys.stderr, flush=True))
    record = report.as_json(results)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2, default=str))
        print(f"figures written to {args.json}", file=sys.stderr)
    if not args.no_results:
        section = "quick" if plan.quick else "full"
        report.write_section(section, report.markdown(results, command))
        print(f"{report.RESULTS_MD} updated (section {section})", file=sys.stderr)
    print(json.dumps(record["ratios"], indent=2))
    print(
        f"over_claims: {record['over_claims']}; logs in {results.logs}; "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


def _loop(args: argparse.Namespace) -> int:
    import dataclasses

    from benchmarks import config, report, workloads

    plan = dataclasses.replace(
        config.make_plan(quick=True),
        loop_validators=tuple(int(n) for n in args.validators.split(",")),
        loop_duration=args.seconds,
    )
    results = workloads.run_loop(plan, log=lambda m: print(m, file=sys.stderr, flush=True))
    record = report.as_json(results)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2, default=str))
    print(json.dumps({"ratios": record["ratios"], "over_claims": record["over_claims"]}, indent=2))
    return 0


def _writes(args: argparse.Namespace) -> int:
    import dataclasses

    from benchmarks import config, report, workloads

    plan = dataclasses.replace(config.make_plan(quick=True), duration=args.seconds, primary=args.size)
    results = workloads.run_writes(
        plan, log=lambda m: print(m, file=sys.stderr, flush=True), peer=args.peer, rescore=args.rescore
    )
    record = report.as_json(results)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2, default=str))
    figures = results.workloads.get("writes", {})
    writers = {
        name: {k: (f.get("writers") or f).get(k) for k in ("rps", "p50_ms", "p99_ms", "errors")}
        | {"server_cpu": f.get("cpu_per_process")}
        for name, f in figures.items()
    }
    ratios = {k: v for k, v in record["ratios"].items() if k.startswith("writers_")}
    print(json.dumps({"writers": writers, "ratios": ratios}, indent=2))
    return 0


def _load(args: argparse.Namespace) -> int:
    from benchmarks.load import runner

    options = runner.LoadOptions(
        seconds=args.minutes * 60,
        users=args.users,
        validators=args.validators,
        servers=args.servers,
        classes=tuple(args.classes),
    )
    report = runner.run(options, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(runner.describe(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_json(), indent=2, default=str))
        print(f"figures written to {args.json}", file=sys.stderr)
    return 1 if report.problems() else 0


def _profile(args: argparse.Namespace) -> int:
    from benchmarks import profile

    profile.main(seconds=args.seconds, size=args.size, database=args.database, write=not args.no_results)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="build datasets, start servers, measure every workload, write RESULTS.md"
    )
    run.add_argument("--quick", action="store_true", help="small sizes and short durations (under 5 minutes)")
    run.add_argument("--json", metavar="FILE", help="also write every figure as JSON here")
    run.add_argument("--no-results", action="store_true", help="leave benchmarks/RESULTS.md as it is")
    run.set_defaults(func=_run)
    loop = sub.add_parser(
        "loop", help="only the validator loop (workload 3), its raw SQL limit and the HTTP floor"
    )
    loop.add_argument("--validators", default="1,8,32", help="comma-separated N (default 1,8,32)")
    loop.add_argument("--seconds", type=float, default=6.0, help="measured seconds per N")
    loop.add_argument("--json", metavar="FILE", help="also write every figure as JSON here")
    loop.set_defaults(func=_loop)
    writes = sub.add_parser(
        "writes", help="only workload (a): the writers alone, then at 0/1/5/20 writes/s under our reads"
    )
    writes.add_argument("--seconds", type=float, default=10.0, help="measured seconds per rate")
    writes.add_argument("--peer", action="store_true", help="also under PostGraphile's reads")
    writes.add_argument(
        "--size",
        default="small",
        choices=("small", "medium", "large"),
        help="the dataset (the full run's is medium, whose races draw the problems a run may report)",
    )
    writes.add_argument(
        "--rescore", action="store_true", help="each progress report moves the scores (not a re-send)"
    )
    writes.add_argument("--json", metavar="FILE", help="also write every figure as JSON here")
    writes.set_defaults(func=_writes)
    load = sub.add_parser("load", help="mixed traffic from locust against 2 server processes; checks no 5xx")
    load.add_argument("--minutes", type=float, default=3.0)
    load.add_argument("--users", type=int, default=40, help="locust users in all (default 40)")
    load.add_argument("--validators", type=int, default=10, help="of which validators, one key each")
    load.add_argument("--servers", type=int, default=2, help="server processes sharing Redis")
    load.add_argument(
        "--classes", nargs="+", default=[], metavar="CLASS", help="only these: Validator Analyst PublicReader"
    )
    load.add_argument("--json", metavar="FILE", help="also write every figure as JSON here")
    load.set_defaults(func=_load)
    prof = sub.add_parser("profile", help="py-spy profile of our server under the deep leaderboard load")
    prof.add_argument("--seconds", type=float, default=15.0)
    prof.add_argument("--size", default="small", choices=["small", "medium", "large"])
    prof.add_argument("--database", help="profile this existing database instead of a built size")
    prof.add_argument("--no-results", action="store_true")
    prof.set_defaults(func=_profile)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
