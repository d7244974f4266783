"""What a signed caller sees of itself: a miner's agents, cooldown, credentials and failures, or a
validator's current lease and recent outcomes. Each reader is one read-only transaction and reuses
the rules of the REST miner and validator paths (``agents.miner_overview``'s cooldown,
``credentials.miner_inference``'s readiness), so both surfaces give one answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    RaceSelection,
    Role,
    RunStatus,
    utcnow,
)
from oro_graph.services import agents, credentials, races, registry
from oro_graph.settings import Settings

MAX_RECENT = 50
FAILED_STATUSES = (*RunStatus.failed(), RunStatus.STALE)  # a reported failure, or a lapsed lease


@dataclass(frozen=True)
class MinerSelf:
    """A miner as it sees itself (the REST ``/v1/miner/*`` reads in one transaction)."""

    hotkey: Hotkey
    agents: list[Agent]
    versions: dict[uuid.UUID, list[AgentVersion]]  # per agent, first version first; unreleased ones too
    next_allowed_at: datetime | None
    can_submit: bool
    inference: credentials.MinerInference
    failed_runs: list[EvaluationRun]  # latest first
    race_selection: RaceSelection | None  # the version it pinned to race with, if any


@dataclass(frozen=True)
class ValidatorSelf:
    """A validator as it sees itself: its live lease (if any) and its latest runs."""

    hotkey: Hotkey
    current_run: EvaluationRun | None
    recent_runs: list[EvaluationRun]  # latest claim first


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_RECENT))


def miner_self(
    session: Session, hotkey: str, *, settings: Settings, failures: int = 10, now: datetime | None = None
) -> MinerSelf:
    """The signed miner's own view; FORBIDDEN unless ``hotkey`` is a registered, unbanned miner.

    ``can_submit`` and ``next_allowed_at`` are REST submit's cooldown (``agents.miner_overview``);
    ``failed_runs`` are its versions' latest FAILED, TIMED_OUT or STALE runs with their reasons."""
    row = registry.require_role(session, hotkey, Role.MINER)
    overview = agents.miner_overview(session, hotkey, settings=settings, now=now)
    versions = agents.versions_by_agent_ids(session, [a.id for a in overview.agents])
    failed = session.exec(
        select(EvaluationRun)
        .join(AgentVersion, col(AgentVersion.id) == EvaluationRun.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(Agent.miner_hotkey == hotkey, col(EvaluationRun.status).in_(FAILED_STATUSES))
        .order_by(col(EvaluationRun.claimed_at).desc(), col(EvaluationRun.id))
        .limit(_limit(failures))
    )
    return MinerSelf(
        hotkey=row,
        agents=overview.agents,
        versions=versions,
        next_allowed_at=overview.next_allowed_at,
        can_submit=overview.can_submit,
        inference=credentials.miner_inference(session, hotkey=hotkey, settings=settings),
        failed_runs=list(failed),
        race_selection=races.selection_of(session, hotkey),
    )


def validator_self(
    session: Session, hotkey: str, *, recent: int = 10, now: datetime | None = None
) -> ValidatorSelf:
    """The signed validator's own view; FORBIDDEN unless it holds a permit and is not banned.

    ``current_run`` is its latest claim whose lease has not lapsed (as ``validators.list_validators``
    decides EVALUATING)."""
    row = registry.require_role(session, hotkey, Role.VALIDATOR)
    runs = EvaluationRun.validator_hotkey == hotkey
    current = session.exec(
        select(EvaluationRun)
        .where(
            runs,
            col(EvaluationRun.status).in_(RunStatus.live()),
            col(EvaluationRun.lease_expires_at) > (now or utcnow()),
        )
        .order_by(col(EvaluationRun.claimed_at).desc())
        .limit(1)
    ).first()
    recent_runs = session.exec(
        select(EvaluationRun)
        .where(runs)
        .order_by(col(EvaluationRun.claimed_at).desc(), col(EvaluationRun.id))
        .limit(_limit(recent))
    )
    return ValidatorSelf(hotkey=row, current_run=current, recent_runs=list(recent_runs))


def viewer(
    session: Session, hotkey: str, *, settings: Settings, limit: int = 10
) -> MinerSelf | ValidatorSelf:
    """The signer as a miner or a validator, by its registered role (FORBIDDEN if unregistered or banned)."""
    row = session.get(Hotkey, hotkey)
    if row is not None and row.role == Role.VALIDATOR:
        return validator_self(session, hotkey, recent=limit)
    return miner_self(session, hotkey, settings=settings, failures=limit)
