"""Writing the simulated world: the rows, in bulk, in one transaction, and the manifest."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from oro_graph.bulk import BulkWriter
from oro_graph.demo.entities import DemoValidator, DemoVersion
from oro_graph.demo.parameters import (
    BASE_TIME,
    BIASED_SCORE_OFFSET,
    BROKEN_VERSION_RATE,
    CANCEL_RATE,
    DISCARD_AFTER_FAILURES,
    FIRST_RACE_DAYS,
    FLAKY_ENTRY_RATE,
    FLAKY_FAILURE_RATE,
    INFRA_FAILURE_RATE,
    PEER_STALE_RATE,
    PEER_TIMEOUT_RATE,
    PIN_RATE,
    PROBLEMS,
    RACE_PERIOD_DAYS,
    RUN_STATUSES,
    S_CANCELLED,
    SLOW_DURATION_FACTOR,
    SLOW_TIMEOUT_RATE,
    STALE_LEASE_RATE,
    ProgressReport,
    service_versions,
    spans,
    to_datetime,
)
from oro_graph.demo.store_races import crown, race_work_rows, write_races
from oro_graph.demo.suite import suite_json
from oro_graph.demo.synthesis import Results, uuid_bytes
from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Miner,
    ProblemResult,
    RaceSelection,
    ValidatorState,
    WorkItem,
    totals,
)
from oro_graph.services import suites
from oro_graph.services.scoring import waiting_state

if TYPE_CHECKING:
    from oro_graph.demo.world import World


@dataclass
class Manifest:
    """What was generated, and the planted faults with their parameters (for tests, never notebooks)."""

    seed: int
    validators: list[dict[str, Any]]
    counts: dict[str, Any]
    now: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


RUN_COLUMNS = (
    "id",
    "work_item_id",
    "agent_version_id",
    "validator_hotkey",
    "suite_id",
    "status",
    "claimed_at",
    "lease_expires_at",
    "last_heartbeat_at",
    "completed_at",
    "validator_score",
    "score_components",
    "failure_reason",
    "sandbox_metadata",
    "service_versions",
    "is_included",
    "inference_failure_count",
    "inference_total",
    "race_id",
)
RESULT_COLUMNS = (
    "id",
    "run_id",
    "problem_id",
    "status",
    "score",
    "reasoning_score",
    "score_components",
    "logs_key",
    "execution_time",
    "inference_failure_count",
    "inference_total",
    "updated_at",
)
STATE_COLUMNS = (
    "hotkey",
    "last_claim_at",
    "last_seen_at",
    "cpu_pct",
    "ram_pct",
    "disk_pct",
    "docker_container_count",
    "service_versions",
    "metrics_reported_at",
)


def write(world: World, session: Session, results: Results, report: ProgressReport) -> Manifest:
    writer = BulkWriter(session)
    # The running totals (models.totals) are computed once at the end, not row by row by their
    # triggers: dropped and re-created in this transaction (the demo fills an empty database alone).
    totals.uninstall(session.connection())
    imported = suites.import_suite(session, suite_json(), activate=True, benchmark_name="shoppingbench-demo")
    suite = imported.suite
    if imported.created:
        suite.created_at = BASE_TIME - timedelta(days=1)  # not the clock: same seed, same rows
        session.add(suite)
    suite_id = suite.id or 0
    problems = suites.problems_for_suite(session, suite_id)
    problem_ids = uuid_bytes(p.id for p in problems)
    now = world.now
    versions, runs = world.versions, world.runs

    registered = BASE_TIME - timedelta(days=60)
    hotkeys = [
        (v.hotkey, "validator", True, v.name, False, i, registered + timedelta(hours=i))
        for i, v in enumerate(world.validators)
    ] + [
        (
            m.hotkey,
            "miner",
            False,
            m.name,
            False,
            len(world.validators) + i,
            registered + timedelta(days=1, hours=7 * i),
        )
        for i, m in enumerate(world.miners)
    ]
    writer.rows(
        Hotkey.__table__,
        ("ss58", "role", "validator_permit", "name", "banned", "uid", "registered_at"),
        hotkeys,
    )

    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for version in versions:
        miner = world.agents[version.agent].miner
        first.setdefault(miner, version.submitted)
        last[miner] = version.submitted
    writer.rows(
        Miner.__table__,
        ("hotkey", "created_at", "last_submitted_at"),
        [(world.miners[m].hotkey, to_datetime(first[m]), to_datetime(last[m])) for m in sorted(first)],
    )
    writer.rows(
        Agent.__table__,
        ("id", "miner_hotkey", "name", "created_at"),
        [
            (a.id.hex, world.miners[a.miner].hotkey, a.name, to_datetime(a.created_at))
            for a in world.agents
            if a.created_at is not None
        ],
    )

    # Scores, work items and version states as of "now".
    final_scores = {
        index: world.final_score(version)
        for index, version in enumerate(versions)
        if version.state == "ELIGIBLE"
    }
    version_rows, work_rows = [], []
    for index, version in enumerate(versions):
        active = results.active_by_version.get(index, 0)
        included = len(results.included_by_version.get(index, ()))
        state = version.state or waiting_state(active, included).value
        stored_state = "RUNNING" if state == "ELIGIBLE" else state  # crowned in order below
        code = agent_code(world, version)
        digest = hashlib.sha256(code).hexdigest()
        version_rows.append(
            (
                version.id.hex,
                world.agents[version.agent].id.hex,
                version.number,
                suite_id,
                stored_state,
                to_datetime(version.submitted),
                to_datetime(version.closed_at) if state == "ELIGIBLE" else None,
                to_datetime(version.closed_at) if state == "DISCARDED" else None,
                final_scores.get(index),
                f"agents/{digest}.py",
                digest,
                len(code),
            )
        )
        work_rows.append(
            (
                version.work_id.hex,
                version.id.hex,
                suite_id,
                world.required,
                included,
                active,
                version.closed_at is not None,
                to_datetime(version.submitted),
                to_datetime(version.closed_at),
                None,
                None,
                0,
            )
        )
    work_rows.extend(race_work_rows(world, suite_id, results))

    def batches() -> Iterable[dict[str, Any]]:
        for start, stop in spans(len(runs), 60_000 // PROBLEMS):
            yield results.problem_columns(world, problem_ids, start, stop)
            report.advance(stop - start)

    bulk = (AgentVersion.__table__, WorkItem.__table__, EvaluationRun.__table__, ProblemResult.__table__)
    with writer.foreign_keys_checked_once(*bulk):
        # Races before their work items; completed ones are stored RACE_RUNNING and completed in
        # order below, so the top agent's history is replayed through the services' rules.
        writer.rows(
            AgentVersion.__table__,
            (
                "id",
                "agent_id",
                "version_number",
                "suite_id",
                "state",
                "submitted_at",
                "eligible_at",
                "discarded_at",
                "final_score",
                "code_key",
                "code_sha256",
                "code_size",
            ),
            version_rows,
        )
        write_races(world, writer, suite_id)
        writer.rows(
            WorkItem.__table__,
            (
                "id",
                "agent_version_id",
                "suite_id",
                "required_successes",
                "included_successes",
                "active_runs",
                "is_closed",
                "created_at",
                "closed_at",
                "race_id",
                "max_attempts",
                "failed_attempts",
            ),
            work_rows,
        )
        writer.columns(
            EvaluationRun.__table__,
            RUN_COLUMNS,
            (results.run_columns(world, suite_id, start, stop) for start, stop in spans(len(runs), 10_000)),
        )
        writer.columns(ProblemResult.__table__, RESULT_COLUMNS, batches())
    writer.rows(ValidatorState.__table__, STATE_COLUMNS, validator_states(world))
    writer.rows(RaceSelection.__table__, ("miner_hotkey", "agent_version_id", "updated_at"), pins_now(world))
    reigns = crown(world, session, suite_id, final_scores)
    session.flush()
    totals.install(session.connection())
    totals.rebuild(session.connection())

    statuses = Counter(RUN_STATUSES[s] for s in results.status)
    states = Counter(
        v.state
        or waiting_state(
            results.active_by_version.get(i, 0), len(results.included_by_version.get(i, ()))
        ).value
        for i, v in enumerate(versions)
    )
    counts: dict[str, Any] = {
        "miners": len(world.miners),
        "submitting_miners": len(first),
        "validators": len(world.validators),
        "problems": len(problems),
        "agents": sum(1 for a in world.agents if a.created_at is not None),
        "agent_versions": len(versions),
        "eligible_versions": states.get("ELIGIBLE", 0),
        "runs": len(runs),
        "problem_results": int(results.present.sum()),
        "top_agent_reigns": reigns,
        "races": len(world.races),
        "races_by_status": dict(sorted(Counter(str(r.status) for r in world.races).items())),
        "race_qualifiers": sum(len(r.entries) for r in world.races),
        "race_runs": sum(1 for e in runs.entry if e >= 0),
        "versions_by_state": dict(sorted(states.items())),
        "runs_by_status": dict(sorted(statuses.items())),
    }
    return Manifest(
        seed=world.seed,
        validators=[fault(world, v) for v in world.validators if v.fault],
        counts=counts,
        now=to_datetime(now).isoformat(),
        parameters={
            "base_time": BASE_TIME.isoformat(),
            "required_successes": world.required,
            "challenge_threshold": world.settings.challenge_threshold,
            "nominal_run_seconds": round(world.run_seconds, 1),
            "run_time_limit_seconds": round(world.limit, 1),
            "peer_stale_rate": PEER_STALE_RATE,
            "peer_timeout_rate": PEER_TIMEOUT_RATE,
            "infra_failure_rate": INFRA_FAILURE_RATE,
            "broken_version_rate": BROKEN_VERSION_RATE,
            "discard_after_failures": DISCARD_AFTER_FAILURES,
            "cancel_rate": CANCEL_RATE,
            "first_race_days": FIRST_RACE_DAYS,
            "race_period_days": RACE_PERIOD_DAYS,
            "pin_rate": PIN_RATE,
            "flaky_entry_rate": FLAKY_ENTRY_RATE,
            "flaky_failure_rate": FLAKY_FAILURE_RATE,
        },
    )


def fault(world: World, v: DemoValidator) -> dict[str, Any]:
    entry: dict[str, Any] = {"hotkey": v.hotkey, "name": v.name, "fault": v.fault}
    if v.fault == "biased":
        entry["score_offset"] = BIASED_SCORE_OFFSET
    elif v.fault == "stale":
        entry.update(stale_rate=STALE_LEASE_RATE, peer_stale_rate=PEER_STALE_RATE)
    else:
        entry.update(
            duration_factor=SLOW_DURATION_FACTOR,
            timeout_rate=SLOW_TIMEOUT_RATE,
            peer_timeout_rate=PEER_TIMEOUT_RATE,
        )
    return entry


def validator_states(world: World) -> list[tuple[Any, ...]]:
    runs, rng = world.runs, random.Random(world.seed + 1)
    last_claim: dict[int, float] = {}
    last_seen: dict[int, float] = {}
    last_hb: dict[int, float] = {}
    for i in range(len(runs)):
        v = runs.validator[i]
        last_claim[v] = runs.claimed[i]
        seen = min(world.now, runs.stopped[i], runs.claimed[i] + runs.crash[i])
        hb = world.last_heartbeat(runs.first_hb[i], seen - runs.claimed[i])
        if hb is not None:
            last_hb[v] = max(last_hb.get(v, 0.0), runs.claimed[i] + hb)
        last_seen[v] = max(
            last_seen.get(v, 0.0), runs.claimed[i], seen if runs.status[i] != S_CANCELLED else 0.0
        )
    rows = []
    for v in world.validators:
        if v.index not in last_claim:
            continue
        rows.append(
            (
                v.hotkey,
                to_datetime(last_claim[v.index]),
                to_datetime(last_seen[v.index]),
                round(rng.uniform(20, 95), 1),
                round(rng.uniform(30, 85), 1),
                round(rng.uniform(15, 70), 1),
                rng.randint(1, 6),
                service_versions(1 if world.now >= v.upgrade_at else 0),
                to_datetime(last_hb.get(v.index)),
            )
        )
    return rows


def pins_now(world: World) -> list[tuple[Any, ...]]:
    rows = []
    for miner, history in sorted(world.pins.items()):
        made = [(at, v) for at, v in history if at <= world.now]
        if made:
            at, version = made[-1]
            rows.append((world.miners[miner].hotkey, world.versions[version].id.hex, to_datetime(at)))
    return rows


def agent_code(world: World, version: DemoVersion) -> bytes:
    agent = world.agents[version.agent]
    return (
        f'"""{agent.name} v{version.number}: a demo shopping agent (generated; seed {world.seed})."""\n\n'
        f"SEARCH_DEPTH = {2 + version.number % 5}\n"
        f"TEMPERATURE = {round(0.1 + (version.index % 7) / 10, 1)}\n"
        f"VERSION = {str(version.id)!r}\n\n\n"
        "def solve(problem):\n"
        "    query = problem['query']\n"
        "    return {'answer': query, 'depth': SEARCH_DEPTH}\n"
    ).encode()


def code_artifacts(world: World) -> Iterable[tuple[str, bytes]]:
    for version in world.versions:
        code = agent_code(world, version)
        yield f"agents/{hashlib.sha256(code).hexdigest()}.py", code
