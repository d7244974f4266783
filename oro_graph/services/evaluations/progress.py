"""Progress reports: per-problem results of a live run, and the problems a run must evaluate."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.errors import (
    EvalRunNotFound,
    InvalidProblemId,
    RunAlreadyComplete,
    ValidationFailed,
)
from oro_graph.models import (
    EvaluationRun,
    Problem,
    ProblemResult,
    ProblemStatus,
    RunStatus,
    utcnow,
)
from oro_graph.services import events, races, suites
from oro_graph.services.evaluations.lease import (
    _change_status,
    _owned_live_run,
    _touch_validator,
    _why_not_live,
)
from oro_graph.services.evaluations.reads import get_run
from oro_graph.storage import check_key

MAX_PROBLEMS_PER_UPDATE = 500


@dataclass(frozen=True)
class ProblemUpdate:
    problem_id: uuid.UUID
    status: ProblemStatus
    score: float | None = None
    reasoning_score: float | None = None
    score_components: dict[str, Any] | None = None
    logs_key: str | None = None
    execution_time: float | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None


@dataclass(frozen=True)
class RunProblem:
    """A problem of a run, with its whole suite-file JSON (answers included)."""

    problem: Problem
    metadata: dict[str, Any]


def run_problems(
    session: Session, *, run_id: uuid.UUID, validator_hotkey: str, now: datetime | None = None
) -> list[RunProblem]:
    """Every problem a run must evaluate, whole, for the validator holding its live lease, in suite order.

    The answers in them (rewards, vouchers) are the suite's secret, so anyone else gets EVAL_RUN_NOT_FOUND,
    whatever the reason (another validator's run, a lapsed or finished run, no such run): the detail says
    which, to the caller only.
    """
    run = get_run(session, run_id)
    refusal = _why_not_live(run, validator_hotkey, now or utcnow())
    if refusal is not None:
        raise EvalRunNotFound(refusal[1])
    problems = suites.problems_for_suite(session, run.suite_id)
    drawn = races.race_problem_ids(session, run)
    if drawn is not None:  # a race run evaluates the race's drawn problems, in draw order
        by_id = {p.id: p for p in problems}
        problems = [by_id[i] for i in drawn if i in by_id]
    return [RunProblem(problem, body) for problem, body in suites.whole_problems(session, problems)]


def _check_score(name: str, value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or not 0.0 <= value <= 1.0):
        raise ValidationFailed(f"{name} must be a number between 0 and 1, got {value}")


def _check_run_key(run: EvaluationRun, name: str, key: str | None) -> None:
    """A run may only point at artifacts under its own ``runs/{run_id}/`` prefix (from presign)."""
    if key is None:
        return
    try:
        check_key(key)
    except ValidationFailed:
        raise ValidationFailed(f"{name} {key!r} is not a valid artifact key") from None
    if not key.startswith(f"runs/{run.id}/"):
        raise ValidationFailed(f"{name} must be a key under runs/{run.id}/ as returned by the upload presign")


def _check_count(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValidationFailed(f"{name} must not be negative, got {value}")


@writes
def update_progress(
    session: Session,
    *,
    run_id: uuid.UUID,
    validator_hotkey: str,
    problems: Sequence[ProblemUpdate],
    now: datetime | None = None,
) -> list[ProblemResult]:
    """Upsert per-problem results by (run, problem). All or nothing: one bad entry writes none."""
    now = now or utcnow()
    if len(problems) > MAX_PROBLEMS_PER_UPDATE:
        raise ValidationFailed(f"at most {MAX_PROBLEMS_PER_UPDATE} problems per update, got {len(problems)}")
    run = _owned_live_run(session, run_id, validator_hotkey, now, lapsed=RunAlreadyComplete)
    ids = {p.problem_id for p in problems}
    known = set(
        session.exec(
            select(Problem.id).where(Problem.suite_id == run.suite_id, col(Problem.id).in_(ids))
        ).all()
    )
    unknown = sorted(str(i) for i in ids - known)
    if unknown:
        raise InvalidProblemId(f"problem(s) not in suite {run.suite_id}: {', '.join(unknown)}")
    drawn = races.race_problem_ids(session, run)
    undrawn = sorted(str(i) for i in ids - set(drawn)) if drawn is not None else []
    if undrawn:
        raise InvalidProblemId(f"problem(s) not drawn for this run's race: {', '.join(undrawn)}")
    for update in problems:
        _check_score("score", update.score)
        _check_score("reasoning_score", update.reasoning_score)
        _check_run_key(run, "logs_s3_key", update.logs_key)
        _check_count("inference_failure_count", update.inference_failure_count)
        _check_count("inference_total", update.inference_total)
        if update.execution_time is not None and (
            not math.isfinite(update.execution_time) or update.execution_time < 0
        ):
            raise ValidationFailed(
                f"execution_time must be a non-negative number, got {update.execution_time}"
            )
    existing = {
        r.problem_id: r
        for r in session.exec(
            select(ProblemResult).where(
                ProblemResult.run_id == run.id, col(ProblemResult.problem_id).in_(ids)
            )
        )
    }
    saved = []
    for update in problems:  # a later entry for the same problem in one batch wins
        row = existing.get(update.problem_id) or ProblemResult(run_id=run.id, problem_id=update.problem_id)
        existing[update.problem_id] = row
        row.status = update.status
        for name in (
            "score",
            "reasoning_score",
            "score_components",
            "logs_key",
            "execution_time",
            "inference_failure_count",
            "inference_total",
        ):
            value = getattr(update, name)
            if value is not None:
                setattr(row, name, value)
        row.updated_at = now
        session.add(row)
        saved.append(row)
        scored = update.status not in (ProblemStatus.PENDING, ProblemStatus.RUNNING)
        events.record(
            session,
            events.RunEvent.PROBLEM_SCORED if scored else events.RunEvent.PROBLEM_STARTED,
            run_id=run.id,
            payload={"problem_id": str(update.problem_id), "status": update.status, "score": row.score},
            at=now,
        )
    _change_status(session, run, RunStatus.RUNNING, now)
    _touch_validator(session, validator_hotkey, None, now)
    session.add(run)
    session.flush()
    return saved
