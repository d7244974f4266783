"""The lock order, in code rather than prose.

Write transactions take row locks (``SELECT ... FOR UPDATE``, a bulk UPDATE) and advisory locks in
one global order, so no two transactions wait on each other in a cycle (PostgreSQL; SQLite has one
writer at a time, but the order is checked there too, so a test on either database catches a new
path that breaks it). Every service announces a lock with ``take`` just before the statement that
takes it; ``take`` raises ``LockOrderViolation`` when the transaction already holds a lock ranked
after it. Taking again a lock the transaction holds waits for nobody and is allowed.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import IntEnum

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

_HELD = "oro_locks"


class Lock(IntEnum):
    """Every lock a write transaction may take, ranked in the order they must be taken."""

    SCHEDULER_LEASE = 10  # a job's lease row (races.scheduler.take_lease): first in the job's transaction
    MINER = 20  # a miner's row: one submission at a time (agents.submit_agent)
    VALIDATOR_STATE = 30  # a validator's row: the first lock of every validator call (evaluations.lease)
    RUN = 40  # an evaluation run's row (heartbeat, progress, completion, release, lease expiry)
    RACE = 50  # a race's row: every transition of the race, and a race run's completion
    RACE_OPENERS = 55  # advisory: one opener of a race at a time (races.cycle.open_race)
    WORK_ITEM = 60  # a work item's row (a claim takes it with SKIP LOCKED first)
    SELECTION = 70  # a miner's race selection (races.pins)
    SUITE_BOARD = 80  # advisory: the top agent of one suite (leaderboard.lock_suite_board)


class LockOrderViolation(RuntimeError):
    """A transaction asked for a lock ranked before one it holds: a deadlock waiting to happen."""


def holds(session: Session, lock: Lock, key: Hashable = None) -> bool:
    """Whether this transaction took ``lock`` on ``key`` already (and so holds it until it ends)."""
    return key in session.info.get(_HELD, {}).get(lock, ())


def take(session: Session, lock: Lock, key: Hashable = None) -> None:
    """Record that this transaction takes ``lock`` on ``key`` (a row's id; None for a whole kind),
    refusing one that would break the order."""
    held: dict[Lock, set[Hashable]] = session.info.setdefault(_HELD, {})
    if key in held.get(lock, ()):
        return
    later = sorted(rank for rank in held if rank > lock)
    if later:
        names = ", ".join(rank.name for rank in later)
        raise LockOrderViolation(
            f"{lock.name} taken after {names}: locks are taken in the order of locks.Lock"
        )
    held.setdefault(lock, set()).add(key)


@event.listens_for(OrmSession, "after_transaction_end")
def _released(session: OrmSession, transaction: SessionTransaction) -> None:
    """A transaction's locks end with it (a savepoint's end releases none)."""
    if transaction.parent is None:
        session.info.pop(_HELD, None)
