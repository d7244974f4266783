"""The leaderboard of eligible versions and the top agent that earns emissions.

The board's rows, order and statements live in ``services.boardrows``, its keyset pages for the graph
in ``services.boardpages``; their names are importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, bindparam, func, text
from sqlmodel import Session, col, select

from oro_graph.models import Agent, AgentVersion, AgentVersionState, Suite, TopAgentHistory, utcnow
from oro_graph.services import events, locks, suites
from oro_graph.services.boardpages import (
    HISTORY_KEY,
    board_count,
    board_rows_by_version_ids,
    board_window,
    top_history_count,
    top_history_window,
)
from oro_graph.services.boardrows import (
    BOARD_KEY,
    LIKE_ESCAPE,
    BoardRow,
    board_order,
    board_rows,
    like_literal,
    top_reigns_by_version,
)
from oro_graph.services.boardrows import ahead_of as _ahead_of
from oro_graph.services.boardrows import board_stmt as _board_stmt
from oro_graph.services.boardrows import eligible_as_of as _eligible_as_of
from oro_graph.services.boardrows import ranked_board as _ranked_board  # noqa: F401 (services.filters reads it here)
from oro_graph.services.locks import Lock
from oro_graph.services.pages import count
from oro_graph.settings import Settings

__all__ = [
    "BOARD_KEY",
    "BoardPage",
    "BoardRow",
    "HISTORY_KEY",
    "LIKE_ESCAPE",
    "MAX_PAGE",
    "MOVED_EVENTS_WITHIN",
    "TopAgent",
    "TopReign",
    "TopReigns",
    "board_count",
    "board_order",
    "board_rows",
    "board_rows_by_version_ids",
    "board_window",
    "current_top_agent",
    "leaderboard_page",
    "like_literal",
    "lock_suite_board",
    "on_version_eligible",
    "recompute_top_agent",
    "reign_at",
    "submitted_since",
    "top_agent",
    "top_history",
    "top_history_count",
    "top_history_window",
    "top_reigns",
    "top_reigns_by_version",
]


MAX_PAGE = 500
MOVED_EVENTS_WITHIN = 100  # MOVED events are published for the top 100 of the board only (one insert each)
_TOP_LOCK_NS = 0x0E0  # advisory-lock namespace for "top agent of suite N"


@dataclass(frozen=True)
class BoardPage:
    suite: Suite
    rows: list[BoardRow]
    total: int
    limit: int
    offset: int
    unique_miners: int
    agents_submitted_24h: int


def leaderboard_page(
    session: Session,
    *,
    suite_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
    q: str | None = None,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> BoardPage:
    """Eligible versions ranked by final score. Ranks are over the whole board, also when searching."""
    suite = suites.resolve_suite(session, suite_id)
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    now = now or utcnow()
    eligible = (col(AgentVersion.suite_id) == suite.id) & _eligible_as_of(as_of)
    stmt = _board_stmt(suite.id or 0, q, as_of)
    rows = [
        tuple(r) for r in session.execute(stmt.order_by(*board_order()).offset(offset).limit(limit)).all()
    ]
    if not q:  # the board in order from the index: ranks follow the offset, no window over the whole board
        rows = [(offset + i + 1, version, agent) for i, (_, version, agent) in enumerate(rows)]
    total = count(session, stmt)
    unique_miners = session.exec(
        select(func.count(func.distinct(Agent.miner_hotkey)))
        .select_from(AgentVersion)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(eligible)
    ).one()
    submitted = submitted_since(session, suite.id or 0, as_of or now)
    out = board_rows(session, suite.id or 0, rows, as_of=as_of)
    return BoardPage(suite, out, total, limit, offset, unique_miners, submitted)


def submitted_since(session: Session, suite_id: int, at: datetime) -> int:
    """Versions submitted to a suite in the 24 hours up to ``at``."""
    return int(
        session.exec(
            select(func.count())
            .select_from(AgentVersion)
            .where(
                AgentVersion.suite_id == suite_id, col(AgentVersion.submitted_at) >= at - timedelta(hours=24)
            )
            .where(col(AgentVersion.submitted_at) <= at)
        ).one()
    )


@dataclass(frozen=True)
class TopAgent:
    suite_id: int
    computed_at: datetime
    reign: TopAgentHistory | None
    version: AgentVersion | None
    agent: Agent | None
    challenge_threshold: float


def top_agent(
    session: Session, *, settings: Settings, suite_id: int | None = None, as_of: datetime | None = None
) -> TopAgent:
    """The reigning top agent (or the one reigning at ``as_of``) of a suite."""
    suite = suites.resolve_suite(session, suite_id)
    reign = reign_at(session, suite.id or 0, as_of)
    version = session.get(AgentVersion, reign.agent_version_id) if reign else None
    agent = session.get(Agent, version.agent_id) if version else None
    return TopAgent(suite.id or 0, as_of or utcnow(), reign, version, agent, settings.challenge_threshold)


def current_top_agent(session: Session, *, settings: Settings) -> TopAgent:
    """The reigning top agent of the active suite. Before any suite is active there is none: suite 0
    and no reign (the public answer's fields are null), not an error."""
    if suites.current_suite_or_none(session) is None:
        return TopAgent(0, utcnow(), None, None, None, settings.challenge_threshold)
    return top_agent(session, settings=settings)


# Statements of a completion that makes a version eligible, built once with bound parameters: building
# and hashing a select on every call was most of what crowning the top agent cost the validator loop.
_SUITE_ID = bindparam("suite_id", type_=Integer)
_REIGNING = (
    select(TopAgentHistory)
    .where(TopAgentHistory.suite_id == _SUITE_ID, col(TopAgentHistory.replaced_at).is_(None))
    .order_by(col(TopAgentHistory.top_at).desc())
    .limit(1)
)
_BEST_ELIGIBLE = (
    select(AgentVersion)
    .where(AgentVersion.suite_id == _SUITE_ID, AgentVersion.state == AgentVersionState.ELIGIBLE)
    .order_by(*board_order())
    .limit(1)
)


def reign_at(session: Session, suite_id: int, as_of: datetime | None) -> TopAgentHistory | None:
    if as_of is None:
        reigning: TopAgentHistory | None = session.scalars(_REIGNING, {"suite_id": suite_id}).first()
        return reigning
    stmt = (
        select(TopAgentHistory)
        .where(TopAgentHistory.suite_id == suite_id, col(TopAgentHistory.top_at) <= as_of)
        .where(col(TopAgentHistory.replaced_at).is_(None) | (col(TopAgentHistory.replaced_at) > as_of))
    )
    return session.exec(stmt.order_by(col(TopAgentHistory.top_at).desc()).limit(1)).first()


def top_history(session: Session, *, suite_id: int | None = None) -> list[TopAgentHistory]:
    suite = suites.resolve_suite(session, suite_id)
    stmt = (
        select(TopAgentHistory)
        .where(TopAgentHistory.suite_id == suite.id)
        .order_by(col(TopAgentHistory.top_at))
    )
    return list(session.exec(stmt))


@dataclass(frozen=True)
class TopReign:
    reign: TopAgentHistory
    version: AgentVersion
    agent: Agent


@dataclass(frozen=True)
class TopReigns:
    suite: Suite
    reigns: list[TopReign]


def top_reigns(session: Session, *, suite_id: int | None = None) -> TopReigns:
    """Every reign of a suite's top agents with its version and agent, newest first."""
    suite = suites.resolve_suite(session, suite_id)
    rows = session.exec(
        select(TopAgentHistory, AgentVersion, Agent)
        .join(AgentVersion, col(AgentVersion.id) == TopAgentHistory.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(TopAgentHistory.suite_id == suite.id)
        .order_by(col(TopAgentHistory.top_at).desc(), col(TopAgentHistory.id).desc())
    ).all()
    return TopReigns(suite, [TopReign(r, v, a) for r, v, a in rows])


def lock_suite_board(session: Session, suite_id: int) -> None:
    """Serialise top-agent changes per suite until commit (SQLite already serialises writers). A
    transaction that holds it already (a completion crowning the top agent after publishing the board's
    change) does not ask the database again."""
    if locks.holds(session, Lock.SUITE_BOARD, suite_id):
        return
    locks.take(session, Lock.SUITE_BOARD, suite_id)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": _TOP_LOCK_NS, "key": suite_id}
        )


def on_version_eligible(
    session: Session, version: AgentVersion, *, settings: Settings, now: datetime
) -> None:
    """A version just became eligible: publish its entry (and who moved down), then recompute the top.

    Runs under the per-suite board lock, so board events get ids in the order the board changed.
    """
    lock_suite_board(session, version.suite_id)
    session.flush()
    rank = _ahead_of(session, version.suite_id, None, version) + 1
    events.record(
        session,
        events.BoardEvent.ENTERED,
        suite_id=version.suite_id,
        agent_version_id=version.id,
        payload=events.Entered(rank, version.final_score),
        at=now,
    )
    if rank < MOVED_EVENTS_WITHIN:
        board = select(AgentVersion.id, AgentVersion.final_score).where(
            AgentVersion.suite_id == version.suite_id, AgentVersion.state == AgentVersionState.ELIGIBLE
        )
        ranked = session.exec(board.order_by(*board_order()).limit(MOVED_EVENTS_WITHIN)).all()
        for below, (vid, score) in enumerate(ranked[rank:], start=rank + 1):
            events.record(
                session,
                events.BoardEvent.MOVED,
                suite_id=version.suite_id,
                agent_version_id=vid,
                payload=events.Moved(below, below - 1, score),
                at=now,
            )
    recompute_top_agent(session, version.suite_id, settings=settings, now=now)


def recompute_top_agent(
    session: Session, suite_id: int, *, settings: Settings, now: datetime
) -> TopAgentHistory | None:
    """Crown the best eligible version unless the incumbent still stands.

    A challenger replaces a still-eligible incumbent only by beating its score by more than
    ``challenge_threshold``. A per-suite lock makes concurrent completions crown one agent. From a
    suite's first completed race on, races crown the top agent instead (services/races/completion.py).
    """
    from oro_graph.services.races import has_completed_race

    lock_suite_board(session, suite_id)
    if has_completed_race(session, suite_id):
        return reign_at(session, suite_id, None)
    best: AgentVersion | None = session.scalars(_BEST_ELIGIBLE, {"suite_id": suite_id}).first()
    current = reign_at(session, suite_id, None)
    if best is None or best.final_score is None:
        return current
    if current is not None:
        incumbent = session.get(AgentVersion, current.agent_version_id)
        still_eligible = incumbent is not None and incumbent.state == AgentVersionState.ELIGIBLE
        if current.agent_version_id == best.id:
            return current
        if still_eligible and best.final_score <= current.score + settings.challenge_threshold:
            return current
        current.replaced_at = now
        session.add(current)
    reign = TopAgentHistory(suite_id=suite_id, agent_version_id=best.id, score=best.final_score, top_at=now)
    session.add(reign)
    events.record(
        session,
        events.BoardEvent.TOP_CHANGED,
        suite_id=suite_id,
        agent_version_id=best.id,
        payload=events.TopChanged(best.final_score, current.agent_version_id if current else None),
        at=now,
    )
    session.flush()
    return reign
