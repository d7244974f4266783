"""Progress reports: per-problem results of a live run, and the problems a run must evaluate."""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy import select as sa_select
from sqlmodel import Session

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
from oro_graph.models.base import new_id
from oro_graph.services import events, races, suites
from oro_graph.services.evaluations.lease import (
    _held_run,
    _set_run,
    _status_values,
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
    _touch_validator(session, validator_hotkey, None, now)
    run = _held_run(session, run_id, validator_hotkey, now, lapsed=RunAlreadyComplete)
    ids = {p.problem_id for p in problems}
    # The suite's problems among those named, with each one's stored score for this run, if any.
    stored = session.execute(_STORED, {"run_id": run.id, "suite_id": run.suite_id, "ids": list(ids)}).all()
    unknown = sorted(str(i) for i in ids - {row.id for row in stored})
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
    scores = {row.id: row.score for row in stored if row.result_id is not None}
    merged: dict[uuid.UUID, dict[str, Any]] = {}
    for update in problems:  # a later entry for the same problem in one batch wins
        values = merged.setdefault(update.problem_id, dict.fromkeys(_RESULT_FIELDS))
        values["status"] = update.status
        given = {name: getattr(update, name) for name in _RESULT_FIELDS}
        values.update({name: value for name, value in given.items() if value is not None})
        if update.score is not None:
            scores[update.problem_id] = update.score
        scored = update.status in ProblemStatus.finished()
        events.record(
            session,
            events.RunEvent.PROBLEM_SCORED if scored else events.RunEvent.PROBLEM_STARTED,
            run_id=run.id,
            payload=events.ProblemReported(update.problem_id, update.status, scores.get(update.problem_id)),
            at=now,
        )
    saved = _upsert_results(session, run.id, merged, now)
    _set_run(session, run, _status_values(session, run, RunStatus.RUNNING, now))
    return [saved[update.problem_id] for update in problems]


_PROBLEMS = Problem.__table__
_RESULTS = ProblemResult.__table__
# The named problems of the run's suite, each with the run's stored result (id, score), if any.
_STORED = (
    sa_select(_PROBLEMS.c.id, _RESULTS.c.id.label("result_id"), _RESULTS.c.score)
    .select_from(
        _PROBLEMS.outerjoin(
            _RESULTS,
            (_RESULTS.c.problem_id == _PROBLEMS.c.id)
            & (_RESULTS.c.run_id == bindparam("run_id", type_=_RESULTS.c.run_id.type)),
        )
    )
    .where(
        _PROBLEMS.c.suite_id == bindparam("suite_id", type_=_PROBLEMS.c.suite_id.type),
        _PROBLEMS.c.id.in_(bindparam("ids", expanding=True, type_=_PROBLEMS.c.id.type)),
    )
)
# What an entry may set; a field it leaves out (None) keeps its stored value.
_RESULT_FIELDS = (
    "score",
    "reasoning_score",
    "score_components",
    "logs_key",
    "execution_time",
    "inference_failure_count",
    "inference_total",
)


def _upsert_results(
    session: Session, run_id: uuid.UUID, merged: dict[uuid.UUID, dict[str, Any]], now: datetime
) -> dict[uuid.UUID, ProblemResult]:
    """One INSERT ... ON CONFLICT (run, problem) DO UPDATE for every problem of the report: new results
    are inserted, stored ones get the status and each field the report gives (the others are kept)."""
    if not merged:
        return {}
    params: dict[str, Any] = {}
    for i, (problem_id, values) in enumerate(merged.items()):
        row = {"id": new_id(), "run_id": run_id, "problem_id": problem_id, "updated_at": now, **values}
        params.update({f"{name}_{i}": row[name] for name in _INSERTED})
    rows = session.execute(_upsert_statement(len(merged)), params).all()
    return {row.problem_id: ProblemResult(**row._mapping) for row in rows}


_INSERTED = ("id", "run_id", "problem_id", "status", *_RESULT_FIELDS, "updated_at")


@functools.lru_cache(maxsize=32)  # bounded: a report may name up to MAX_PROBLEMS_PER_UPDATE problems
def _upsert_statement(rows: int) -> Any:
    """The upsert of ``rows`` results, as typed text built once per row count (the common counts stay
    cached): SQLAlchemy has no cache key for the dialects' ``on_conflict_do_update``, so the construct
    was compiled on every progress report. Both databases read the same SQL."""
    tuples = ", ".join("(" + ", ".join(f":{name}_{i}" for name in _INSERTED) + ")" for i in range(rows))
    updates = ", ".join(
        [
            "status = excluded.status",
            "updated_at = excluded.updated_at",
            *(f"{name} = coalesce(excluded.{name}, problemresult.{name})" for name in _RESULT_FIELDS),
        ]
    )
    returned = ", ".join(column.name for column in _RESULTS.c)
    sql = (
        f"INSERT INTO problemresult ({', '.join(_INSERTED)}) VALUES {tuples}"
        f" ON CONFLICT (run_id, problem_id) DO UPDATE SET {updates} RETURNING {returned}"
    )
    binds = [bindparam(f"{name}_{i}", type_=_RESULTS.c[name].type) for i in range(rows) for name in _INSERTED]
    return text(sql).bindparams(*binds).columns(*_RESULTS.c)
