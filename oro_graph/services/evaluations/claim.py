"""Claiming work: the oldest open work item this validator has not run, race work first.

A claim is one short transaction (``../shared/CONTRACTS.md`` section 2) of a few Core statements:
touch the validator's state row (which locks it and reads the signer's permit, its active runs and
whether any lease lapsed), then ``INSERT INTO evaluationrun ... SELECT ... FROM workitem ... FOR
UPDATE SKIP LOCKED`` (race work first), the work item's count and the event. SQLite has no row locks
(its writers are serialised by ``BEGIN IMMEDIATE``): the same statements run there without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, literal
from sqlalchemy import select as sa_select
from sqlalchemy import update as sql_update
from sqlmodel import Session, col

from oro_graph.db import writes
from oro_graph.errors import AtCapacity
from oro_graph.models import (
    Agent,
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    RunStatus,
    ValidatorState,
    WorkItem,
    utcnow,
)
from oro_graph.models.base import new_id
from oro_graph.services import credentials, events, locks
from oro_graph.services.evaluations.lease import Metrics, _touch_validator, expire_leases
from oro_graph.services.locks import Lock
from oro_graph.settings import Settings
from oro_graph.storage import Storage

_RUNS = EvaluationRun.__table__
_WORK = WorkItem.__table__
_VERSIONS = AgentVersion.__table__
_STATES = ValidatorState.__table__


@dataclass(frozen=True)
class Claim:
    run: EvaluationRun
    code_download_url: str
    code_sha256: str
    miner_hotkey: str  # whose credential mints the run's inference token (after the claim commits)


class _LapsedLeases(Exception):
    """Some lease lapsed and was not swept yet: sweep it (its own transaction), then claim again."""


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

    FORBIDDEN unless the signer holds a validator permit, checked in the claim's transaction. The work
    item is taken with ``FOR UPDATE SKIP LOCKED`` and re-checked under the lock, so no item is ever
    leased beyond its required successes, however many processes claim at once.
    """
    now = now or utcnow()
    try:
        return _claim(session, validator_hotkey, settings, storage, metrics, now, sweep=True)
    except _LapsedLeases:
        session.rollback()
    sweep_lapsed_leases(session, now)
    return _claim(session, validator_hotkey, settings, storage, metrics, now, sweep=False)


def sweep_lapsed_leases(session: Session, now: datetime) -> None:
    """Mark runs whose lease lapsed STALE and give their slots back, in a transaction of its own.

    The one exception to "one service call, one transaction", and why: a crashed validator must
    never block a version, so the claim that finds a lapsed lease sweeps it first; the sweep is
    committed on its own because it stands whatever the claim then answers (AT_CAPACITY, no work),
    and the claim runs in a second transaction that starts after it.
    """
    expire_leases(session, now=now)
    session.commit()


def _claim(
    session: Session,
    validator_hotkey: str,
    settings: Settings,
    storage: Storage,
    metrics: Metrics | None,
    now: datetime,
    *,
    sweep: bool,
) -> Claim | None:
    seen = _touch_claimer(session, validator_hotkey, metrics, now)
    if sweep and seen["lapsed"]:
        raise _LapsedLeases
    if seen["active"] >= settings.max_active_runs_per_validator:
        # Counted again: the touch's count may predate a completion whose lock the touch waited for.
        _check_capacity(session.execute(sa_select(_active_runs(validator_hotkey))).scalar_one(), settings)
    run = _insert_run(session, validator_hotkey, settings, metrics, now)
    if run is None:
        return None
    # The work item's new slot, and the version's code (and state) read in the same statement.
    counted = session.execute(_COUNT_RUN, {"work_id": run.work_item_id}).one()
    if counted.state == AgentVersionState.QUEUED:  # its first run: the version is being evaluated
        session.execute(_VERSION_RUNNING, {"version_id": run.agent_version_id})
    session.execute(_CLAIMED_AT, {"signer": validator_hotkey, "now": now})
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
        counted.code_key, seconds=min(settings.signed_url_seconds, settings.lease_seconds)
    )
    return Claim(
        run=run, code_download_url=url.url, code_sha256=counted.code_sha256, miner_hotkey=counted.miner_hotkey
    )


def _version_columns(version_id: Any, *names: str) -> list[Any]:
    return [
        sa_select(_VERSIONS.c[name]).where(_VERSIONS.c.id == version_id).scalar_subquery().label(name)
        for name in names
    ]


