"""Idempotent upserts of another server's public data (the `oro-graph mirror` command).

Records are plain dataclasses, independent of any client library. Ids are kept as the source
gave them, so a second mirror run updates rows in place and adds only what is new.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.models import (
    Agent,
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    Hotkey,
    Miner,
    Problem,
    ProblemResult,
    Role,
    Suite,
    TopAgentHistory,
    WorkItem,
    utcnow,
)

MIRRORED_CODE_KEY = "mirrored/unavailable"


@dataclass(frozen=True)
class SuiteRecord:
    id: int
    version: int
    is_active: bool
    execution_kind: str = "legacy_shoppingbench"
    benchmark_name: str | None = None
    benchmark_number: int | None = None


@dataclass(frozen=True)
class ProblemRecord:
    id: uuid.UUID
    suite_id: int
    position: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionRecord:
    id: uuid.UUID
    agent_id: uuid.UUID
    agent_name: str
    miner_hotkey: str
    version_number: int
    suite_id: int
    state: str
    submitted_at: datetime
    eligible_at: datetime | None = None
    final_score: float | None = None
    required_successes: int | None = None


@dataclass(frozen=True)
class RunRecord:
    id: uuid.UUID
    agent_version_id: uuid.UUID
    suite_id: int
    validator_hotkey: str
    status: str
    claimed_at: datetime
    lease_expires_at: datetime
    is_included: bool
    last_heartbeat_at: datetime | None = None
    completed_at: datetime | None = None
    validator_score: float | None = None
    failure_reason: str | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None


@dataclass(frozen=True)
class ResultRecord:
    run_id: uuid.UUID
    problem_id: uuid.UUID
    status: str
    score: float | None = None
    reasoning_score: float | None = None
    execution_time: float | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None
    updated_at: datetime | None = None


@dataclass
class MirrorCounts:
    """Rows added and updated by one mirror pass."""

    added: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, created: bool) -> None:
        bucket = self.added if created else self.updated
        bucket[kind] = bucket.get(kind, 0) + 1

    def merge(self, other: MirrorCounts) -> None:
        for kind, n in other.added.items():
            self.added[kind] = self.added.get(kind, 0) + n
        for kind, n in other.updated.items():
            self.updated[kind] = self.updated.get(kind, 0) + n


def _upsert(
    session: Session, model: type, key: Any, values: dict[str, Any], counts: MirrorCounts, kind: str
) -> Any:
    row = session.get(model, key)
    if row is None:
        row = model(**values)
        session.add(row)
        counts.add(kind, True)
        return row
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        session.add(row)
        counts.add(kind, False)
    return row


@writes
def upsert_suite(session: Session, suite: SuiteRecord, problems: Sequence[ProblemRecord]) -> MirrorCounts:
    counts = MirrorCounts()
    _upsert(
        session,
        Suite,
        suite.id,
        {
            "id": suite.id,
            "version": suite.version,
            "is_active": suite.is_active,
            "execution_kind": suite.execution_kind,
            "benchmark_name": suite.benchmark_name,
            "benchmark_number": suite.benchmark_number,
        },
        counts,
        "suites",
    )
    session.flush()
    if suite.is_active:
        for other in session.exec(select(Suite).where(Suite.id != suite.id, col(Suite.is_active))):
            other.is_active = False
            session.add(other)
    for p in problems:
        meta = dict(p.metadata)
        values = {
            "id": p.id,
            "suite_id": p.suite_id,
            "position": int(meta.pop("position", p.position)),
            "title": str(meta.pop("title", None) or f"Problem {p.position + 1}"),
            "category": meta.pop("category", None),
            "difficulty": meta.pop("difficulty", None),
            "query": meta.pop("query", None),
            "extra": meta or None,
        }
        _upsert(session, Problem, p.id, values, counts, "problems")
    session.flush()
    return counts


@writes
def upsert_validators(
    session: Session, hotkeys: Sequence[tuple[str, str | None, datetime | None]]
) -> MirrorCounts:
    """Validators as (hotkey, name, registered_at): registry rows with the validator role."""
    counts = MirrorCounts()
    for hotkey, name, registered_at in hotkeys:
        row = session.get(Hotkey, hotkey)
        if row is None:
            session.add(
                Hotkey(
                    ss58=hotkey,
                    role=Role.VALIDATOR,
                    validator_permit=True,
                    name=name,
                    registered_at=registered_at or utcnow(),
                )
            )
            counts.add("validators", True)
        elif row.name != name and name is not None:
            row.name = name
            session.add(row)
            counts.add("validators", False)
    session.flush()
    return counts


def known_final_versions(session: Session, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Versions already mirrored in a state whose runs can no longer change.

    That is eligible, discarded or cancelled.
    """
    rows = session.exec(
        select(AgentVersion.id).where(
            col(AgentVersion.id).in_(list(ids)), col(AgentVersion.state).in_(AgentVersionState.settled())
        )
    )
    return set(rows.all())


