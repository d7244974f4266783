"""``python -m benchmarks load``: mixed realistic traffic from locust against 2+ server processes.

1. The demo world (``oro_graph.demo``) in its own PostgreSQL database, built once and reused
   (``datasets.ensure``), then copied for this run (``CREATE DATABASE ... TEMPLATE``): the run writes.
2. The copy gets the load's validators, registered with real SR25519 keys (``//load0`` ..), and
   fresh versions submitted through ``services.agents.submit_agent`` by the demo's miners, so the
   validators find work for the whole run.
3. ``python -m oro_graph serve`` N times, each on its own port, sharing one Redis db (flushed first)
   for nonces and rate limits; the per-address limit is raised so the flood limit is not what is
   measured.
4. locust headless in its own process (``benchmarks/load/locustfile.py``), users spread over the
   servers; it writes its figures as JSON when it quits.
5. Checks: no 5xx, no failed request (204 and 409 AT_CAPACITY on claim are the protocol and count as
   answers), no exception in a locust user, no traceback in a server log, every lifecycle invariant
   zero (``services.invariants.check_invariants``), and validators completing cycles.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from benchmarks import config, datasets
from benchmarks.servers import Server, start_ours_anywhere, stop

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
REDIS_URL = os.environ.get("ORO_LOAD_REDIS_URL", "redis://127.0.0.1:6379/12")
SECRET = "load-secret-key-not-for-production-0123456789"
KEY_PREFIX = "//load"

# The record's world is the benchmarks' medium size; the smoke test's is the small one.
DEMO = config.Size("load", runs=20_000, miners=500, validators=20, named="load_demo")
SMOKE_DEMO = config.Size("load_smoke", runs=1_000, miners=60, validators=12, named="load_smoke_demo")


@dataclass(frozen=True)
class LoadOptions:
    seconds: float = 180.0
    users: int = 40
    validators: int = 10
    servers: int = 2
    workers: int = 1  # uvicorn workers per server process
    demo: config.Size = DEMO
    database: str = "load_run"
    redis_url: str = REDIS_URL
    spawn_seconds: float = 5.0  # every user is running after this long
    classes: tuple[str, ...] = ()  # only these user classes (locustfile names); all three when empty


@dataclass
class LoadReport:
    options: LoadOptions
    setup: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    invariants: dict[str, int] = field(default_factory=dict)
    tracebacks: list[str] = field(default_factory=list)
    rate_limit_fail_open: int = 0  # requests let through because the rate-limit store timed out
    seconds: float = 0.0
    logs: str = ""

    @property
    def requests(self) -> dict[str, dict[str, Any]]:
        return dict(self.summary.get("requests", {}))

    @property
    def total(self) -> dict[str, Any]:
        return dict(self.summary.get("total", {}))

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status over every request type, plus GraphQL INTERNAL_SERVER_ERRORs
        (the graph reports an unexpected exception inside an HTTP 200)."""
        statuses = sum(
            n
            for figures in self.requests.values()
            for code, n in figures["statuses"].items()
            if code.startswith("5")
        )
        return statuses + int(self.summary.get("outcomes", {}).get("graphql_internal_errors", 0))

    @property
    def error_rate(self) -> float:
        total = self.total.get("requests") or 0
        return (self.total.get("failures") or 0) / total if total else 0.0

    def problems(self) -> list[str]:
        """Why this run does not pass; empty when it does."""
        found = []
        if not self.summary:
            return ["locust wrote no figures (see the logs)"]
        if self.server_errors:
            found.append(f"{self.server_errors} server errors (5xx or GraphQL INTERNAL_SERVER_ERROR)")
        if self.total.get("failures"):
            found.append(
                f"{self.total['failures']} failed requests: "
                + "; ".join(
                    f"{e['name']}: {e['error']} x{e['occurrences']}" for e in self.summary["errors"][:5]
                )
            )
        if self.summary.get("exceptions"):
            found.append(f"locust users raised: {self.summary['exceptions'][0]['msg']}")
        if self.tracebacks:
            found.append(f"server tracebacks: {self.tracebacks[:3]}")
        broken = {k: v for k, v in self.invariants.items() if v}
        if broken or not self.invariants:
            found.append(f"invariants broken: {broken or 'not checked'}")
        outcomes = self.summary.get("outcomes", {})
        if not any(k.startswith("completed_") for k in outcomes):
            found.append(f"no validator completed a run: {outcomes}")
        return found

    def as_json(self) -> dict[str, Any]:
        options = asdict(self.options)
        options["demo"] = asdict(self.options.demo)
        return {
            "options": options,
            "setup": self.setup,
            "total": self.total,
            "error_rate": self.error_rate,
            "server_errors": self.server_errors,
            "requests": self.requests,
            "outcomes": self.summary.get("outcomes", {}),
            "users": self.summary.get("users", {}),
            "errors": self.summary.get("errors", []),
            "exceptions": self.summary.get("exceptions", []),
            "invariants": self.invariants,
            "tracebacks": self.tracebacks,
            "rate_limit_fail_open": self.rate_limit_fail_open,
            "problems": self.problems(),
            "seconds": round(self.seconds, 1),
            "logs": self.logs,
        }


