"""Finishing a run: a success counts toward its work item; the last one needed makes the version eligible."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

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
    _set_run,
    _touch_validator,
    _update_by_id,
)
from oro_graph.services.evaluations.progress import _check_run_key, _check_score
from oro_graph.services.leaderboard import on_version_eligible
from oro_graph.services.locks import Lock
from oro_graph.services.scoring import final_score_of, qualifies, waiting_state
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
    ELIGIBLE with the mean of the included scores and lets the top agent be recomputed.

    Core rows and UPDATEs of the columns that change, no ORM instance, except for what the board
    (a version becoming eligible) and a race's settlement read and change through the ORM.
    """
    now = now or utcnow()
    if terminal_status not in RunStatus.finished():
        allowed = sorted(s.value for s in RunStatus.finished())
        raise ValidationFailed(f"terminal_status must be one of {allowed}")
    _touch_validator(session, validator_hotkey, None, now)
    run = _held_run(session, run_id, validator_hotkey, now, lapsed=RunAlreadyComplete)
    if terminal_status == RunStatus.SUCCESS and validator_score is None:
        raise MissingScore("a SUCCESS completion needs validator_score")
    _check_score("validator_score", validator_score)
    _check_run_key(run, "results_s3_key", results_key)
    # The work item (locked, after the run: the lock order), its version's state and the run's
    # inference counts (read once the run is locked, so no progress report of it can land in between).
    if run.race_id is not None:  # the race before the work item, as its transitions take them
        races.get_race(session, run.race_id, lock=True)
    locks.take(session, Lock.WORK_ITEM, run.work_item_id)
    found = session.execute(_LOCK_WORK, {"work_id": run.work_item_id, "run_id": run.id}).one()._mapping
    work = WorkItem(**{c.name: found[c.name] for c in _WORK.c})
    version_state = found["version_state"]

    run_values: dict[str, Any] = {
        "status": terminal_status,
        "completed_at": now,
        "validator_score": validator_score,
        "score_components": score_components,
        "results_key": results_key or run.results_key,
        "failure_reason": failure_reason,
        "sandbox_metadata": sandbox_metadata,
        "inference_failure_count": found["failures"],
        "inference_total": found["total"],
    }
    work_values: dict[str, Any] = {"active_runs": max(0, work.active_runs - 1)}
    version_values: dict[str, Any] = {}
    final_score = found["final_score"]
    if terminal_status == RunStatus.SUCCESS and not work.is_closed:
        run_values["is_included"] = True
        work_values["included_successes"] = work.included_successes + 1
        if qualifies(work_values["included_successes"], work.required_successes) and work.race_id is None:
            others = session.execute(_INCLUDED_SCORES, {"work_id": work.id, "run_id": run.id}).scalars()
            final_score = final_score_of([*others, validator_score])
            work_values.update(is_closed=True, closed_at=now)
            version_values.update(final_score=final_score, state=AgentVersionState.ELIGIBLE, eligible_at=now)
    for name, value in work_values.items():
        setattr(work, name, value)
    became_eligible = bool(version_values)
    if not became_eligible and version_state in AgentVersionState.evaluating():
        settled = waiting_state(work.active_runs, work.included_successes)
        if settled != version_state:
            version_values["state"] = settled
    _set_run(session, run, run_values)
    _update_by_id(session, _WORK, work.id, work_values)
    if version_values:
        _update_by_id(session, _VERSIONS, work.agent_version_id, version_values)
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
        # Loaded after the UPDATE: as it is now.
        version = session.execute(_VERSION, {"version_id": work.agent_version_id}).scalar_one()
        on_version_eligible(session, version, settings=settings, now=now)
    if work.race_id is not None:
        attached = session.get(WorkItem, work.id)  # the race's settlement changes it through the ORM
        assert attached is not None
        races.on_race_run_finished(session, attached, run, settings=settings, now=now)
        work = attached
    return Completion(run=run, work_item=work, became_eligible=became_eligible, final_score=final_score)


_WORK = WorkItem.__table__
_VERSIONS = AgentVersion.__table__
_RESULTS = ProblemResult.__table__
_RUNS = EvaluationRun.__table__
_RUN_ID = bindparam("run_id", type_=_RUNS.c.id.type)
_WORK_ID = bindparam("work_id", type_=_WORK.c.id.type)


def _version_column(name: str) -> Any:
    return (
        sa_select(_VERSIONS.c[name])
        .where(_VERSIONS.c.id == _WORK.c.agent_version_id)
        .scalar_subquery()
        .label(f"version_{name}" if name == "state" else name)
    )


_LOCK_WORK = (
    sa_select(
        *_WORK.c,
        _version_column("state"),
        _version_column("final_score"),
        *[
            sa_select(func.sum(column)).where(_RESULTS.c.run_id == _RUN_ID).scalar_subquery().label(label)
            for column, label in (
                (_RESULTS.c.inference_failure_count, "failures"),
                (_RESULTS.c.inference_total, "total"),
            )
        ],
    )
    .where(_WORK.c.id == _WORK_ID)
    .with_for_update(of=_WORK)
)
# The version that became eligible, as an ORM row for the board (``on_version_eligible``). A statement
# built once: ``session.get`` builds and annotates its select on every call, and hashing that for the
# compiled cache was most of the load's cost.
_VERSION = sa_select(AgentVersion).where(_VERSIONS.c.id == bindparam("version_id", type_=_VERSIONS.c.id.type))
# The scores of the work item's other included runs (this one's is the completion's own).
_INCLUDED_SCORES = sa_select(_RUNS.c.validator_score).where(
    _RUNS.c.work_item_id == _WORK_ID, _RUNS.c.is_included.is_(True), _RUNS.c.id != _RUN_ID
)
