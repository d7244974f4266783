"""The evaluation lifecycle: claim, heartbeat, progress, complete, and lease expiry.

Lock order: ``services.locks.Lock``, checked by ``locks.take`` (validator state -> work item in
``claim_work``; run -> race (a race run's) -> work item -> suite board in the others).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func
from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from oro_graph.db import insert_if_absent, writes
from oro_graph.errors import (
    AgentNotFound,
    AgentVersionNotFound,
    AtCapacity,
    EvalRunNotFound,
    InvalidProblemId,
    LeaseExpired,
    MissingScore,
    NotRunOwner,
    OroError,
    RunAlreadyComplete,
    ValidationFailed,
)
from oro_graph.models import (
    Agent,
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    Problem,
    ProblemResult,
    ProblemStatus,
    RunStatus,
    ValidatorState,
    WorkItem,
    utcnow,
)
from oro_graph.services import agents, credentials, events, locks, races, suites
from oro_graph.services.leaderboard import on_version_eligible
from oro_graph.services.locks import Lock
from oro_graph.services.scoring import final_score_of, qualifies, waiting_state
from oro_graph.settings import Settings
from oro_graph.storage import Storage, check_key

MAX_PROBLEMS_PER_UPDATE = 500


@dataclass(frozen=True)
class Metrics:
    """What a validator reports about its machine with a claim or a heartbeat."""

    service_versions: dict[str, Any] | None = None
    cpu_pct: float | None = None
    ram_pct: float | None = None
    disk_pct: float | None = None
    docker_container_count: int | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class Claim:
    run: EvaluationRun
    code_download_url: str
    code_sha256: str


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
class Completion:
    run: EvaluationRun
    work_item: WorkItem
    became_eligible: bool
    final_score: float | None


@dataclass
class ExpiryReport:
    expired: list[uuid.UUID] = field(default_factory=list)


def _seen_values(metrics: Metrics | None, now: datetime) -> dict[str, Any]:
    """What a validator's call says about it: seen now, and the metrics it reported, if any."""
    values: dict[str, Any] = {"last_seen_at": now}
    if metrics is None or metrics.is_empty():
        return values
    for name in ("cpu_pct", "ram_pct", "disk_pct", "docker_container_count", "service_versions"):
        value = getattr(metrics, name)
        if value is not None:
            values[name] = value
    values["metrics_reported_at"] = now
    return values


def _record_metrics(state: ValidatorState, metrics: Metrics | None, now: datetime) -> None:
    for name, value in _seen_values(metrics, now).items():
        setattr(state, name, value)


def _touch_validator(session: Session, hotkey: str, metrics: Metrics | None, now: datetime) -> None:
    """Record that the validator was seen (and its metrics) with one UPDATE, without loading its row."""
    updated = session.execute(
        sql_update(ValidatorState)
        .where(col(ValidatorState.hotkey) == hotkey)
        .values(**_seen_values(metrics, now))
        .execution_options(synchronize_session=False)
    )
    if updated.rowcount == 0:  # a validator whose row predates it (it is made at the first claim)
        state = _validator_state(session, hotkey, lock=False)
        _record_metrics(state, metrics, now)
        session.add(state)


def _validator_state(session: Session, hotkey: str, *, lock: bool) -> ValidatorState:
    """The validator's state row, created if missing (race-free), optionally row-locked."""
    stmt = select(ValidatorState).where(ValidatorState.hotkey == hotkey)
    if lock:
        locks.take(session, Lock.VALIDATOR_STATE, hotkey)
    state = session.exec(stmt.with_for_update() if lock else stmt).first()
    if state is None:
        insert_if_absent(session, ValidatorState, hotkey=hotkey)
        state = session.exec(stmt.with_for_update() if lock else stmt).one()
    return state


def _change_status(session: Session, run: EvaluationRun, status: RunStatus, now: datetime) -> None:
    if run.status != status:
        events.record(
            session,
            events.RunEvent.STATUS_CHANGED,
            run_id=run.id,
            payload=events.StatusChanged(RunStatus(run.status), status),
            at=now,
        )
        run.status = status