def copy_database(template: str, database: str) -> None:
    """A fresh copy of the demo world for this run (the template must have no open connection)."""
    with datasets.admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(database), sql.Identifier(template)
            )
        )


def open_work(options: LoadOptions) -> int:
    """Versions to submit so no validator runs dry: a cycle takes at least ~2 s and each version
    takes 3 successes from different validators."""
    return int(options.validators * options.seconds / 6) + 20


def prepare(database: str, options: LoadOptions, data_dir: Path) -> dict[str, Any]:
    """Register the load's validators and submit fresh versions as the demo's miners."""
    from sqlmodel import select
    from substrateinterface import Keypair

    from oro_graph.db import Database
    from oro_graph.models import Hotkey, Role
    from oro_graph.services import agents, registry
    from oro_graph.settings import load_settings
    from oro_graph.storage import make_storage

    settings = load_settings(
        database_url=config.sqlalchemy_url(database),
        secret_key=SECRET,
        data_dir=data_dir,
        submission_cooldown_seconds=0,
    )
    db = Database(settings)
    storage = make_storage(settings)
    try:
        for i in range(options.validators):
            hotkey = Keypair.create_from_uri(f"{KEY_PREFIX}{i}").ss58_address
            db.call(registry.add_hotkey, hotkey, role=Role.VALIDATOR, name=f"load-validator-{i}")
        with db.session() as session:
            miners = list(
                session.exec(
                    select(Hotkey.ss58).where(Hotkey.role == Role.MINER, ~Hotkey.banned).order_by(Hotkey.ss58)
                )
            )
        wanted, accepted = open_work(options), 0
        for i in range(wanted):
            code = f"# load test agent {i}\ndef solve(problem):\n    return {i}\n".encode()
            admission = db.call(
                agents.submit_agent,
                hotkey=miners[i % len(miners)],
                agent_name=f"load-agent-{i % 5}",
                content=code,
                settings=settings,
                storage=storage,
            )
            accepted += admission.status == "ACCEPTED"
    finally:
        db.dispose()
    return {"validators_registered": options.validators, "versions_submitted": accepted}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time these processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_locust(options: LoadOptions, servers: list[Server], logs: Path) -> dict[str, Any]:
    summary = logs / "locust-summary.json"
    env = {
        **os.environ,
        "ORO_LOAD_HOSTS": ",".join(s.base_url for s in servers),
        "ORO_LOAD_VALIDATORS": str(options.validators),
        "ORO_LOAD_KEY_PREFIX": KEY_PREFIX,
        "ORO_LOAD_SUMMARY": str(summary),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(options.users),
        "--spawn-rate",
        str(max(1.0, options.users / options.spawn_seconds)),
        "--run-time",
        f"{int(options.seconds)}s",
        "--stop-timeout",
        "20",  # users finish the cycle or page walk they are in
        "--host",
        servers[0].base_url,
        "--only-summary",
        "--loglevel",
        "WARNING",
        *options.classes,
    ]
    with (logs / "locust.log").open("wb") as log:
        subprocess.run(
            command,
            cwd=str(config.REPO),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=options.seconds + 180,
            check=False,  # locust exits 1 on any failure; the summary says which
        )
    return json.loads(summary.read_text()) if summary.exists() else {}


# A warning logged with its traceback on purpose: the rate-limit store timed out (0.5 s) and the
# request went through (fail open, benchmarks/RELIABILITY.md section 5). Counted, not a failure.
FAIL_OPEN = "rate-limit store unavailable; letting the request through"
CHAINED = ("The above exception", "During handling of the above exception")


def tracebacks(server: Server) -> tuple[list[str], int]:
    """The last exception line of each traceback chain the server logged, leaving out the rate
    limiter's fail-open warnings, which are only counted (the second value)."""
    lines = server.log_path.read_text(errors="replace").splitlines()
    chains: list[list[str]] = []  # [the log message the chain follows, its last exception line]
    previous = ""
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            if not previous.startswith(CHAINED):
                chains.append([previous, line])
            end = i + 1
            while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
                end += 1
            if end < len(lines) and chains:
                chains[-1][1] = lines[end]
        if line.strip():
            previous = line
    fail_open = sum(FAIL_OPEN in message for message, _ in chains)
    return [f"{server.name}: {last}" for message, last in chains if FAIL_OPEN not in message], fail_open


