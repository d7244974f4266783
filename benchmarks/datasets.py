"""Bench databases on PostgreSQL: the demo world at fixed sizes (cached), and the validator loop's.

Each size has its own database (``bench_small``, ``bench_medium``, ``bench_large``), migrated with
``oro_graph.migrations.upgrade`` and filled by ``oro_graph.demo.generate``. When it is built the
parameters and row counts are written as the database's COMMENT (so no extra table shows up in
PostGraphile's schema); a later run that finds the same parameters and counts reuses it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import config
from benchmarks.servers import Unavailable

COUNTED = (
    "suite",
    "problem",
    "hotkey",
    "miner",
    "agent",
    "agentversion",
    "workitem",
    "evaluationrun",
    "problemresult",
)
FORMAT = 1  # bump when the way datasets are built changes, so old caches are rebuilt


@dataclass(frozen=True)
class Dataset:
    size: config.Size
    counts: dict[str, int]
    reused: bool
    build_seconds: float | None
    suite_id: int

    @property
    def database(self) -> str:
        return self.size.database


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(config.PG_ADMIN_DSN, autocommit=True)


def _exists(database: str) -> bool:
    with admin() as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None
        )


def recreate(database: str) -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def counts(database: str) -> dict[str, int]:
    with psycopg.connect(config.dsn(database)) as conn:
        return {
            t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
            for t in COUNTED
        }


def active_suite(database: str) -> int:
    with psycopg.connect(config.dsn(database)) as conn:
        row = conn.execute("SELECT id FROM suite WHERE is_active ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        raise Unavailable(f"{database} has no active suite")
    return int(row[0])


def _schema_digest() -> str:
    """The migrations' contents: a cached dataset built under other migrations is rebuilt, even one
    whose revision ids match (two branches' 0004 are not the same schema)."""
    from oro_graph.migrations import HERE

    digest = hashlib.sha256()
    for path in sorted((HERE / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _stamp(size: config.Size) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schema": _schema_digest(),
        "runs": size.runs,
        "miners": size.miners,
        "validators": size.validators,
        "seed": size.seed,
    }


def _cached(size: config.Size) -> dict[str, int] | None:
    if not _exists(size.database):
        return None
    with admin() as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (size.database,),
        ).fetchone()
    try:
        note = json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None
    if not note or note.get("params") != _stamp(size):
        return None
    try:
        found = counts(size.database)
    except psycopg.Error:
        return None
    return found if found == note.get("counts") else None


def existing(database: str) -> Dataset:
    """A database built some other way (e.g. by ``oro-graph demo-data``), used as it is."""
    size = config.Size(database, runs=0, miners=0, validators=0, named=database)
    return Dataset(size, counts(database), True, None, active_suite(database))


def ensure(size: config.Size, log: Any = print) -> Dataset:
    """The dataset of this size, built unless a matching one is already there."""
    found = _cached(size)
    if found is not None:
        return Dataset(size, found, True, None, active_suite(size.database))
    try:
        from oro_graph import demo
    except ImportError as exc:
        raise Unavailable(f"oro_graph.demo is not available yet ({exc})") from exc
    from oro_graph.db import Database
    from oro_graph.migrations import upgrade
    from oro_graph.settings import load_settings

    log(f"building {size.database}: {size.runs} runs, {size.miners} miners, {size.validators} validators")
    started = time.perf_counter()
    recreate(size.database)
    url = config.sqlalchemy_url(size.database)
    upgrade(url)
    # The demo also writes the agents' code to the artifact store: a scratch directory, not the work tree.
    artifacts = tempfile.mkdtemp(prefix="oro_bench_artifacts_")
    settings = load_settings(
        database_url=url, secret_key="bench-secret-key-not-for-production-0123456789", data_dir=artifacts
    )
    db = Database(settings)
    last, done = [0.0], [0]

    def progress(step: int, total: int) -> None:
        done[0] += step
        now = time.perf_counter()
        if now - last[0] > 5:
            last[0] = now
            print(f"  {size.database}: {done[0]}/{total}", file=sys.stderr, flush=True)

    try:
        demo.generate(
            db,
            settings,
            seed=size.seed,
            miners=size.miners,
            validators=size.validators,
            runs=size.runs,
            progress=progress,
        )
    except Exception as exc:
        db.dispose()
        raise Unavailable(
            f"oro_graph.demo.generate failed on {size.database}: {type(exc).__name__}: {exc}"
        ) from exc
    db.dispose()
    with psycopg.connect(config.dsn(size.database), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    found = counts(size.database)
    note = json.dumps({"params": _stamp(size), "counts": found})
    with admin() as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(size.database), sql.Literal(note))
        )
    seconds = time.perf_counter() - started
    log(f"built {size.database} in {seconds:.0f} s: {found}")
    return Dataset(size, found, False, round(seconds, 1), active_suite(size.database))


# ------------------------------------------------------------------------------------------------
# The validator loop's database: a suite, 32 registered validators with real keys, open work.

