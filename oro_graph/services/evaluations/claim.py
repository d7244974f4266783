"""Claiming work: the oldest open work item this validator has not run, race work first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.errors import (
    AtCapacity,
)
from oro_graph.models import (
    ACTIVE_RUN_STATUSES,
    Agent,
    AgentVersion,
    EvaluationRun,
    RunStatus,
    WorkItem,
    utcnow,
)
from oro_graph.services import credentials, events
from oro_graph.services.evaluations.lease import (
    Metrics,
    _record_metrics,
    _settle_version_state,
    _validator_state,
    expire_leases,
)
from oro_graph.settings import Settings
from oro_graph.storage import Storage


@dataclass(frozen=True)
class Claim:
    run: EvaluationRun
    code_download_url: str
    code_sha256: str


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
            col(EvaluationRun.status).in_(ACTIVE_RUN_STATUSES),
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
    assert version is not None
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
        payload={"validator_hotkey": validator_hotkey, "lease_expires_at": run.lease_expires_at.isoformat()},
        at=now,
    )
    url = storage.download_url(
        version.code_key, seconds=min(settings.signed_url_seconds, settings.lease_seconds)
    )
    return Claim(run=run, code_download_url=url.url, code_sha256=version.code_sha256)
