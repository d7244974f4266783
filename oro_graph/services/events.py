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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import event, func
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.models import Event, RunStatus, utcnow
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


# Typed payloads. Each is stored as the JSON object its ``to_json`` returns (the keys and their
# order are the log's stored form, which replayed cursors read back: change them only with a
# migration) and read back with ``payload_of``.


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


@dataclass(frozen=True)
class Claimed:
    """RunEvent.CLAIMED: a validator leased the run."""

    validator_hotkey: str
    lease_expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "validator_hotkey": self.validator_hotkey,
            "lease_expires_at": self.lease_expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> Claimed:
        return cls(p["validator_hotkey"], datetime.fromisoformat(p["lease_expires_at"]))


@dataclass(frozen=True)
class Heartbeat:
    """RunEvent.HEARTBEAT: the validator renewed its lease."""

    lease_expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"lease_expires_at": self.lease_expires_at.isoformat()}

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> Heartbeat:
        return cls(datetime.fromisoformat(p["lease_expires_at"]))


@dataclass(frozen=True)
class ProblemReported:
    """RunEvent.PROBLEM_STARTED or PROBLEM_SCORED: a problem of the run was reported."""

    problem_id: uuid.UUID
    status: str
    score: float | None

    def to_json(self) -> dict[str, Any]:
        return {"problem_id": str(self.problem_id), "status": str(self.status), "score": self.score}

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> ProblemReported:
        return cls(uuid.UUID(p["problem_id"]), str(p["status"]), p.get("score"))


@dataclass(frozen=True)
class StatusChanged:
    """RunEvent.STATUS_CHANGED: the run went from ``previous`` to ``status``."""

    previous: RunStatus
    status: RunStatus

    def to_json(self) -> dict[str, Any]:
        return {"from": self.previous.value, "to": self.status.value}

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> StatusChanged:
        return cls(RunStatus(p["from"]), RunStatus(p["to"]))


@dataclass(frozen=True)
class Finished:
    """RunEvent.FINISHED: the validator completed the run."""

    status: RunStatus
    validator_score: float | None
    became_eligible: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "validator_score": self.validator_score,
            "became_eligible": self.became_eligible,
        }

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> Finished:
        return cls(RunStatus(p["status"]), p.get("validator_score"), bool(p.get("became_eligible")))


@dataclass(frozen=True)
class Entered:
    """BoardEvent.ENTERED: a version became eligible and entered the board at ``rank``."""

    rank: int | None
    final_score: float | None

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "final_score": self.final_score}

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> Entered:
        return cls(p.get("rank"), p.get("final_score"))


@dataclass(frozen=True)
class Moved:
    """BoardEvent.MOVED: a version moved down one place because another entered above it."""

    rank: int
    previous_rank: int
    final_score: float | None

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "previous_rank": self.previous_rank, "final_score": self.final_score}

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> Moved:
        return cls(p["rank"], p["previous_rank"], p.get("final_score"))


@dataclass(frozen=True)
class TopChanged:
    """BoardEvent.TOP_CHANGED: a new top agent; ``race_id`` when a race crowned it."""

    final_score: float | None
    previous_agent_version_id: uuid.UUID | None
    race_id: uuid.UUID | None = None

    def to_json(self) -> dict[str, Any]:
        race = {} if self.race_id is None else {"race_id": str(self.race_id)}
        previous = self.previous_agent_version_id
        return {
            "final_score": self.final_score,
            **race,
            "previous_agent_version_id": str(previous) if previous else None,
        }

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> TopChanged:
        return cls(p.get("final_score"), _uuid(p.get("previous_agent_version_id")), _uuid(p.get("race_id")))


@dataclass(frozen=True)
class RaceChanged:
    """Every RaceEvent: it names the race only; the race's state is read when it is delivered."""

    race_id: uuid.UUID

    def to_json(self) -> dict[str, Any]:
        return {"race_id": str(self.race_id)}

    @classmethod
    def from_json(cls, p: Mapping[str, Any]) -> RaceChanged:
        return cls(uuid.UUID(p["race_id"]))