LOOP_VALIDATORS = 32
LOOP_WORK_ITEMS = 6000
LOOP_PROGRESS_PROBLEMS = 3  # problems reported per progress call


@dataclass(frozen=True)
class LoopWorld:
    database: str
    uris: list[str]
    hotkeys: list[str]
    problems: list[str]


def _suite_file(problems: int = 30) -> bytes:
    kinds = [
        ("Product", "easy"),
        ("Product", "medium"),
        ("Shop", "easy"),
        ("Shop", "medium"),
        ("Voucher", "easy"),
    ]
    items = [
        {
            "query": f"bench problem {i}",
            "title": f"Bench problem {i + 1}",
            "category": kinds[i % len(kinds)][0],
            "difficulty": kinds[i % len(kinds)][1],
            "reward": {"product_id": str(5000 + i)},
        }
        for i in range(problems)
    ]
    return json.dumps(items).encode()


def build_loop_world() -> LoopWorld:
    from substrateinterface import Keypair

    from oro_graph.db import Database
    from oro_graph.migrations import upgrade
    from oro_graph.models import Role
    from oro_graph.services import registry, suites
    from oro_graph.settings import load_settings

    database = config.LOOP_DATABASE
    recreate(database)
    url = config.sqlalchemy_url(database)
    upgrade(url)
    db = Database(
        load_settings(database_url=url, secret_key="bench-secret-key-not-for-production-0123456789")
    )
    suite = db.call(suites.import_suite, _suite_file(), activate=True).suite
    uris = [f"//bench{i}" for i in range(LOOP_VALIDATORS)]
    hotkeys = [Keypair.create_from_uri(uri).ss58_address for uri in uris]
    for i, hotkey in enumerate(hotkeys):
        db.call(registry.add_hotkey, hotkey, role=Role.VALIDATOR, name=f"bench-validator-{i}")
    miner = Keypair.create_from_uri("//benchminer").ss58_address
    db.call(registry.add_hotkey, miner, role=Role.MINER, name="bench-miner")
    db.dispose()
    with psycopg.connect(config.dsn(database)) as conn:
        conn.execute("INSERT INTO miner (hotkey, created_at) VALUES (%s, now())", (miner,))
        agent = uuid.uuid4()
        conn.execute(
            "INSERT INTO agent (id, miner_hotkey, name, created_at) VALUES (%s, %s, 'bench-agent', now())",
            (agent, miner),
        )
        conn.execute(
            """
            INSERT INTO agentversion (id, agent_id, version_number, suite_id, state, submitted_at,
                                      code_key, code_sha256, code_size)
            SELECT gen_random_uuid(), %(agent)s, g, %(suite)s, 'QUEUED',
                   now() - (%(n)s - g) * interval '1 second',
                   'agents/bench/v' || g || '.py', repeat('0', 64), 64
            FROM generate_series(1, %(n)s) AS g
            """,
            {"agent": agent, "suite": suite.id, "n": LOOP_WORK_ITEMS},
        )
        conn.execute(
            """
            INSERT INTO workitem (id, agent_version_id, suite_id, required_successes, included_successes,
                                  active_runs, is_closed, created_at)
            SELECT gen_random_uuid(), v.id, v.suite_id, 3, 0, 0, false, v.submitted_at FROM agentversion v
            """
        )
        problems = [
            str(r[0])
            for r in conn.execute(
                "SELECT id FROM problem WHERE suite_id = %s ORDER BY position LIMIT %s",
                (suite.id, LOOP_PROGRESS_PROBLEMS),
            )
        ]
    reset_loop_world(database)
    return LoopWorld(database, uris, hotkeys, problems)


def reset_loop_world(database: str) -> None:
    """Every work item open again, no runs: each phase of the loop starts from the same state."""
    with psycopg.connect(config.dsn(database), autocommit=True) as conn:
        conn.execute("TRUNCATE problemresult, evaluationrun, topagenthistory, validatorstate")
        conn.execute(
            "UPDATE workitem SET included_successes = 0, active_runs = 0, is_closed = false, closed_at = NULL"
        )
        conn.execute("UPDATE agentversion SET state = 'QUEUED', final_score = NULL, eligible_at = NULL")
        conn.execute("VACUUM ANALYZE")


def loop_invariants(database: str) -> dict[str, int]:
    """``oro_graph.services.invariants.check_invariants`` over the loop's database."""
    from oro_graph.db import Database
    from oro_graph.services import invariants
    from oro_graph.settings import load_settings

    db = Database(load_settings(database_url=config.sqlalchemy_url(database), secret_key="x" * 40))
    try:
        return db.call(invariants.check_invariants, max_active_runs_per_validator=1)
    finally:
        db.dispose()


def over_claims(found: dict[str, int]) -> int:
    """Work items leased past their required successes, and validators holding two runs of one item."""
    return found.get("over_claimed_work_items", 0) + found.get("duplicate_validator_runs", 0)
