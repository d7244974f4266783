"""Keyset reads of the leaderboard for the graph: cursor pages, time travel and per-version ranks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from oro_graph.models import Agent, AgentVersion, TopAgentHistory
from oro_graph.services import suites
from oro_graph.services.boardrows import BOARD_KEY, BoardRow, ahead_of, board_rows, board_stmt, ranked_board
from oro_graph.services.pages import Page, Window, count, keyset_page


def _with_ranks(session: Session, suite_id: int, as_of: datetime | None, rows: list[Any]) -> list[Any]:
    if not rows:
        return rows
    first = ahead_of(session, suite_id, as_of, rows[0][1]) + 1
    return [(first + i, version, agent) for i, (_, version, agent) in enumerate(rows)]


def board_window(
    session: Session, *, suite_id: int | None, q: str | None, as_of: datetime | None, window: Window
) -> Page[BoardRow]:
    """A keyset page of the board (ranks over the whole board, also when searching)."""
    suite = suites.resolve_suite(session, suite_id)
    page = keyset_page(session, board_stmt(suite.id or 0, q, as_of), BOARD_KEY, window)
    rows = page.rows if q else _with_ranks(session, suite.id or 0, as_of, page.rows)
    return replace(page, rows=board_rows(session, suite.id or 0, rows, as_of=as_of))


def board_count(session: Session, *, suite_id: int | None, q: str | None, as_of: datetime | None) -> int:
    suite = suites.resolve_suite(session, suite_id)
    return count(session, board_stmt(suite.id or 0, q, as_of))


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
        ranked = ranked_board(suite_id, as_of)
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
    return sa_select(TopAgentHistory).where(col(TopAgentHistory.suite_id) == suite_id)


HISTORY_KEY = ((col(TopAgentHistory.top_at), False), (col(TopAgentHistory.id), False))


def top_history_window(session: Session, *, suite_id: int | None, window: Window) -> Page[TopAgentHistory]:
    """Reigns of a suite's top agents, oldest first."""
    suite = suites.resolve_suite(session, suite_id)
    return keyset_page(session, _history_stmt(suite.id or 0), HISTORY_KEY, window)


def top_history_count(session: Session, *, suite_id: int | None) -> int:
    suite = suites.resolve_suite(session, suite_id)
    return count(session, _history_stmt(suite.id or 0))
