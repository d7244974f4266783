"""The leaderboard of eligible versions and the top agent that earns emissions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, or_, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from oro_graph.models import Agent, AgentVersion, AgentVersionState, Suite, TopAgentHistory, utcnow
from oro_graph.services import events, locks, suites
from oro_graph.services.locks import Lock
from oro_graph.services.pages import Page, Window, count, keyset_page
from oro_graph.settings import Settings

MAX_PAGE = 500
MOVED_EVENTS_WITHIN = 100  # MOVED events are published for the top 100 of the board only (one insert each)
_TOP_LOCK_NS = 0x0E0  # advisory-lock namespace for "top agent of suite N"


@dataclass(frozen=True)
class BoardRow:
    """One place on a board: the one view both adapters' leaderboard entries are shaped from."""

    rank: int
    version: AgentVersion
    agent: Agent
    is_current_top: bool
    was_top: bool
    top_at: datetime | None
    race_score: float | None = None  # on the race board (score_type=race)

    @property
    def agent_version_id(self) -> uuid.UUID:
        return self.version.id

    @property
    def agent_name(self) -> str:
        return self.agent.name

    @property
    def miner_hotkey(self) -> str:
        return self.agent.miner_hotkey

    @property
    def version_number(self) -> int:
        return self.version.version_number

    @property
    def final_score(self) -> float | None:
        return self.version.final_score

    @property
    def eligible_at(self) -> datetime | None:
        return self.version.eligible_at

    @property
    def is_discarded(self) -> bool:
        """Discarded since (a board as of an earlier instant can show it)."""
        return self.version.state == AgentVersionState.DISCARDED


@dataclass(frozen=True)
class BoardPage:
    suite: Suite
    rows: list[BoardRow]
    total: int
    limit: int
    offset: int
    unique_miners: int
    agents_submitted_24h: int


def _eligible_as_of(as_of: datetime | None):  # type: ignore[no-untyped-def]
    if as_of is None:
        return AgentVersion.state == AgentVersionState.ELIGIBLE
    return (col(AgentVersion.eligible_at) <= as_of) & (
        col(AgentVersion.discarded_at).is_(None) | (col(AgentVersion.discarded_at) > as_of)
    )


def board_order():  # type: ignore[no-untyped-def]
    """Best score first; ties go to whoever became eligible first, then to the id for stability."""
    return (
        col(AgentVersion.final_score).desc(),
        col(AgentVersion.eligible_at).asc(),
        col(AgentVersion.id).asc(),
    )


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
    eligible = (AgentVersion.suite_id == suite.id) & _eligible_as_of(as_of)
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


def board_rows(
    session: Session,
    suite_id: int,
    rows: Sequence[tuple[int, AgentVersion, Agent]],
    *,
    as_of: datetime | None = None,
) -> list[BoardRow]:
    """Ranked (rank, version, agent) rows with their top-agent history as of ``as_of``."""
    reigns = top_reigns_by_version(session, suite_id, [v.id for _, v, _ in rows], as_of=as_of)
    out = []
    for rank, version, agent in rows:
        history = reigns.get(version.id, [])
        current = any(r.replaced_at is None or (as_of is not None and r.replaced_at > as_of) for r in history)
        out.append(
            BoardRow(
                rank=rank,
                version=version,
                agent=agent,
                is_current_top=current,
                was_top=bool(history),
                top_at=min((r.top_at for r in history), default=None),
            )
        )
    return out


def top_reigns_by_version(
    session: Session, suite_id: int, version_ids: list[uuid.UUID], *, as_of: datetime | None = None
) -> dict[uuid.UUID, list[TopAgentHistory]]:
    stmt = select(TopAgentHistory).where(
        TopAgentHistory.suite_id == suite_id, col(TopAgentHistory.agent_version_id).in_(version_ids)
    )
    if as_of is not None:
        stmt = stmt.where(col(TopAgentHistory.top_at) <= as_of)
    out: dict[uuid.UUID, list[TopAgentHistory]] = {}
    for row in session.exec(stmt):
        out.setdefault(row.agent_version_id, []).append(row)
    return out


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


def reign_at(session: Session, suite_id: int, as_of: datetime | None) -> TopAgentHistory | None:
    stmt = select(TopAgentHistory).where(TopAgentHistory.suite_id == suite_id)
    if as_of is None:
        stmt = stmt.where(col(TopAgentHistory.replaced_at).is_(None))
    else:
        stmt = stmt.where(col(TopAgentHistory.top_at) <= as_of).where(
            col(TopAgentHistory.replaced_at).is_(None) | (col(TopAgentHistory.replaced_at) > as_of)
        )
    return session.exec(stmt.order_by(col(TopAgentHistory.top_at).desc())).first()


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
    """Serialise top-agent changes per suite until commit (SQLite already serialises writers)."""
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
    best = session.exec(
        select(AgentVersion)
        .where(AgentVersion.suite_id == suite_id, AgentVersion.state == AgentVersionState.ELIGIBLE)
        .order_by(*board_order())
    ).first()
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


# Keyset reads for the graph (cursor pages, time travel and per-version ranks).

BOARD_KEY = (
    (col(AgentVersion.final_score), True),
    (col(AgentVersion.eligible_at), False),
    (col(AgentVersion.id), False),
)  # the same order as board_order(), as (column, descending) for keyset cursors