@writes
def expire_leases(session: Session, *, now: datetime | None = None, limit: int = 500) -> ExpiryReport:
    """Mark runs whose lease passed as STALE and give their slot back to the work item."""
    now = now or utcnow()
    report = ExpiryReport()
    stale = session.exec(
        select(EvaluationRun)
        .where(col(EvaluationRun.status).in_(RunStatus.live()), col(EvaluationRun.lease_expires_at) < now)
        .order_by(col(EvaluationRun.lease_expires_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if stale:  # SKIP LOCKED waits for nobody: the runs count as held once found
        locks.take(session, Lock.RUN)
    for run in stale:
        locks.take(session, Lock.WORK_ITEM, run.work_item_id)
        work = session.exec(select(WorkItem).where(WorkItem.id == run.work_item_id).with_for_update()).one()
        _change_status(session, run, RunStatus.STALE, now)
        run.completed_at = now
        run.failure_reason = run.failure_reason or "lease expired without a heartbeat"
        work.active_runs = max(0, work.active_runs - 1)
        _settle_version_state(session, work)
        session.add_all([run, work])
        report.expired.append(run.id)
    session.flush()
    return report


def _settle_version_state(session: Session, work: WorkItem) -> None:
    version = session.get(AgentVersion, work.agent_version_id)
    if version is None or version.state not in AgentVersionState.evaluating():
        return
    version.state = waiting_state(work.active_runs, work.included_successes)
    session.add(version)


def _lock_open_work_item(
    session: Session, validator_hotkey: str, settings: Settings, attempts: int = 5
) -> WorkItem | None:
    """Lock the oldest work item with a free slot that this validator has not run.

    First with SKIP LOCKED, so concurrent claimers spread over different items. If every open
    item was locked by someone else, wait for the oldest one instead: the lock holder may
    release it with slots to spare, and a validator should not be told "no work" while there is.
    """
    already_ran = exists().where(
        EvaluationRun.work_item_id == WorkItem.id,
        EvaluationRun.validator_hotkey == validator_hotkey,
        EvaluationRun.status != RunStatus.CANCELLED.value,  # released runs count as no attempt
    )
    conditions = [
        col(WorkItem.is_closed).is_(False),
        WorkItem.included_successes + WorkItem.active_runs < WorkItem.required_successes,
        col(WorkItem.max_attempts).is_(None)  # race work: X of at most Y finished runs
        | (
            WorkItem.included_successes + WorkItem.failed_attempts + WorkItem.active_runs
            < WorkItem.max_attempts
        ),
        ~already_ran,
    ]
    if settings.require_inference_credential:
        # A version whose miner has no usable credential waits: a validator cannot run it without a token.
        conditions.append(
            exists()
            .where(AgentVersion.id == WorkItem.agent_version_id, Agent.id == AgentVersion.agent_id)
            .where(credentials.usable_clause(Agent.miner_hotkey, settings))
        )
    candidates = (
        select(WorkItem)
        .where(*conditions)
        # Race work before qualifying work, then the oldest first.
        .order_by(col(WorkItem.race_id).is_(None), col(WorkItem.created_at), col(WorkItem.id))
        .limit(1)
    )
    locks.take(session, Lock.WORK_ITEM)
    work = session.exec(candidates.with_for_update(skip_locked=True)).first()
    for _ in range(attempts):
        if work is not None:
            return work
        if session.exec(candidates).first() is None:  # nothing open at all, locked or not
            return None
        # Blocking lock; PostgreSQL re-checks the WHERE clause once the holder commits.
        work = session.exec(candidates.with_for_update()).first()
    return work


@writes
def claim_work(
    session: Session,
    *,
    validator_hotkey: str,
    settings: Settings,
    storage: Storage,
    metrics: Metrics | None = None,
    now: datetime | None = None,
) -> Claim | None:
    """Lease the oldest open work item this validator has not run yet, or return None.

    Expired leases are swept first (and committed) so a crashed validator never blocks a version.
    The work item is taken with ``FOR UPDATE SKIP LOCKED`` and re-checked under the lock, so no
    item is ever leased beyond its required successes, however many processes claim at once.
    """
    now = now or utcnow()
    if expire_leases(session, now=now).expired:
        session.commit()  # kept even if this claim then fails (AT_CAPACITY)

    state = _validator_state(session, validator_hotkey, lock=True)
    _record_metrics(state, metrics, now)
    active = session.exec(
        select(func.count())
        .select_from(EvaluationRun)
        .where(
            EvaluationRun.validator_hotkey == validator_hotkey,
            col(EvaluationRun.status).in_(RunStatus.live()),
        )
    ).one()
    if active >= settings.max_active_runs_per_validator:
        session.add(state)
        raise AtCapacity(
            f"validator holds {active} active run(s); the limit is {settings.max_active_runs_per_validator}. "
            "Complete or let a run expire before claiming again"
        )
    work = _lock_open_work_item(session, validator_hotkey, settings)
    if work is None:
        session.add(state)
        return None
    version = session.get(AgentVersion, work.agent_version_id)
    if version is None:  # the foreign key forbids it
        raise AgentVersionNotFound(f"agent version {work.agent_version_id} of work {work.id} does not exist")
    run = EvaluationRun(
        work_item_id=work.id,
        agent_version_id=version.id,
        validator_hotkey=validator_hotkey,
        suite_id=work.suite_id,
        race_id=work.race_id,
        status=RunStatus.CLAIMED,
        claimed_at=now,
        lease_expires_at=now + timedelta(seconds=settings.lease_seconds),
        service_versions=metrics.service_versions if metrics else None,
    )
    work.active_runs += 1
    state.last_claim_at = now
    session.add_all([run, work, state])
    _settle_version_state(session, work)
    session.flush()
    events.record(
        session,
        events.RunEvent.CLAIMED,
        run_id=run.id,
        suite_id=run.suite_id,
        agent_version_id=run.agent_version_id,
        payload=events.Claimed(validator_hotkey, run.lease_expires_at),
        at=now,
    )
    url = storage.download_url(
        version.code_key, seconds=min(settings.signed_url_seconds, settings.lease_seconds)
    )
    return Claim(run=run, code_download_url=url.url, code_sha256=version.code_sha256)


@writes
def release_run(session: Session, *, run_id: uuid.UUID, reason: str, now: datetime | None = None) -> bool:
    """Undo a claim whose validator cannot run it (no inference token): the run is CANCELLED, the
    work item's slot is given back, and the validator may claim the same version again."""
    now = now or utcnow()
    locks.take(session, Lock.RUN, run_id)
    run = session.exec(select(EvaluationRun).where(EvaluationRun.id == run_id).with_for_update()).first()
    if run is None or run.status not in RunStatus.live():
        return False
    locks.take(session, Lock.WORK_ITEM, run.work_item_id)
    work = session.exec(select(WorkItem).where(WorkItem.id == run.work_item_id).with_for_update()).one()
    _change_status(session, run, RunStatus.CANCELLED, now)
    run.completed_at = now
    run.failure_reason = reason[:1000]
    work.active_runs = max(0, work.active_runs - 1)
    session.add_all([run, work])
    _settle_version_state(session, work)
    session.flush()
    return True


def _why_not_live(run: EvaluationRun, validator_hotkey: str, now: datetime) -> tuple[str, str] | None:
    """Why this validator may not act on the run now, as (reason, detail), or None if it holds the run:
    "owner" (another validator's), "finished" (completed or cancelled) or "lapsed" (swept to STALE, or
    past its lease and not swept yet). Each operation turns the reason into the error its callers parse."""
    if run.validator_hotkey != validator_hotkey:
        return "owner", f"evaluation run {run.id} belongs to another validator"
    if run.status in RunStatus.finished() or run.status == RunStatus.CANCELLED:
        return "finished", f"evaluation run {run.id} is already complete ({run.status}); claim new work"
    if run.status == RunStatus.STALE or run.lease_expires_at <= now:
        return "lapsed", (
            f"the lease on evaluation run {run.id} lapsed at {run.lease_expires_at.isoformat()} "
            "(no heartbeat in time) and the run is over; claim new work"
        )
    return None


def _owned_live_run(
    session: Session,
    run_id: uuid.UUID,
    validator_hotkey: str,
    now: datetime,
    *,
    lapsed: type[OroError] = LeaseExpired,
) -> EvaluationRun:
    """The run, locked, if this validator holds it; else the error that says why.

    A lapsed lease is ``lapsed``: LEASE_EXPIRED for a heartbeat; for a progress report or a completion
    the run is over (RUN_ALREADY_COMPLETE), which is what tells a validator's retry queue to drop the
    call rather than retry it.
    """
    locks.take(session, Lock.RUN, run_id)
    run = session.exec(select(EvaluationRun).where(EvaluationRun.id == run_id).with_for_update()).first()
    if run is None:
        raise EvalRunNotFound(f"evaluation run {run_id} does not exist")
    refusal = _why_not_live(run, validator_hotkey, now)
    if refusal is not None:
        reason, detail = refusal
        raise {"owner": NotRunOwner, "finished": RunAlreadyComplete, "lapsed": lapsed}[reason](detail)
    return run


def live_run_for_upload(
    session: Session, run_id: uuid.UUID, validator_hotkey: str, now: datetime
) -> EvaluationRun:
    """The run a validator may upload logs for: one it holds. Another validator's run, and one that is not
    live any more (finished or lapsed), are NOT_RUN_OWNER: the validator does not hold it."""
    run = get_run(session, run_id)
    refusal = _why_not_live(run, validator_hotkey, now)
    if refusal is not None:
        raise NotRunOwner(refusal[1])
    return run


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


@writes
def heartbeat(
    session: Session,
    *,
    run_id: uuid.UUID,
    validator_hotkey: str,
    settings: Settings,
    metrics: Metrics | None = None,
    now: datetime | None = None,
) -> EvaluationRun:
    """Extend the lease of a live run, mark it RUNNING and record the validator's metrics."""
    now = now or utcnow()
    run = _owned_live_run(session, run_id, validator_hotkey, now)
    _change_status(session, run, RunStatus.RUNNING, now)
    run.last_heartbeat_at = now
    run.lease_expires_at = now + timedelta(seconds=settings.lease_seconds)
    if metrics is not None and metrics.service_versions is not None:
        run.service_versions = metrics.service_versions
    _touch_validator(session, validator_hotkey, metrics, now)
    session.add(run)
    events.record(
        session,
        events.RunEvent.HEARTBEAT,
        run_id=run.id,
        payload=events.Heartbeat(run.lease_expires_at),
        at=now,
    )
    session.flush()
    return run


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
        scored = update.status in ProblemStatus.finished()
        events.record(
            session,
            events.RunEvent.PROBLEM_SCORED if scored else events.RunEvent.PROBLEM_STARTED,
            run_id=run.id,
            payload=events.ProblemReported(update.problem_id, update.status, row.score),
            at=now,
        )
    _change_status(session, run, RunStatus.RUNNING, now)
    _touch_validator(session, validator_hotkey, None, now)
    session.add(run)
    session.flush()
    return saved


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
    run = _owned_live_run(session, run_id, validator_hotkey, now, lapsed=RunAlreadyComplete)
    if terminal_status == RunStatus.SUCCESS and validator_score is None:
        raise MissingScore("a SUCCESS completion needs validator_score")
    _check_score("validator_score", validator_score)
    _check_run_key(run, "results_s3_key", results_key)
    if run.race_id is not None:  # the race before the work item, as its transitions take them
        races.get_race(session, run.race_id, lock=True)
    locks.take(session, Lock.WORK_ITEM, run.work_item_id)
    work = session.exec(select(WorkItem).where(WorkItem.id == run.work_item_id).with_for_update()).one()
    version = session.get(AgentVersion, run.agent_version_id)
    if version is None:  # the foreign key forbids it
        raise AgentVersionNotFound(f"agent version {run.agent_version_id} of run {run.id} does not exist")

    run.status = terminal_status
    run.completed_at = now
    run.validator_score = validator_score
    run.score_components = score_components
    run.results_key = results_key or run.results_key
    run.failure_reason = failure_reason
    run.sandbox_metadata = sandbox_metadata
    failures, total = session.exec(
        select(
            func.sum(ProblemResult.inference_failure_count), func.sum(ProblemResult.inference_total)
        ).where(ProblemResult.run_id == run.id)
    ).one()
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
    _touch_validator(session, validator_hotkey, None, now)
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


def get_run(session: Session, run_id: uuid.UUID) -> EvaluationRun:
    run = session.get(EvaluationRun, run_id)
    if run is None:
        raise EvalRunNotFound(f"evaluation run {run_id} does not exist")
    return run


def runs_of_version(session: Session, version_id: uuid.UUID) -> list[EvaluationRun]:
    stmt = (
        select(EvaluationRun)
        .where(EvaluationRun.agent_version_id == version_id)
        .order_by(col(EvaluationRun.claimed_at), col(EvaluationRun.id))
    )
    return list(session.exec(stmt))


def runs_by_version_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[EvaluationRun]]:
    out: dict[uuid.UUID, list[EvaluationRun]] = {}
    stmt = (
        select(EvaluationRun)
        .where(col(EvaluationRun.agent_version_id).in_(list(ids)))
        .order_by(col(EvaluationRun.claimed_at), col(EvaluationRun.id))
    )
    for row in session.exec(stmt):
        out.setdefault(row.agent_version_id, []).append(row)
    return out


def liveness_by_run_ids(
    session: Session, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[datetime, datetime | None]]:
    """Each run's lease end and last heartbeat: the columns a heartbeat sets, read apart from the rest."""
    stmt = select(EvaluationRun.id, EvaluationRun.lease_expires_at, EvaluationRun.last_heartbeat_at).where(
        col(EvaluationRun.id).in_(list(ids))
    )
    return {run_id: (lease, beat) for run_id, lease, beat in session.exec(stmt)}


def results_by_run_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[ProblemResult]]:
    out: dict[uuid.UUID, list[ProblemResult]] = {}
    stmt = (
        select(ProblemResult)
        .where(col(ProblemResult.run_id).in_(list(ids)))
        .order_by(col(ProblemResult.run_id), col(ProblemResult.updated_at), col(ProblemResult.id))
    )
    for row in session.exec(stmt):
        out.setdefault(row.run_id, []).append(row)
    return out


@dataclass(frozen=True)
class RunView:
    """A run with the version and agent it evaluated."""

    run: EvaluationRun
    version: AgentVersion
    agent: Agent
    embargoed: bool = False  # its scores are not shown (races.run_scores_disclosed)


def run_view(session: Session, run_id: uuid.UUID) -> RunView:
    run = get_run(session, run_id)
    version = session.get(AgentVersion, run.agent_version_id)
    if version is None:  # the foreign key forbids it
        raise AgentVersionNotFound(f"agent version {run.agent_version_id} of run {run.id} does not exist")
    agent = session.get(Agent, version.agent_id)
    if agent is None:  # the foreign key forbids it
        raise AgentNotFound(f"agent {version.agent_id} of version {version.id} does not exist")
    return RunView(run, version, agent, run.id in races.embargoed_run_ids(session, [run]))


@dataclass(frozen=True)
class VersionRuns:
    runs: list[EvaluationRun]
    embargoed: frozenset[uuid.UUID]  # runs whose scores are not shown (races.run_scores_disclosed)


def version_runs(session: Session, version_id: uuid.UUID) -> VersionRuns:
    """Every run of a version, oldest claim first (AGENT_VERSION_NOT_FOUND if there is no such version)."""
    agents.get_version(session, version_id)
    runs = runs_of_version(session, version_id)
    return VersionRuns(runs, races.embargoed_run_ids(session, runs))


@dataclass(frozen=True)
class ProblemMatrix:
    """Per problem of the version's suite, what each run reported for it."""

    version: AgentVersion
    problems: list[Problem]
    runs: list[EvaluationRun]
    results: dict[uuid.UUID, list[ProblemResult]]  # by run id
    embargoed: frozenset[uuid.UUID]  # runs whose scores are not shown (races.run_scores_disclosed)


def problem_matrix(session: Session, version_id: uuid.UUID) -> ProblemMatrix:
    version = agents.get_version(session, version_id)
    problems = suites.problems_for_suite(session, version.suite_id)
    runs = runs_of_version(session, version_id)
    return ProblemMatrix(
        version,
        problems,
        runs,
        results_by_run_ids(session, [r.id for r in runs]),
        races.embargoed_run_ids(session, runs),
    )


def runs_by_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, EvaluationRun]:
    return {
        row.id: row for row in session.exec(select(EvaluationRun).where(col(EvaluationRun.id).in_(list(ids))))
    }


def results_by_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ProblemResult]:
    return {
        row.id: row for row in session.exec(select(ProblemResult).where(col(ProblemResult.id).in_(list(ids))))
    }