@writes
def upsert_version(
    session: Session, version: VersionRecord, runs: Sequence[RunRecord], results: Sequence[ResultRecord]
) -> MirrorCounts:
    """One version with its agent, miner, work item, runs and per-problem results, in one transaction."""
    counts = MirrorCounts()
    if session.get(Miner, version.miner_hotkey) is None:
        session.add(Miner(hotkey=version.miner_hotkey, created_at=version.submitted_at))
        counts.add("miners", True)
        session.flush()
    # An agent is (miner, name); the source may not reveal its id for unreleased versions.
    agent = session.exec(
        select(Agent).where(Agent.miner_hotkey == version.miner_hotkey, Agent.name == version.agent_name)
    ).first()
    if agent is None:
        agent = Agent(
            id=version.agent_id,
            miner_hotkey=version.miner_hotkey,
            name=version.agent_name,
            created_at=version.submitted_at,
        )
        session.add(agent)
        counts.add("agents", True)
        session.flush()
    _upsert(
        session,
        AgentVersion,
        version.id,
        {
            "id": version.id,
            "agent_id": agent.id,
            "version_number": version.version_number,
            "suite_id": version.suite_id,
            "state": version.state,
            "submitted_at": version.submitted_at,
            "eligible_at": version.eligible_at,
            "final_score": version.final_score,
            "code_key": MIRRORED_CODE_KEY,
            "code_sha256": "",
            "code_size": 0,
        },
        counts,
        "versions",
    )
    session.flush()
    included = sum(1 for r in runs if r.is_included)
    active = sum(1 for r in runs if r.status in ("CLAIMED", "RUNNING"))
    work = session.exec(
        select(WorkItem).where(WorkItem.agent_version_id == version.id, col(WorkItem.race_id).is_(None))
    ).first()
    values = {
        "agent_version_id": version.id,
        "suite_id": version.suite_id,
        "required_successes": version.required_successes or max(included, 1),
        "included_successes": included,
        "active_runs": active,
        "is_closed": version.state == AgentVersionState.ELIGIBLE,
        "created_at": version.submitted_at,
        "closed_at": version.eligible_at,
    }
    if work is None:
        work = WorkItem(**values)
        session.add(work)
        counts.add("work_items", True)
    else:
        _upsert(session, WorkItem, work.id, values, counts, "work_items")
    session.flush()
    for run in runs:
        _upsert(
            session,
            EvaluationRun,
            run.id,
            {
                "id": run.id,
                "work_item_id": work.id,
                "agent_version_id": run.agent_version_id,
                "validator_hotkey": run.validator_hotkey,
                "suite_id": run.suite_id,
                "status": run.status,
                "claimed_at": run.claimed_at,
                "lease_expires_at": run.lease_expires_at,
                "last_heartbeat_at": run.last_heartbeat_at,
                "completed_at": run.completed_at,
                "validator_score": run.validator_score,
                "failure_reason": run.failure_reason,
                "is_included": run.is_included,
                "inference_failure_count": run.inference_failure_count,
                "inference_total": run.inference_total,
            },
            counts,
            "runs",
        )
    session.flush()
    existing = {
        (r.run_id, r.problem_id): r
        for r in session.exec(
            select(ProblemResult).where(col(ProblemResult.run_id).in_([r.id for r in runs]))
        )
    }
    for res in results:
        values = {
            "run_id": res.run_id,
            "problem_id": res.problem_id,
            "status": res.status,
            "score": res.score,
            "reasoning_score": res.reasoning_score,
            "execution_time": res.execution_time,
            "inference_failure_count": res.inference_failure_count,
            "inference_total": res.inference_total,
            "updated_at": res.updated_at or utcnow(),
        }
        row = existing.get((res.run_id, res.problem_id))
        if row is None:
            session.add(ProblemResult(**values))
            counts.add("problem_results", True)
        elif any(getattr(row, k) != v for k, v in values.items() if k != "updated_at"):
            for k, v in values.items():
                setattr(row, k, v)
            session.add(row)
            counts.add("problem_results", False)
    session.flush()
    return counts


@writes
def record_top(
    session: Session, suite_id: int, version_id: uuid.UUID, score: float, seen_at: datetime
) -> MirrorCounts:
    """Note the source's current top agent; a change of top opens a new reign in the history."""
    counts = MirrorCounts()
    current = session.exec(
        select(TopAgentHistory).where(
            TopAgentHistory.suite_id == suite_id, col(TopAgentHistory.replaced_at).is_(None)
        )
    ).first()
    if current is not None and current.agent_version_id == version_id:
        return counts
    if current is not None:
        current.replaced_at = seen_at
        session.add(current)
    session.add(TopAgentHistory(suite_id=suite_id, agent_version_id=version_id, score=score, top_at=seen_at))
    counts.add("top_history", True)
    session.flush()
    return counts