def _ranked_board(suite_id: int, as_of: datetime | None) -> Any:
    eligible = (AgentVersion.suite_id == suite_id) & _eligible_as_of(as_of)
    return (
        select(
            col(AgentVersion.id).label("vid"), func.row_number().over(order_by=board_order()).label("rank")
        )
        .where(eligible)
        .subquery()
    )


def _board_stmt(suite_id: int, q: str | None, as_of: datetime | None) -> Any:
    """(rank, version, agent) rows of the board. Without a search the rank column is a placeholder
    (0) filled in from the page's position, so no statement ranks the whole board; a search needs
    the global rank of each match, so that case numbers the board with a window function."""
    if not q:
        return (
            sa_select(literal(0).label("rank"), AgentVersion, Agent)
            .join(Agent, col(Agent.id) == AgentVersion.agent_id)
            .where(AgentVersion.suite_id == suite_id, _eligible_as_of(as_of))
        )
    ranked = _ranked_board(suite_id, as_of)
    needle = f"%{like_literal(q.strip().lower())}%"
    return (
        sa_select(ranked.c.rank, AgentVersion, Agent)
        .join(AgentVersion, col(AgentVersion.id) == ranked.c.vid)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(
            or_(
                func.lower(Agent.name).like(needle, escape=LIKE_ESCAPE),
                func.lower(Agent.miner_hotkey).like(needle, escape=LIKE_ESCAPE),
            )
        )
    )


LIKE_ESCAPE = "\\"


def like_literal(text: str) -> str:
    """``text`` as a LIKE pattern matching itself: ``%``, ``_`` and the escape character are escaped,
    so a search for ``%`` finds names containing a percent sign, not every name."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
    return escaped.replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def _ahead_of(session: Session, suite_id: int, as_of: datetime | None, version: AgentVersion) -> int:
    """How many versions stand before ``version`` on the board (an index range count)."""
    score, at = version.final_score, version.eligible_at
    before = or_(
        col(AgentVersion.final_score) > score,
        (col(AgentVersion.final_score) == score) & (col(AgentVersion.eligible_at) < at),
        (col(AgentVersion.final_score) == score)
        & (col(AgentVersion.eligible_at) == at)
        & (col(AgentVersion.id) < version.id),
    )
    return int(
        session.execute(
            select(func.count()).where(AgentVersion.suite_id == suite_id, _eligible_as_of(as_of), before)
        ).scalar_one()
    )


def _with_ranks(session: Session, suite_id: int, as_of: datetime | None, rows: list[Any]) -> list[Any]:
    if not rows:
        return rows
    first = _ahead_of(session, suite_id, as_of, rows[0][1]) + 1
    return [(first + i, version, agent) for i, (_, version, agent) in enumerate(rows)]


def board_window(
    session: Session, *, suite_id: int | None, q: str | None, as_of: datetime | None, window: Window
) -> Page[BoardRow]:
    """A keyset page of the board (ranks over the whole board, also when searching)."""
    suite = suites.resolve_suite(session, suite_id)
    page = keyset_page(session, _board_stmt(suite.id or 0, q, as_of), BOARD_KEY, window)
    rows = page.rows if q else _with_ranks(session, suite.id or 0, as_of, page.rows)
    return replace(page, rows=board_rows(session, suite.id or 0, rows, as_of=as_of))


def board_count(session: Session, *, suite_id: int | None, q: str | None, as_of: datetime | None) -> int:
    suite = suites.resolve_suite(session, suite_id)
    return count(session, _board_stmt(suite.id or 0, q, as_of))


def board_rows_by_version_ids(
    session: Session, ids: Iterable[uuid.UUID], *, as_of: datetime | None = None
) -> dict[uuid.UUID, BoardRow]:
    """The board row (rank, top history) of each version that is on its suite's board at ``as_of``."""
    versions = session.exec(select(AgentVersion).where(col(AgentVersion.id).in_(list(ids)))).all()
    by_suite: dict[int, list[uuid.UUID]] = {}
    for version in versions:
        by_suite.setdefault(version.suite_id, []).append(version.id)
    out: dict[uuid.UUID, BoardRow] = {}
    for suite_id, version_ids in by_suite.items():
        ranked = _ranked_board(suite_id, as_of)
        rows = session.execute(
            sa_select(ranked.c.rank, AgentVersion, Agent)
            .join(AgentVersion, col(AgentVersion.id) == ranked.c.vid)
            .join(Agent, col(Agent.id) == AgentVersion.agent_id)
            .where(ranked.c.vid.in_(version_ids))
        ).all()
        for row in board_rows(session, suite_id, [tuple(r) for r in rows], as_of=as_of):
            out[row.version.id] = row
    return out


def _history_stmt(suite_id: int) -> Any:
    return sa_select(TopAgentHistory).where(TopAgentHistory.suite_id == suite_id)


HISTORY_KEY = ((col(TopAgentHistory.top_at), False), (col(TopAgentHistory.id), False))


def top_history_window(session: Session, *, suite_id: int | None, window: Window) -> Page[TopAgentHistory]:
    """Reigns of a suite's top agents, oldest first."""
    suite = suites.resolve_suite(session, suite_id)
    return keyset_page(session, _history_stmt(suite.id or 0), HISTORY_KEY, window)


def top_history_count(session: Session, *, suite_id: int | None) -> int:
    suite = suites.resolve_suite(session, suite_id)
    return count(session, _history_stmt(suite.id or 0))
