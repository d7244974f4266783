"""Holding a run: the lease a claim gives, kept by heartbeats, swept when it lapses, given back on release.

Lock order (PostgreSQL), the same in every service so no two transactions wait on each other
in a cycle (``locks.Lock`` ranks them): the four validator calls take the signer's VALIDATOR_STATE row
first (``_touch_validator``, their first statement), then the run, then the work item (a claim: SKIP
LOCKED first), then the race and the suite's board. Before, a heartbeat, a progress report or a
completion touched the validator's row last: a completion holding a work item then waited for the
row a claim of the same validator held while that claim waited for the work item, a deadlock.
Lease expiry and release take no validator row: run -> work item.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, bindparam
from sqlalchemy import select as sa_select
from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from oro_graph.db import insert_if_absent, writes
from oro_graph.errors import (
    EvalRunNotFound,
    LeaseExpired,
    NotRunOwner,
    OroError,
    RunAlreadyComplete,
)
from oro_graph.models import (
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    Role,
    RunStatus,
    ValidatorState,
    WorkItem,
    utcnow,
)
from oro_graph.services import events, locks, registry
from oro_graph.services.evaluations.reads import get_run
from oro_graph.services.locks import Lock
from oro_graph.services.scoring import waiting_state
from oro_graph.settings import Settings


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


def _touch_validator(
    session: Session, hotkey: str, metrics: Metrics | None, now: datetime, *columns: Any
) -> RowMapping:
    """The first statement of every validator call: lock the signer's state row (the lock order starts
    with it), record it as seen (and the metrics it reported) and read its registry row, plus
    ``columns`` (module constants, whose bound parameters may be ``signer`` and ``now``).

    FORBIDDEN unless the signer holds a validator permit, so the permit is checked in the transaction
    of the work it guards. The row is made (race-free) on a validator's first call."""
    locks.take(session, Lock.VALIDATOR_STATE, hotkey)
    values = _seen_values(metrics, now)
    touch = _touch_statement(tuple(values), columns)
    params = {"signer": hotkey, "now": now, **{f"new_{name}": value for name, value in values.items()}}
    row = session.execute(touch, params).first()
    if row is None:
        insert_if_absent(session, ValidatorState, hotkey=hotkey)
        row = session.execute(touch, params).one()
    refusal = registry.role_refusal(hotkey, Role.VALIDATOR, registry.registry_row(row._mapping))
    if refusal is not None:
        raise refusal
    return row._mapping


_STATES = ValidatorState.__table__


@functools.lru_cache(maxsize=64)  # one per set of reported metrics (and the claim's extra columns)
def _touch_statement(names: tuple[str, ...], columns: tuple[Any, ...]) -> Any:
    """The touch of ``_touch_validator``, built once per set of columns it sets: bound parameters
    (``signer``, ``new_<column>``), so a call builds no SQL construct."""
    hotkey = bindparam("signer", type_=_STATES.c.hotkey.type)
    return (
        sql_update(_STATES)
        .where(_STATES.c.hotkey == hotkey)
        .values({name: bindparam(f"new_{name}", type_=_STATES.c[name].type) for name in names})
        .returning(*registry.role_columns(hotkey), *columns)
    )


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


_RUNS = EvaluationRun.__table__


def _held_run(
    session: Session,
    run_id: uuid.UUID,
    validator_hotkey: str,
    now: datetime,
    *,
    lapsed: type[OroError] = LeaseExpired,
) -> EvaluationRun:
    """The run, locked, if the signer holds its live lease; else the error that says why:
    EVAL_RUN_NOT_FOUND, then why the lease is not the signer's. (The permit was checked by the call's
    first statement, ``_touch_validator``.)

    A lapsed lease is ``lapsed``: LEASE_EXPIRED for a heartbeat; for a progress report or a completion
    the run is over (RUN_ALREADY_COMPLETE), which is what tells a validator's retry queue to drop the
    call rather than retry it. The run is a detached EvaluationRun built from the row, which only
    ``_set_run`` changes.
    """
    locks.take(session, Lock.RUN, run_id)
    row = session.execute(_LOCK_RUN, {"run_id": run_id}).first()
    if row is None:
        raise EvalRunNotFound(f"evaluation run {run_id} does not exist")
    run = EvaluationRun(**row._mapping)
    why = _why_not_live(run, validator_hotkey, now)
    if why is not None:
        reason, detail = why
        raise {"owner": NotRunOwner, "finished": RunAlreadyComplete, "lapsed": lapsed}[reason](detail)
    return run


