"""A deterministic demo world that looks like the subnet: the same seed gives the same rows, ids included.

``generate`` simulates six weeks of SN15 from 2026-10-01: miners submit versions of agents that get
better over time, validators claim the oldest open work item they have not run (X successes out of
however many runs it takes), heartbeat, fail, time out, crash and let leases go stale, report
per-problem results, and the top agent changes hands under the challenge threshold. The simulation
is an event queue; its outcome is then written in bulk (COPY on PostgreSQL) in one transaction.

Three validators carry planted faults whose parameters are constants of ``demo.parameters``
(re-exported here) and are repeated in the ``Manifest``: one scores ``BIASED_SCORE_OFFSET`` above what a
fair validator would on the same run, one lets ``STALE_LEASE_RATE`` of its leases go stale, one is
``SLOW_DURATION_FACTOR`` times slower and times out at ``SLOW_TIMEOUT_RATE``. Nothing in the data names them.

Races (``services/races.py``) run through the same weeks: one opens every ``RACE_PERIOD_DAYS`` from
day ``FIRST_RACE_DAYS`` (or when the one before ends), its field, threshold, draw, X-of-Y settlement,
race scores, ranks and crowning all come from the services' own rule functions, and the same validators
claim race work before qualifying work, with their planted faults. Some miners pin a version
(``PIN_RATE``) and some entries are flaky under race load (``FLAKY_ENTRY_RATE``: they fail most race
runs and so do not finish). The latest race may still be qualifying or running at the end.

Demo rules that the services do not have: a version whose agent crashes on every run is DISCARDED
after ``DISCARD_AFTER_FAILURES`` failed runs, and some miners cancel a version while it is evaluated.
The submission cooldown is not applied (at large sizes miners submit more often than it allows).
Final scores, eligibility and the QUEUED/RUNNING state come from ``services/scoring.py``, as in
``complete_run``.

The modules: ``parameters`` (rates, status codes, the clock), ``suite`` (the built-in suite and names),
``entities`` (the world's people, versions, races and runs), ``world`` (the event simulation), ``racing``
(races), ``synthesis`` (per-problem results with numpy), ``store`` and ``store_races`` (the rows, written
through ``oro_graph.bulk``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func
from sqlmodel import select

from oro_graph.db import Database
from oro_graph.demo.parameters import (
    BASE_TIME,
    BIASED_SCORE_OFFSET,
    BROKEN_VERSION_RATE,
    CANCEL_RATE,
    DISCARD_AFTER_FAILURES,
    FIRST_RACE_DAYS,
    FLAKY_ENTRY_RATE,
    FLAKY_FAILURE_RATE,
    HEARTBEAT_SECONDS,
    IDLE_MINER_SHARE,
    INFRA_FAILURE_RATE,
    MAX_RUN_MINUTES,
    PEER_STALE_RATE,
    PEER_TIMEOUT_RATE,
    PIN_RATE,
    PROBLEM_FAILED_RATE,
    PROBLEM_TIMEOUT_RATE,
    PROBLEMS,
    RACE_PERIOD_DAYS,
    RUN_STATUSES,
    SLOW_DURATION_FACTOR,
    SLOW_TIMEOUT_RATE,
    SPAN,
    STALE_LEASE_RATE,
    SWEEP_SECONDS,
    Progress,
    ProgressReport,
)
from oro_graph.demo.store import Manifest, code_artifacts, write
from oro_graph.demo.suite import demo_hotkey, suite_json
from oro_graph.demo.synthesis import Results
from oro_graph.demo.world import World
from oro_graph.errors import ValidationFailed
from oro_graph.models import AgentVersion
from oro_graph.settings import Settings
from oro_graph.storage import make_storage

__all__ = [
    "BASE_TIME",
    "BIASED_SCORE_OFFSET",
    "BROKEN_VERSION_RATE",
    "CANCEL_RATE",
    "DISCARD_AFTER_FAILURES",
    "DatabaseNotEmpty",
    "FIRST_RACE_DAYS",
    "FLAKY_ENTRY_RATE",
    "FLAKY_FAILURE_RATE",
    "HEARTBEAT_SECONDS",
    "IDLE_MINER_SHARE",
    "INFRA_FAILURE_RATE",
    "MAX_RUN_MINUTES",
    "Manifest",
    "PEER_STALE_RATE",
    "PEER_TIMEOUT_RATE",
    "PIN_RATE",
    "PROBLEMS",
    "PROBLEM_FAILED_RATE",
    "PROBLEM_TIMEOUT_RATE",
    "Progress",
    "RACE_PERIOD_DAYS",
    "RUN_STATUSES",
    "SLOW_DURATION_FACTOR",
    "SLOW_TIMEOUT_RATE",
    "SPAN",
    "STALE_LEASE_RATE",
    "SWEEP_SECONDS",
    "demo_hotkey",
    "generate",
    "is_empty",
    "suite_json",
]


class DatabaseNotEmpty(ValidationFailed):
    """The demo only fills an empty database; it never mixes with real data."""


def is_empty(db: Database) -> bool:
    """True while the database has no agent versions (the demo refuses to write into anything else)."""
    with db.session() as session:
        return session.exec(select(func.count()).select_from(AgentVersion)).one() == 0


def generate(
    db: Database,
    settings: Settings,
    *,
    seed: int = 7,
    miners: int = 120,
    validators: int = 20,
    runs: int = 2500,
    progress: Progress | None = None,
) -> Manifest:
    """Fill an empty database with the demo world; the same arguments always give the same rows."""
    if validators < 4:
        raise ValidationFailed("the demo needs at least 4 validators (three carry planted faults)")
    if miners < 1 or runs < 10:
        raise ValidationFailed("the demo needs at least 1 miner and 10 runs")
    if not is_empty(db):
        raise DatabaseNotEmpty(
            "the database already has agent versions; the demo only fills an empty database"
        )
    report = ProgressReport(progress, total=2 * runs)
    world = World(seed=seed, miners=miners, validators=validators, runs=runs, settings=settings)
    world.simulate(report)
    tables = Results.of(world, world.gen)  # per-problem statuses, scores and timings, in bulk
    storage = make_storage(settings)
    # The agents' code goes to the artifact store (I/O bound) while the database loads. Content-addressed
    # keys: a failed load leaves only files that a later run writes again.
    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = [pool.submit(storage.put, key, code, "text/x-python") for key, code in code_artifacts(world)]
        with db.session(write=True) as session:
            if session.exec(select(func.count()).select_from(AgentVersion)).one():
                raise DatabaseNotEmpty(
                    "the database already has agent versions; the demo only fills an empty database"
                )
            manifest = write(world, session, tables, report)
        for future in stored:
            future.result()
    report.finish()
    return manifest
