"""The event log behind subscriptions: recorded in the writer's transaction, read from a cursor.

A run's events: CLAIMED, HEARTBEAT, PROBLEM_STARTED, PROBLEM_SCORED, STATUS_CHANGED, FINISHED.
A suite board's events: ENTERED, MOVED, TOP_CHANGED. Cursors are event ids, increasing in commit
order per writer; readers poll from their cursor, woken early by a notifier when one is configured.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from oro_graph.models import Event, utcnow

NOTIFY_CHANNEL = "oro_events"
MAX_READ = 500


class RunEvent(StrEnum):
    CLAIMED = "CLAIMED"
    HEARTBEAT = "HEARTBEAT"
    PROBLEM_STARTED = "PROBLEM_STARTED"
    PROBLEM_SCORED = "PROBLEM_SCORED"
    STATUS_CHANGED = "STATUS_CHANGED"
    FINISHED = "FINISHED"


class BoardEvent(StrEnum):
    ENTERED = "ENTERED"
    MOVED = "MOVED"
    TOP_CHANGED = "TOP_CHANGED"


def record(
    session: Session,
    kind: RunEvent | BoardEvent,
    *,
    run_id: uuid.UUID | None = None,
    suite_id: int | None = None,
    agent_version_id: uuid.UUID | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append an event to the log in the caller's transaction (it exists only if the change commits).

    ``at`` is the time of the change (the service's ``now``), so replayed or simulated histories
    carry their own clock.
    """
    topic = "run" if isinstance(kind, RunEvent) else "board"
    session.add(
        Event(
            topic=topic,
            kind=kind,
            run_id=run_id,
            suite_id=suite_id,
            agent_version_id=agent_version_id,
            payload=payload,
            created_at=at or utcnow(),
        )
    )
    if not session.info.get("oro_events"):
        session.info["oro_events"] = True
        if session.get_bind().dialect.name == "postgresql":
            # Delivered to every LISTENing process when (and only if) this transaction commits.
            session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def run_events(
    session: Session, run_id: uuid.UUID, *, after: int = 0, limit: int = MAX_READ
) -> Sequence[Event]:
    stmt = (
        select(Event)
        .where(Event.run_id == run_id, Event.topic == "run", col(Event.id) > after)
        .order_by(col(Event.id))
        .limit(min(limit, MAX_READ))
    )
    return session.exec(stmt).all()


def board_events(
    session: Session, suite_id: int, *, after: int = 0, limit: int = MAX_READ
) -> Sequence[Event]:
    stmt = (
        select(Event)
        .where(Event.suite_id == suite_id, Event.topic == "board", col(Event.id) > after)
        .order_by(col(Event.id))
        .limit(min(limit, MAX_READ))
    )
    return session.exec(stmt).all()


def latest_event_id(session: Session) -> int:
    return session.exec(select(Event.id).order_by(col(Event.id).desc())).first() or 0
