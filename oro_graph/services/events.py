"""The event log behind subscriptions: recorded in the writer's transaction, read from a cursor.

A run's events: CLAIMED, HEARTBEAT, PROBLEM_STARTED, PROBLEM_SCORED, STATUS_CHANGED, FINISHED.
A suite board's events: ENTERED, MOVED, TOP_CHANGED. A race's events (``RaceEvent``, topic "race",
the race's id in the payload). Cursors are event ids, increasing in commit
order per writer; readers poll from their cursor, woken early by a notifier when one is configured.

Every heartbeat adds an event, so the log is pruned (``prune``): heartbeats after
``ORO_HEARTBEAT_RETENTION_HOURS``, a run's other events after ``ORO_RUN_EVENT_RETENTION_DAYS``. A
cursor older than that replays what is left.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import text
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.models import Event, utcnow
from oro_graph.settings import Settings

NOTIFY_CHANNEL = "oro_events"
MAX_READ = 500
PRUNE_SECONDS = 300.0  # how often each server process offers to prune (one acts, under a lease)


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


class RaceEvent(StrEnum):
    RACE_OPENED = "RACE_OPENED"
    QUALIFIER_ENTERED = "QUALIFIER_ENTERED"
    QUALIFYING_CLOSED = "QUALIFYING_CLOSED"
    QUALIFIER_FINISHED = "QUALIFIER_FINISHED"
    QUALIFIER_DID_NOT_FINISH = "QUALIFIER_DID_NOT_FINISH"
    RACE_COMPLETED = "RACE_COMPLETED"
    RACE_CANCELLED = "RACE_CANCELLED"
    TOP_CHANGED = "TOP_CHANGED"


TOPICS = {RunEvent: "run", BoardEvent: "board", RaceEvent: "race"}


def record(
    session: Session,
    kind: RunEvent | BoardEvent | RaceEvent,
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
    topic = TOPICS[type(kind)]
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


PRUNE_JOB = "event-retention"
PRUNE_BATCH = 5_000


@dataclass(frozen=True)
class Pruned:
    acted: bool  # this process held the retention lease
    heartbeats: int = 0
    run_events: int = 0

    @property
    def full(self) -> bool:
        """A whole batch went: more may be waiting."""
        return max(self.heartbeats, self.run_events) >= PRUNE_BATCH


def _delete_older(session: Session, cutoff: datetime, *, heartbeats: bool) -> int:
    kind = col(Event.kind) == RunEvent.HEARTBEAT if heartbeats else col(Event.kind) != RunEvent.HEARTBEAT
    old = (
        select(Event.id)
        .where(Event.topic == "run", kind, col(Event.created_at) < cutoff)
        .order_by(col(Event.id))
        .limit(PRUNE_BATCH)
    )
    ids = list(session.exec(old).all())
    if ids:
        session.execute(sql_delete(Event).where(col(Event.id).in_(ids)))
    return len(ids)


@writes
def prune(session: Session, *, settings: Settings, holder: str, now: datetime | None = None) -> Pruned:
    """Delete one batch of HEARTBEAT events older than ``ORO_HEARTBEAT_RETENTION_HOURS`` and one of
    other run events older than ``ORO_RUN_EVENT_RETENTION_DAYS``, if this process holds the
    retention lease (one process prunes at a time). Board events are kept: there are few of them."""
    from oro_graph.services.races import take_lease

    now = now or utcnow()
    if not take_lease(session, holder, 3 * PRUNE_SECONDS, now, job=PRUNE_JOB):
        return Pruned(acted=False)
    beats = _delete_older(session, now - timedelta(hours=settings.heartbeat_retention_hours), heartbeats=True)
    others = _delete_older(session, now - timedelta(days=settings.run_event_retention_days), heartbeats=False)
    return Pruned(acted=True, heartbeats=beats, run_events=others)


def race_events(session: Session, *, after: int = 0, limit: int = MAX_READ) -> Sequence[Event]:
    """Every race's events after the cursor, in log order."""
    stmt = (
        select(Event)
        .where(Event.topic == "race", col(Event.id) > after)
        .order_by(col(Event.id))
        .limit(min(limit, MAX_READ))
    )
    return session.exec(stmt).all()


def latest_event_id(session: Session) -> int:
    return session.exec(select(Event.id).order_by(col(Event.id).desc())).first() or 0
