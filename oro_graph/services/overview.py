"""What the landing page says about a server: its current suite and how much data it holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from oro_graph.models import (
    Agent,
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    Hotkey,
    Problem,
    Role,
    RunStatus,
    Suite,
    TopAgentHistory,
)
from oro_graph.services import suites


@dataclass(frozen=True)
class SuiteSummary:
    id: int
    version: int
    problems: int
    eligible_versions: int
    top_agent: str | None  # the reigning top agent's name, if any


@dataclass(frozen=True)
class Overview:
    suite: SuiteSummary | None
    counts: dict[str, int] = field(default_factory=dict)
    # The current race in words ("race 3, qualifying open, 5 qualifiers"), or None before the first.
    race: str | None = None


def overview(session: Session) -> Overview:
    """The active suite (or none) and the server's counts: a handful of COUNT statements."""
    counts = {
        "suites": session.exec(select(func.count()).select_from(Suite)).one(),
        "miners": session.exec(select(func.count(func.distinct(Agent.miner_hotkey)))).one(),
        "validators": session.exec(
            select(func.count()).select_from(Hotkey).where(Hotkey.role == Role.VALIDATOR.value)
        ).one(),
        "agents": session.exec(select(func.count()).select_from(Agent)).one(),
        "agent_versions": session.exec(select(func.count()).select_from(AgentVersion)).one(),
        "runs": session.exec(select(func.count()).select_from(EvaluationRun)).one(),
        "successful_runs": session.exec(
            select(func.count())
            .select_from(EvaluationRun)
            .where(EvaluationRun.status == RunStatus.SUCCESS.value)
        ).one(),
    }
    return Overview(
        suite=_suite_summary(session),
        counts={k: int(v) for k, v in counts.items()},
        race=_race_summary(session),
    )


def _race_summary(session: Session) -> str | None:
    from oro_graph.services import races

    view = races.current_race(session)
    if view is None:
        return None
    race = view.race
    status = race.status.replace("_", " ").lower()
    winner = f", won by {view.winner_agent_name}" if view.winner_agent_name else ""
    return f"race {race.race_number}, {status}, {race.qualifier_count} qualifiers{winner}"


def _suite_summary(session: Session) -> SuiteSummary | None:
    suite = suites.current_suite_or_none(session)
    if suite is None or suite.id is None:
        return None
    problems = session.exec(
        select(func.count()).select_from(Problem).where(Problem.suite_id == suite.id)
    ).one()
    eligible = session.exec(
        select(func.count())
        .select_from(AgentVersion)
        .where(AgentVersion.suite_id == suite.id, AgentVersion.state == AgentVersionState.ELIGIBLE.value)
    ).one()
    top = session.exec(
        select(Agent.name)
        .join(AgentVersion, col(AgentVersion.agent_id) == Agent.id)
        .join(TopAgentHistory, col(TopAgentHistory.agent_version_id) == AgentVersion.id)
        .where(TopAgentHistory.suite_id == suite.id, col(TopAgentHistory.replaced_at).is_(None))
        .order_by(col(TopAgentHistory.top_at).desc())
        .limit(1)
    ).first()
    return SuiteSummary(suite.id, suite.version, int(problems), int(eligible), top)
