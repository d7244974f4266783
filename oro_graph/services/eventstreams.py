"""graphql-sse single-connection streams, shared by every server process (``models.EventStream*``).

``PUT /graphql`` reserves a stream (a token) in any process; the ``GET`` that opens it may reach
another, which then holds it; each operation ``POST``ed with the token and each ``DELETE`` may reach
a third. So the reservation, the operation ids in use and the requests for the holder are rows
here, and the holder takes its messages (``take``), woken by the event notifier (PostgreSQL
LISTEN/NOTIFY, Redis pub/sub, or this process's commits) or its own timer.

Rules: a reservation nobody opened is forgotten after ``reserve_seconds``; an open one lives while
its holder renews it (a process that died lets it lapse); one stream per reservation; an
operation id is unique on its stream until the operation completes; at most ``max_operations``
run on a stream, and at most ``max_streams`` reservations exist at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from oro_graph.db import writes
from oro_graph.models import EventStream, EventStreamMessage, EventStreamOperation
from oro_graph.services.events import NOTIFY_CHANNEL


class StreamRefused(Exception):
    """A request on a stream that cannot be served; ``status`` is the HTTP status graphql-sse uses."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _live(token: str, now: float) -> Any:
    return select(EventStream).where(col(EventStream.token) == token, col(EventStream.expires_at) > now)


def _wake(session: Session) -> None:
    """Wake the holder, wherever it runs, once this transaction commits (see ``oro_graph.notify``)."""
    if not session.info.get("oro_events"):
        session.info["oro_events"] = True
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


@writes
def reserve(session: Session, token: str, *, now: float, expires_at: float, max_streams: int) -> None:
    """A new reservation; ServiceUnavailable when ``max_streams`` are reserved already."""
    prune(session, now=now)
    reserved = session.execute(select(func.count()).select_from(EventStream)).scalar_one()
    if reserved >= max_streams:
        raise StreamRefused(503, "too many open event streams; try again later")
    session.add(EventStream(token=token, opened=False, expires_at=expires_at))


@writes
def open_stream(session: Session, token: str, *, now: float, expires_at: float) -> None:
    """Take the stream for this process: NotFound if unknown or lapsed, Conflict if already open."""
    taken = session.execute(
        update(EventStream)
        .where(
            col(EventStream.token) == token,
            col(EventStream.expires_at) > now,
            col(EventStream.opened).is_(False),
        )
        .values(opened=True, expires_at=expires_at)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return
    if session.execute(_live(token, now)).first() is None:
        raise StreamRefused(404, "no such event stream: make a reservation with PUT /graphql first")
    raise StreamRefused(409, "this event stream is already open")


@writes
def submit(
    session: Session,
    token: str,
    operation_id: str,
    request: dict[str, Any],
    *,
    now: float,
    max_operations: int,
) -> None:
    """Queue an operation for the stream's holder (NotFound, Conflict on a running id, RateLimited)."""
    if session.execute(_live(token, now).with_for_update()).first() is None:
        raise StreamRefused(404, "no such event stream: make a reservation with PUT /graphql first")
    running = session.execute(
        select(func.count()).select_from(EventStreamOperation).where(col(EventStreamOperation.token) == token)
    ).scalar_one()
    if running >= max_operations:
        raise StreamRefused(429, f"at most {max_operations} operations per stream")
    # ON CONFLICT DO NOTHING ... RETURNING: of two requests with the same id, one gets the row back.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = session.execute(
        insert(EventStreamOperation)
        .values(token=token, operation_id=operation_id)
        .on_conflict_do_nothing()
        .returning(col(EventStreamOperation.operation_id))
    ).first()
    if added is None:
        raise StreamRefused(409, f"operation {operation_id!r} is already running on this stream")
    body = json.dumps({"run": operation_id, "request": request})
    session.add(EventStreamMessage(token=token, body=body))
    _wake(session)


@writes
def stop(session: Session, token: str, operation_id: str, *, now: float) -> None:
    """Ask the holder to stop an operation (NotFound when the stream or the operation is not there)."""
    if session.execute(_live(token, now)).first() is None:
        raise StreamRefused(404, "no such event stream: make a reservation with PUT /graphql first")
    gone = session.execute(
        delete(EventStreamOperation).where(
            col(EventStreamOperation.token) == token, col(EventStreamOperation.operation_id) == operation_id
        )
    )
    if not gone.rowcount:  # type: ignore[attr-defined]
        raise StreamRefused(404, "no such operation on this stream (`operationId` in the URL)")
    session.add(EventStreamMessage(token=token, body=json.dumps({"stop": operation_id})))
    _wake(session)


def waiting(session: Session, tokens: Sequence[str]) -> bool:
    """Whether any message waits for these streams (a read: the holder's frequent look)."""
    if not tokens:
        return False
    found = session.execute(
        select(col(EventStreamMessage.id)).where(col(EventStreamMessage.token).in_(tokens)).limit(1)
    )
    return found.first() is not None


@writes
def take(
    session: Session, tokens: Sequence[str], *, renew_until: float | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The messages waiting for these streams, oldest first, removed as they are taken; with
    ``renew_until``, the holder's reservations are renewed to then."""
    if not tokens:
        return []
    if renew_until is not None:
        session.execute(
            update(EventStream).where(col(EventStream.token).in_(tokens)).values(expires_at=renew_until)
        )
    rows = session.execute(
        select(col(EventStreamMessage.id), col(EventStreamMessage.token), col(EventStreamMessage.body))
        .where(col(EventStreamMessage.token).in_(tokens))
        .order_by(col(EventStreamMessage.id))
    ).all()
    if rows:
        session.execute(
            delete(EventStreamMessage).where(col(EventStreamMessage.id).in_([r.id for r in rows]))
        )
    return [(r.token, json.loads(r.body)) for r in rows]


@writes
def finish(session: Session, token: str, operation_id: str) -> None:
    """An operation completed: its id may be used again."""
    session.execute(
        delete(EventStreamOperation).where(
            col(EventStreamOperation.token) == token, col(EventStreamOperation.operation_id) == operation_id
        )
    )


@writes
def close(session: Session, token: str) -> None:
    """The stream ended (its client went away): the reservation and everything on it go."""
    for model in (EventStreamMessage, EventStreamOperation, EventStream):
        session.execute(delete(model).where(col(model.token) == token))


@writes
def prune(session: Session, *, now: float) -> None:
    """Forget lapsed reservations (never opened in time, or their holder died) and what was on them."""
    lapsed = select(col(EventStream.token)).where(col(EventStream.expires_at) <= now)
    for model in (EventStreamMessage, EventStreamOperation):
        session.execute(delete(model).where(col(model.token).in_(lapsed)))
    session.execute(delete(EventStream).where(col(EventStream.expires_at) <= now))
