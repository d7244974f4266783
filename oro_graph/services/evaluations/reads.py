"""Reading runs and their results: by id, by version, and the per-problem matrix of a version."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from oro_graph.errors import (
    AgentNotFound,
    AgentVersionNotFound,
    EvalRunNotFound,
)
from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Problem,
    ProblemResult,
)
from oro_graph.services import agents, races, suites


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