_LOCK_RUN = (
    sa_select(*_RUNS.c).where(_RUNS.c.id == bindparam("run_id", type_=_RUNS.c.id.type)).with_for_update()
)


def _status_values(session: Session, run: EvaluationRun, status: RunStatus, now: datetime) -> dict[str, Any]:
    """The run's new status for ``_set_run``, with its STATUS_CHANGED event; nothing if it has it already
    (so an UPDATE that does not change the status does not name the column, and answers that read it
    stay cached)."""
    if run.status == status:
        return {}
    events.record(
        session,
        events.RunEvent.STATUS_CHANGED,
        run_id=run.id,
        payload=events.StatusChanged(RunStatus(run.status), status),
        at=now,
    )
    return {"status": status}


def _set_run(session: Session, run: EvaluationRun, values: dict[str, Any]) -> None:
    """One UPDATE of the columns in ``values`` (and only those) of a run from ``_held_run``; none if empty."""
    if not values:
        return
    _update_by_id(session, _RUNS, run.id, values)
    for name, value in values.items():
        setattr(run, name, value)


def _update_by_id(session: Session, table: Any, row_id: Any, values: dict[str, Any]) -> None:
    """``UPDATE table SET <values> WHERE id = row_id``, the statement built once per set of columns."""
    params = {f"new_{name}": value for name, value in values.items()}
    session.execute(_update_statement(table, tuple(values)), {"row_id": row_id, **params})


@functools.lru_cache(maxsize=64)
def _update_statement(table: Any, names: tuple[str, ...]) -> Any:
    return (
        sql_update(table)
        .where(table.c.id == bindparam("row_id", type_=table.c.id.type))
        .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in names})
    )


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
    """Extend the lease of a live run, mark it RUNNING and record the validator's metrics.

    Core statements, no ORM row: touch the validator (which checks its permit); one UPDATE extends
    the lease if the run is this validator's and live; record the event. When that UPDATE finds no
    such run, ``_held_run`` says why (or, if it became live meanwhile, the lease is extended after all).
    """
    now = now or utcnow()
    values: dict[str, Any] = {
        "last_heartbeat_at": now,
        "lease_expires_at": now + timedelta(seconds=settings.lease_seconds),
    }
    if metrics is not None and metrics.service_versions is not None:
        values["service_versions"] = metrics.service_versions
    _touch_validator(session, validator_hotkey, metrics, now)
    run = _extend_live_lease(session, run_id, validator_hotkey, now, values)
    if run is None:
        run = _held_run(session, run_id, validator_hotkey, now)
        _set_run(session, run, values)
    _set_run(session, run, _status_values(session, run, RunStatus.RUNNING, now))
    events.record(
        session,
        events.RunEvent.HEARTBEAT,
        run_id=run.id,
        payload=events.Heartbeat(run.lease_expires_at),
        at=now,
    )
    return run


def _extend_live_lease(
    session: Session, run_id: uuid.UUID, validator_hotkey: str, now: datetime, values: dict[str, Any]
) -> EvaluationRun | None:
    """Set ``values`` on the run if this validator holds its live lease (``_why_not_live`` would say
    nothing), in one UPDATE; None if the run is not this validator's live run."""
    locks.take(session, Lock.RUN, run_id)
    params = {"run_id": run_id, "signer": validator_hotkey, "now": now}
    params.update({f"new_{name}": value for name, value in values.items()})
    row = session.execute(_extend_statement(tuple(values)), params).first()
    return None if row is None else EvaluationRun(**row._mapping)


@functools.lru_cache(maxsize=8)  # one per set of columns a heartbeat sets
def _extend_statement(names: tuple[str, ...]) -> Any:
    return (
        sql_update(_RUNS)
        .where(
            _RUNS.c.id == bindparam("run_id", type_=_RUNS.c.id.type),
            _RUNS.c.validator_hotkey == bindparam("signer", type_=_RUNS.c.validator_hotkey.type),
            _RUNS.c.status.in_(RunStatus.live()),
            _RUNS.c.lease_expires_at > bindparam("now", type_=_RUNS.c.lease_expires_at.type),
        )
        .values({name: bindparam(f"new_{name}", type_=_RUNS.c[name].type) for name in names})
        .returning(*_RUNS.c)
    )
