"""The rows of a leaderboard: its order, the statement that selects (rank, version, agent) and each
row's top-agent history. The lower layer that ``services.leaderboard`` and ``services.boardpages``
both build on (so neither imports the other's module at load time)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, or_
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlmodel import Session, col, select

from oro_graph.models import Agent, AgentVersion, AgentVersionState, TopAgentHistory


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


def eligible_as_of(as_of: datetime | None) -> ColumnElement[bool]:
    if as_of is None:
        return col(AgentVersion.state) == AgentVersionState.ELIGIBLE
    return (col(AgentVersion.eligible_at) <= as_of) & (
        col(AgentVersion.discarded_at).is_(None) | (col(AgentVersion.discarded_at) > as_of)
    )


def board_order() -> tuple[UnaryExpression[Any], ...]:
    """Best score first; ties go to whoever became eligible first, then to the id for stability."""
    return (
        col(AgentVersion.final_score).desc(),
        col(AgentVersion.eligible_at).asc(),
        col(AgentVersion.id).asc(),
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


BOARD_KEY = (
    (col(AgentVersion.final_score), True),
    (col(AgentVersion.eligible_at), False),
    (col(AgentVersion.id), False),
)  # the same order as board_order(), as (column, descending) for keyset cursors


def ranked_board(suite_id: int, as_of: datetime | None) -> Any:
    eligible = (col(AgentVersion.suite_id) == suite_id) & eligible_as_of(as_of)
    return (
        select(
            col(AgentVersion.id).label("vid"), func.row_number().over(order_by=board_order()).label("rank")
        )
        .where(eligible)
        .subquery()
    )


def board_stmt(suite_id: int, q: str | None, as_of: datetime | None) -> Any:
    """(rank, version, agent) rows of the board. Without a search the rank column is a placeholder
    (0) filled in from the page's position, so no statement ranks the whole board; a search needs
    the global rank of each match, so that case numbers the board with a window function."""
    if not q:
        return (
            sa_select(literal(0).label("rank"), AgentVersion, Agent)
            .join(Agent, col(Agent.id) == AgentVersion.agent_id)
            .where(col(AgentVersion.suite_id) == suite_id, eligible_as_of(as_of))
        )
    ranked = ranked_board(suite_id, as_of)
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


def ahead_of(session: Session, suite_id: int, as_of: datetime | None, version: AgentVersion) -> int:
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
            select(func.count()).where(AgentVersion.suite_id == suite_id, eligible_as_of(as_of), before)
        ).scalar_one()
    )