RunPayload = Claimed | Heartbeat | ProblemReported | StatusChanged | Finished
BoardPayload = Entered | Moved | TopChanged
Payload = RunPayload | BoardPayload | RaceChanged

# By topic, then kind: "TOP_CHANGED" is both a board and a race kind.
_PAYLOADS: dict[str, dict[str, type[Payload]]] = {
    "run": {
        RunEvent.CLAIMED: Claimed,
        RunEvent.HEARTBEAT: Heartbeat,
        RunEvent.PROBLEM_STARTED: ProblemReported,
        RunEvent.PROBLEM_SCORED: ProblemReported,
        RunEvent.STATUS_CHANGED: StatusChanged,
        RunEvent.FINISHED: Finished,
    },
    "board": {BoardEvent.ENTERED: Entered, BoardEvent.MOVED: Moved, BoardEvent.TOP_CHANGED: TopChanged},
    "race": dict.fromkeys(RaceEvent, RaceChanged),
}


def payload_of(row: Event) -> Payload:
    """The typed payload of a logged event, chosen by its topic and kind."""
    return _PAYLOADS[row.topic][row.kind].from_json(row.payload or {})


def run_payload(row: Event) -> RunPayload:
    found = payload_of(row)
    if not isinstance(found, RunPayload):
        raise TypeError(f"event {row.id} ({row.kind}) is not a run event")
    return found


def board_payload(row: Event) -> BoardPayload:
    found = payload_of(row)
    if not isinstance(found, BoardPayload):
        raise TypeError(f"event {row.id} ({row.kind}) is not a board event")
    return found


def race_payload(row: Event) -> RaceChanged:
    found = payload_of(row)
    if not isinstance(found, RaceChanged):
        raise TypeError(f"event {row.id} ({row.kind}) is not a race event")
    return found


def record(
    session: Session,
    kind: RunEvent | BoardEvent | RaceEvent,
    *,
    run_id: uuid.UUID | None = None,
    suite_id: int | None = None,
    agent_version_id: uuid.UUID | None = None,
    payload: Payload | None = None,
    at: datetime | None = None,
) -> None:
    """Append an event to the log in the caller's transaction (it exists only if the change commits).

    ``at`` is the time of the change (the service's ``now``), so replayed or simulated histories
    carry their own clock. The row is written when the transaction commits, with every other event
    it recorded, in one INSERT (``_write_pending``): an ORM instance per event cost the validator's
    heartbeat more Python than its statements. So a transaction does not read back its own events.
    """
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING, [])
    pending.append(
        {
            "topic": TOPICS[type(kind)],
            "kind": str(kind),
            "run_id": run_id,
            "suite_id": suite_id,
            "agent_version_id": agent_version_id,
            "payload": payload.to_json() if payload is not None else None,
            "created_at": at or utcnow(),
        }
    )
    session.info["oro_events"] = True  # Database.session calls its on_events once this commits


_PENDING = "oro_pending_events"
_INSERT = Event.__table__.insert()  # type: ignore[attr-defined]
# On PostgreSQL the INSERT also tells the LISTENing processes, in the same statement (one round trip
# less per write than a NOTIFY of its own). A notification is delivered when (and only if) its
# transaction commits, once per transaction however many rows asked for it (PostgreSQL folds
# identical notifications of one transaction).
_INSERT_NOTIFYING = _INSERT.returning(func.pg_notify(NOTIFY_CHANNEL, ""))


@event.listens_for(OrmSession, "before_commit")
def _write_pending(session: OrmSession) -> None:
    """Write the transaction's recorded events in one INSERT as it commits (a savepoint's commit
    leaves them to the transaction's), and on PostgreSQL tell the LISTENing processes."""
    if session.in_nested_transaction() or not session.info.get(_PENDING):
        return
    rows = session.info.pop(_PENDING)
    postgresql = session.get_bind().dialect.name == "postgresql"
    session.execute(_INSERT_NOTIFYING if postgresql else _INSERT, rows)


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_pending(session: OrmSession, transaction: SessionTransaction) -> None:
    """A rolled-back transaction's events are never written."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


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
    return session.exec(select(Event.id).order_by(col(Event.id).desc()).limit(1)).first() or 0
