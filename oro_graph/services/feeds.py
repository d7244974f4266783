"""Event feeds of one agent version or one miner, read from the event log (services.events).

A version's feed is its runs' events that matter to a miner watching its submission (claimed, a
problem scored, a run finished or lapsed) and its board events (entered the board, moved, became
the top agent); a miner's feed is the same for every version of its agents. Both are one statement
per read, from a cursor, in commit order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session, col

from oro_graph.models import Agent, AgentVersion, EvaluationRun, Event
from oro_graph.services.events import MAX_READ, BoardEvent, RunEvent

RUN_KINDS = (RunEvent.CLAIMED, RunEvent.PROBLEM_SCORED, RunEvent.STATUS_CHANGED, RunEvent.FINISHED)
BOARD_KINDS = (BoardEvent.ENTERED, BoardEvent.MOVED, BoardEvent.TOP_CHANGED)


@dataclass(frozen=True)
class FeedEvent:
    event: Event
    agent_version_id: uuid.UUID

    @property
    def id(self) -> int | None:  # the cursor, as an Event's
        return self.event.id


def _feed(session: Session, versions: Any, after: int, limit: int) -> Sequence[FeedEvent]:
    runs = select(col(EvaluationRun.id)).where(col(EvaluationRun.agent_version_id).in_(versions))
    version = func.coalesce(col(Event.agent_version_id), col(EvaluationRun.agent_version_id))
    stmt = (
        select(Event, version)
        .outerjoin(EvaluationRun, col(EvaluationRun.id) == Event.run_id)
        .where(
            col(Event.id) > after,
            or_(
                and_(col(Event.topic) == "run", col(Event.run_id).in_(runs), col(Event.kind).in_(RUN_KINDS)),
                and_(
                    col(Event.topic) == "board",
                    col(Event.agent_version_id).in_(versions),
                    col(Event.kind).in_(BOARD_KINDS),
                ),
            ),
        )
        .order_by(col(Event.id))
        .limit(min(limit, MAX_READ))
    )
    return [
        FeedEvent(row, v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)))
        for row, v in session.execute(stmt).all()
    ]


def version_feed(
    session: Session, version_id: uuid.UUID, *, after: int = 0, limit: int = MAX_READ
) -> Sequence[FeedEvent]:
    """One version's events after the cursor ``after``."""
    return _feed(session, [version_id], after, limit)


def miner_feed(
    session: Session, hotkey: str, *, after: int = 0, limit: int = MAX_READ
) -> Sequence[FeedEvent]:
    """The events of every version of ``hotkey``'s agents after the cursor ``after``."""
    versions = (
        select(col(AgentVersion.id))
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(col(Agent.miner_hotkey) == hotkey)
    )
    return _feed(session, versions, after, limit)