def run(options: LoadOptions, log: Callable[[str], None] = print) -> LoadReport:
    import redis

    started = time.perf_counter()
    report = LoadReport(options)
    logs = Path(tempfile.mkdtemp(prefix="oro_load_logs_"))
    report.logs = str(logs)
    demo = datasets.ensure(options.demo, log=log)
    log(f"copying {demo.database} ({demo.counts['evaluationrun']} runs) to {options.database}")
    copy_database(demo.database, options.database)
    data_dir = Path(tempfile.mkdtemp(prefix="oro_load_data_"))
    report.setup = {
        "demo_database": demo.database,
        "demo_counts": demo.counts,
        "database": options.database,
        **prepare(options.database, options, data_dir),
    }
    log(
        f"registered {options.validators} validators, submitted {report.setup['versions_submitted']} versions"
    )
    client = redis.Redis.from_url(options.redis_url)
    client.flushdb()
    client.close()
    extra = {"ORO_REDIS_URL": options.redis_url, "ORO_DATA_DIR": str(data_dir), "ORO_SECRET_KEY": SECRET}
    servers: list[Server] = []
    try:
        for i in range(options.servers):
            servers.append(start_ours_anywhere(f"server{i}", options.database, options.workers, logs, extra))
        report.setup["servers"] = [s.base_url for s in servers]
        log(
            f"{len(servers)} server processes ({options.workers} worker(s) each) up; locust: "
            f"{options.users} users ({options.validators} validators) for {options.seconds:.0f} s"
        )
        pids = [pid for server in servers for pid in server.pids()]
        before = (time.perf_counter(), cpu_seconds(pids), children_cpu_seconds(), os.getloadavg()[0])
        report.summary = run_locust(options, servers, logs)
        wall = time.perf_counter() - before[0]
        # What the machine gave: the other engineers' work shares the same 2 cores.
        report.setup["cpu"] = {
            "wall_s": round(wall, 1),
            "servers_cores": round((cpu_seconds(pids) - before[1]) / wall, 2),
            "locust_cores": round((children_cpu_seconds() - before[2]) / wall, 2),
            "machine_cores": os.cpu_count(),
            "load_average_1m": [round(before[3], 2), round(os.getloadavg()[0], 2)],
        }
    finally:
        for server in servers:
            stop(server)
    for server in servers:
        found, fail_open = tracebacks(server)
        report.tracebacks += found
        report.rate_limit_fail_open += fail_open
    report.invariants = datasets.loop_invariants(options.database)
    report.seconds = time.perf_counter() - started
    return report


def table(report: LoadReport) -> str:
    """The figures as a Markdown table, one row per request type and a total."""
    rows = [
        "| request | requests | failures | error rate | p50 ms | p99 ms | max ms | req/s | statuses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def line(name: str, f: dict[str, Any], statuses: str) -> str:
        rate = f["failures"] / f["requests"] if f["requests"] else 0.0
        return (
            f"| {name} | {f['requests']:,} | {f['failures']} | {rate:.2%} | {f['p50_ms']} | {f['p99_ms']} "
            f"| {f.get('max_ms', '')} | {f['rps']} | {statuses} |"
        )

    for name, figures in report.requests.items():
        statuses = ", ".join(f"{code}: {n:,}" for code, n in figures["statuses"].items())
        rows.append(line(name, figures, statuses))
    if report.total:
        rows.append(line("**total**", {**report.total, "max_ms": ""}, f"5xx: {report.server_errors}"))
    return "\n".join(rows)


def describe(report: LoadReport) -> str:
    broken = {k: v for k, v in report.invariants.items() if v}
    lines = [
        table(report),
        "",
        f"users: {report.summary.get('users', {})}",
        f"validator outcomes: {report.summary.get('outcomes', {})}",
        f"error rate: {report.error_rate:.3%}; 5xx: {report.server_errors}; "
        f"invariants: {'all zero' if report.invariants and not broken else broken or 'not checked'} "
        f"({len(report.invariants)} checked); server tracebacks: {len(report.tracebacks)}; "
        f"rate-limit store timeouts let through: {report.rate_limit_fail_open}",
        f"setup: {json.dumps({k: v for k, v in report.setup.items() if k != 'demo_counts'})}",
        f"logs: {report.logs}; {report.seconds:.0f} s",
    ]
    problems = report.problems()
    lines.append("PASS" if not problems else "FAIL: " + " | ".join(problems))
    return "\n".join(lines)
