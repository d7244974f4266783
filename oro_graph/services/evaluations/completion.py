"""Finishing a run: a success counts toward its work item; the last one needed makes the version eligible."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.errors import (
    MissingScore,
    RunAlreadyComplete,
    ValidationFailed,
)
from oro_graph.models import (
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    ProblemResult,
    RunStatus,
    WorkItem,
    utcnow,
)
from oro_graph.services import events, locks, races
from oro_graph.services.evaluations.lease import (
    _held_run,
    _settle_version_state,
    _touch_validator,
)
from oro_graph.services.evaluations.progress import _check_run_key, _check_score
from oro_graph.services.leaderboard import on_version_eligible
from oro_graph.services.locks import Lock
from oro_graph.services.scoring import final_score_of, qualifies
from oro_graph.settings import Settings


@dataclass(frozen=True)
class Completion:
    run: EvaluationRun
    work_item: WorkItem
    became_eligible: bool
    final_score: float | None


@writes
def complete_run(
    session: Session,
    *,
    run_id: uuid.UUID,
    validator_hotkey: str,
    terminal_status: RunStatus,
    settings: Settings,
    validator_score: float | None = None,
    score_components: dict[str, Any] | None = None,
    results_key: str | None = None,
    failure_reason: str | None = None,
    sandbox_metadata: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Completion:
    """Finish a run. A success counts toward the work item; the last needed one makes the version
    ELIGIBLE with the mean of the included scores and lets the top agent be recomputed."""
    now = now or utcnow()
    if terminal_status not in RunStatus.finished():
        allowed = sorted(s.value for s in RunStatus.finished())
        raise ValidationFailed(f"terminal_status must be one of {allowed}")
    _touch_validator(session, validator_hotkey, None, now)
    run = _held_run(session, run_id, validator_hotkey, now, lapsed=RunAlreadyComplete, attached=True)
    if terminal_status == RunStatus.SUCCESS and validator_score is None:
        raise MissingScore("a SUCCESS completion needs validator_score")
    _check_score("validator_score", validator_score)
    _check_run_key(run, "results_s3_key", results_key)
    # The work item (locked, after the run: the lock order), its version and the run's inference
    # counts (read once the run is locked, so no progress report of it can land in between).
    if run.race_id is not None:  # the race before the work item, as its transitions take them
        races.get_race(session, run.race_id, lock=True)
    locks.take(session, Lock.WORK_ITEM, run.work_item_id)
    results = ProblemResult.__table__.c
    sums = [
        sa_select(func.sum(column)).where(results.run_id == run.id).scalar_subquery()
        for column in (results.inference_failure_count, results.inference_total)
    ]
    work, version, failures, total = session.execute(
        sa_select(WorkItem, AgentVersion, *sums)
        .join(AgentVersion, col(AgentVersion.id) == WorkItem.agent_version_id)
        .where(col(WorkItem.id) == run.work_item_id)
        .with_for_update(of=WorkItem)
    ).one()

    run.status = terminal_status
    run.completed_at = now
    run.validator_score = validator_score
    run.score_components = score_components
    run.results_key = results_key or run.results_key
    run.failure_reason = failure_reason
    run.sandbox_metadata = sandbox_metadata
    run.inference_failure_count, run.inference_total = failures, total
    work.active_runs = max(0, work.active_runs - 1)
    became_eligible = False
    if terminal_status == RunStatus.SUCCESS and not work.is_closed:
        run.is_included = True
        work.included_successes += 1
        if qualifies(work.included_successes, work.required_successes) and work.race_id is None:
            session.add(run)
            session.flush()
            scores = session.exec(
                select(EvaluationRun.validator_score).where(
                    EvaluationRun.work_item_id == work.id, col(EvaluationRun.is_included).is_(True)
                )
            ).all()
            work.is_closed = True
            work.closed_at = now
            version.final_score = final_score_of(scores)
            version.state = AgentVersionState.ELIGIBLE
            version.eligible_at = now
            became_eligible = True
    session.add_all([run, work, version])
    _settle_version_state(session, work)
    session.flush()
    events.record(
        session,
        events.RunEvent.FINISHED,
        run_id=run.id,
        suite_id=run.suite_id,
        agent_version_id=run.agent_version_id,
        payload=events.Finished(RunStatus(run.status), validator_score, became_eligible),
        at=now,
    )
    if became_eligible:
        on_version_eligible(session, version, settings=settings, now=now)
    if work.race_id is not None:
        races.on_race_run_finished(session, work, run, settings=settings, now=now)
    return Completion(
        run=run, work_item=work, became_eligible=became_eligible, final_score=version.final_score
    )