# The claim's statements are built once (bound parameters), not per call: building and hashing the
# constructs cost more Python than executing them.
_COUNT_RUN = (
    sql_update(_WORK)
    .where(_WORK.c.id == bindparam("work_id", type_=_WORK.c.id.type))
    .values(active_runs=_WORK.c.active_runs + 1)
    .returning(
        *_version_columns(_WORK.c.agent_version_id, "state", "code_key", "code_sha256"),
        # Nested, not joined: SQLite names RETURNING's columns without their table.
        sa_select(col(Agent.miner_hotkey))
        .where(
            col(Agent.id)
            == sa_select(_VERSIONS.c.agent_id)
            .where(_VERSIONS.c.id == _WORK.c.agent_version_id)
            .correlate_except(_VERSIONS)
            .scalar_subquery()
        )
        .scalar_subquery()
        .label("miner_hotkey"),
    )
)
_VERSION_RUNNING = (
    sql_update(_VERSIONS)
    .where(_VERSIONS.c.id == bindparam("version_id", type_=_VERSIONS.c.id.type))
    .values(state=AgentVersionState.RUNNING)
)
_CLAIMED_AT = (
    sql_update(_STATES)
    .where(_STATES.c.hotkey == bindparam("signer", type_=_STATES.c.hotkey.type))
    .values(last_claim_at=bindparam("now", type_=_STATES.c.last_claim_at.type))
)


def _active_runs(hotkey: Any) -> Any:
    """SQL: how many runs the validator holds now."""
    return (
        sa_select(func.count())
        .select_from(_RUNS)
        .where(_RUNS.c.validator_hotkey == hotkey, _RUNS.c.status.in_(RunStatus.live()))
        .scalar_subquery()
    )


def _check_capacity(active: int, settings: Settings) -> None:
    if active >= settings.max_active_runs_per_validator:
        raise AtCapacity(
            f"validator holds {active} active run(s); the limit is "
            f"{settings.max_active_runs_per_validator}. Complete or let a run expire before claiming again"
        )


def _touch_claimer(session: Session, hotkey: str, metrics: Metrics | None, now: datetime) -> Any:
    """``_touch_validator`` (which locks the validator's state row: claims of one validator queue
    here), reading in the same statement how many runs it holds and whether any lease has lapsed.

    On PostgreSQL the columns read here come from the statement's snapshot, taken before it waited for
    the row lock: a claim of the same validator that committed meanwhile is not in the count. So the
    count only decides when to look again (``_claim``), and the run's INSERT, a statement that starts
    once the lock is held, checks the capacity itself (``_candidates``).
    """
    return _touch_validator(session, hotkey, metrics, now, *_CLAIMER_COLUMNS)


_CLAIMER_COLUMNS = (
    _active_runs(bindparam("signer", type_=_STATES.c.hotkey.type)).label("active"),
    exists()
    .where(
        _RUNS.c.status.in_(RunStatus.live()),
        _RUNS.c.lease_expires_at < bindparam("now", type_=_RUNS.c.lease_expires_at.type),
    )
    .label("lapsed"),
)


@dataclass(frozen=True)
class _ClaimStatements:
    """A claim's search for work, built once per shape of the settings (``_statements``). Parameters:
    ``signer``, ``new_id``, ``now``, ``lease_expires_at``, ``service_versions``."""

    skipping: Any  # INSERT INTO evaluationrun ... SELECT ... FOR UPDATE SKIP LOCKED
    waiting: Any  # the same, waiting for the lock
    open_work: Any  # (the validator's active runs, whether any candidate is open, locked or not)


_BUILT: dict[tuple[Any, ...], _ClaimStatements] = {}


def _statements(settings: Settings) -> _ClaimStatements:
    providers = credentials.mintable_providers(settings) if settings.require_inference_credential else None
    key = (settings.max_active_runs_per_validator, None if providers is None else tuple(sorted(providers)))
    built = _BUILT.get(key)
    if built is None:  # two threads may both build it: the same statements
        candidates = _candidates(settings)
        active = _active_runs(_SIGNER).label("active")
        built = _BUILT[key] = _ClaimStatements(
            skipping=_insert_from(candidates.with_for_update(of=_WORK, skip_locked=True)),
            waiting=_insert_from(candidates.with_for_update(of=_WORK)),
            open_work=sa_select(active, candidates.exists().label("open")),
        )
    return built


_SIGNER = bindparam("signer", type_=_RUNS.c.validator_hotkey.type)


