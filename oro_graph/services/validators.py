"""Validators as the public sees them, and the queue of running and pending evaluations."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Problem,
    ProblemResult,
    ProblemStatus,
    Role,
    RunStatus,
    ValidatorState,
    WorkItem,
    utcnow,
)
from oro_graph.services import suites


@dataclass(frozen=True)
class ValidatorView:
    hotkey: Hotkey
    state: ValidatorState | None
    current_run: EvaluationRun | None
    current_version: AgentVersion | None
    current_agent: Agent | None

    @property
    def status(self) -> str:
        return "evaluating" if self.current_run is not None else "available"


def list_validators(session: Session, hotkeys: list[str] | None = None) -> list[ValidatorView]:
    stmt = select(Hotkey).where(Hotkey.role == Role.VALIDATOR).order_by(col(Hotkey.ss58))
    if hotkeys is not None:
        stmt = stmt.where(col(Hotkey.ss58).in_(hotkeys))
    keys = list(session.exec(stmt))
    ss58 = [k.ss58 for k in keys]
    states = {
        s.hotkey: s for s in session.exec(select(ValidatorState).where(col(ValidatorState.hotkey).in_(ss58)))
    }
    current: dict[str, tuple[EvaluationRun, AgentVersion, Agent]] = {}
    rows = session.exec(
        select(EvaluationRun, AgentVersion, Agent)
        .join(AgentVersion, col(AgentVersion.id) == EvaluationRun.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(
            col(EvaluationRun.validator_hotkey).in_(ss58),
            col(EvaluationRun.status).in_(RunStatus.live()),
            col(EvaluationRun.lease_expires_at) > utcnow(),  # a lapsed lease is not evaluating, swept or not
        )
        .order_by(col(EvaluationRun.claimed_at))
    )
    for run, version, agent in rows:
        current[run.validator_hotkey] = (run, version, agent)
    out = []
    for key in keys:
        run, version, agent = current.get(key.ss58, (None, None, None))
        out.append(ValidatorView(key, states.get(key.ss58), run, version, agent))
    return out


@dataclass(frozen=True)
class RunningView:
    run: EvaluationRun
    version: AgentVersion
    agent: Agent
    progress_percent: float


def running_evaluations(session: Session) -> list[RunningView]:
    rows = session.exec(
        select(EvaluationRun, AgentVersion, Agent)
        .join(AgentVersion, col(AgentVersion.id) == EvaluationRun.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(col(EvaluationRun.status).in_(RunStatus.live()))
        .order_by(col(EvaluationRun.claimed_at), col(EvaluationRun.id))
    ).all()
    progress = progress_by_run_ids(session, [run.id for run, _, _ in rows])
    return [RunningView(run, version, agent, progress.get(run.id, 0.0)) for run, version, agent in rows]


@dataclass(frozen=True)
class PendingView:
    work_item: WorkItem
    version: AgentVersion
    agent: Agent

    @property
    def remaining(self) -> int:
        return successes_remaining(self.work_item)


def successes_remaining(work: WorkItem) -> int:
    """Successful runs a work item still needs (the queue's ``remaining``, on both surfaces)."""
    return max(0, work.required_successes - work.included_successes)


@dataclass(frozen=True)
class PendingPage:
    items: list[PendingView]
    total_pending: int
    total_runs_needed: int
    total_runs_active: int
    projected_completion_at: datetime | None


def pending_evaluations(
    session: Session, *, suite_id: int | None = None, limit: int = 100, offset: int = 0
) -> PendingPage:
    """Open work items, oldest first, with totals over all of them (not just the page)."""
    if suite_id is not None:
        suites.get_suite(session, suite_id)
    open_items = col(WorkItem.is_closed).is_(False)
    where = [open_items] + ([WorkItem.suite_id == suite_id] if suite_id is not None else [])
    total, needed, active = session.exec(
        select(
            func.count(),
            func.coalesce(func.sum(WorkItem.required_successes - WorkItem.included_successes), 0),
            func.coalesce(func.sum(WorkItem.active_runs), 0),
        ).where(*where)
    ).one()
    rows = session.exec(
        select(WorkItem, AgentVersion, Agent)
        .join(AgentVersion, col(AgentVersion.id) == WorkItem.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(*where)
        .order_by(col(WorkItem.created_at), col(WorkItem.id))
        .offset(max(0, offset))
        .limit(max(1, min(limit, 500)))
    ).all()
    items = [PendingView(w, v, a) for w, v, a in rows]
    return PendingPage(items, total, int(needed), int(active), None)


def validator_hotkeys_by_ss58(session: Session, hotkeys: Iterable[str]) -> dict[str, Hotkey]:
    """The hotkey rows of validators alone, without their state (what a run's validator shows first)."""
    stmt = select(Hotkey).where(Hotkey.role == Role.VALIDATOR, col(Hotkey.ss58).in_(list(hotkeys)))
    return {row.ss58: row for row in session.exec(stmt)}


def validators_by_hotkeys(session: Session, hotkeys: Iterable[str]) -> dict[str, ValidatorView]:
    return {view.hotkey.ss58: view for view in list_validators(session, list(hotkeys))}


def progress_by_run_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, float]:
    """The share of its suite's problems each run has finished, in percent (as ``running_evaluations``)."""
    run_ids = list(ids)
    suite_of = dict(
        session.exec(
            select(EvaluationRun.id, EvaluationRun.suite_id).where(col(EvaluationRun.id).in_(run_ids))
        ).all()
    )
    sizes = dict(
        session.exec(
            select(Problem.suite_id, func.count())
            .where(col(Problem.suite_id).in_(set(suite_of.values())))
            .group_by(Problem.suite_id)
        ).all()
    )
    done = dict(
        session.exec(
            select(ProblemResult.run_id, func.count())
            .where(
                col(ProblemResult.run_id).in_(run_ids),
                col(ProblemResult.status).in_(ProblemStatus.finished()),
            )
            .group_by(ProblemResult.run_id)
        ).all()
    )
    out = {}
    for run_id, suite_id in suite_of.items():
        size = sizes.get(suite_id, 0)
        out[run_id] = min(round(100.0 * done.get(run_id, 0) / size, 1), 100.0) if size else 0.0
    return out