def _candidates(settings: Settings) -> Any:
    """Open work items with a free slot that the signer has not run: race work first, then the oldest."""
    already_ran = exists().where(
        _RUNS.c.work_item_id == _WORK.c.id,
        _RUNS.c.validator_hotkey == _SIGNER,
        _RUNS.c.status != RunStatus.CANCELLED.value,  # released runs count as no attempt
    )
    conditions = [
        _WORK.c.is_closed.is_(False),
        _WORK.c.included_successes + _WORK.c.active_runs < _WORK.c.required_successes,
        _WORK.c.max_attempts.is_(None)  # race work: X of at most Y finished runs
        | (_WORK.c.included_successes + _WORK.c.failed_attempts + _WORK.c.active_runs < _WORK.c.max_attempts),
        ~already_ran,
        _active_runs(_SIGNER) < settings.max_active_runs_per_validator,  # see _touch_claimer
    ]
    if settings.require_inference_credential:
        # A version whose miner has no usable credential waits: a validator cannot run it without a token.
        conditions.append(
            exists()
            .where(AgentVersion.id == _WORK.c.agent_version_id, Agent.id == AgentVersion.agent_id)
            .where(credentials.usable_clause(Agent.miner_hotkey, settings))
        )
    return (
        sa_select(_WORK.c.id)
        .where(*conditions)
        .order_by(_WORK.c.race_id.is_(None), _WORK.c.created_at, _WORK.c.id)
        .limit(1)
    )


def _insert_run(
    session: Session,
    validator_hotkey: str,
    settings: Settings,
    metrics: Metrics | None,
    now: datetime,
    attempts: int = 5,
) -> EvaluationRun | None:
    """Create the run on the first candidate work item, in one ``INSERT ... SELECT ... FOR UPDATE SKIP
    LOCKED``, so concurrent claimers spread over different items.

    If every open item was locked by someone else, wait for the oldest one instead: the lock holder
    may release it with slots to spare, and a validator should not be told "no work" while there is.
    """
    statements = _statements(settings)
    params = {
        "signer": validator_hotkey,
        "now": now,
        "lease_expires_at": now + timedelta(seconds=settings.lease_seconds),
        "service_versions": metrics.service_versions if metrics else None,
    }

    def insert(statement: Any) -> EvaluationRun | None:
        row = session.execute(statement, {**params, "new_id": new_id()}).first()
        return None if row is None else EvaluationRun(**row._mapping)

    locks.take(session, Lock.WORK_ITEM)
    run = insert(statements.skipping)
    for _ in range(attempts):
        if run is not None:
            return run
        # Nothing for this validator now: it is at capacity, or nothing is open at all, locked or not.
        found = session.execute(statements.open_work, params).one()
        _check_capacity(found.active, settings)
        if not found.open:
            return None
        # Blocking lock; PostgreSQL re-checks the WHERE clause once the holder commits. A row that
        # fails the re-check stays locked to the end of the transaction: in a savepoint, rolled back
        # when nothing came of it, a fruitless wait gives its work item back at once, rather than
        # holding it (and blocking that item's completions and claims) while this claim looks again.
        with session.begin_nested() as attempt:
            run = insert(statements.waiting)
            if run is None:
                attempt.rollback()
    return run


def _insert_from(chosen: Any) -> Any:
    """``INSERT INTO evaluationrun ... SELECT`` from the work item ``chosen`` selects (locking it)."""
    values: dict[str, Any] = {
        "id": bindparam("new_id", type_=_RUNS.c.id.type),
        "validator_hotkey": _SIGNER,
        "status": literal(RunStatus.CLAIMED.value, _RUNS.c.status.type),
        "claimed_at": bindparam("now", type_=_RUNS.c.claimed_at.type),
        "lease_expires_at": bindparam("lease_expires_at", type_=_RUNS.c.lease_expires_at.type),
        "service_versions": bindparam("service_versions", type_=_RUNS.c.service_versions.type),
        "is_included": literal(False, _RUNS.c.is_included.type),
    }
    source = chosen.with_only_columns(
        *[value.label(name) for name, value in values.items()],
        _WORK.c.id.label("work_item_id"),
        _WORK.c.agent_version_id,
        _WORK.c.suite_id,
        _WORK.c.race_id,
    )
    names = [*values, "work_item_id", "agent_version_id", "suite_id", "race_id"]
    return _RUNS.insert().from_select(names, source).returning(*_RUNS.c)
