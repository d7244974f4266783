"""Nonces and rate-limit entries kept in the database (see ``oro_graph.models.sharedstate``).

Nonces live here always when several processes share state: the primary key on (hotkey, nonce)
makes each single-use across processes, and nothing is lost when Redis restarts. Rate-limit
entries come here only while Redis is unreachable: one row per hit, counted over the moving
window under a per-key lock (an advisory lock on PostgreSQL, the write transaction on SQLite), so
processes share one budget. Expired rows of both tables are pruned by the callers now and then.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, text
from sqlmodel import Session

from oro_graph.db import writes
from oro_graph.models import RateLimitHit, UsedNonce

# Text, not the dialects' ``insert().on_conflict_do_update()``: SQLAlchemy has no cache key for those,
# so it compiled this statement on every signed write. Both databases read the same upsert.
_CLAIM_NONCE = text(
    "INSERT INTO usednonce (hotkey, nonce, expires_at) VALUES (:hotkey, :nonce, :expires_at)"
    " ON CONFLICT (hotkey, nonce) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE usednonce.expires_at <= :now RETURNING nonce"
)


@writes
def claim_nonce(session: Session, hotkey: str, nonce: str, *, now: float, expires_at: float) -> bool:
    """Record (hotkey, nonce) until ``expires_at``; False when it is recorded and not yet expired.

    One statement (it runs in every signed write's own transaction, ``auth.call_signed``): the insert,
    or, over an expired row of the same nonce (no longer a replay), its renewal. Of two transactions
    inserting the same nonce at once, one writes a row (and gets it back) and the other, after waiting
    for it, finds it unexpired and writes nothing."""
    values = {"hotkey": hotkey, "nonce": nonce, "expires_at": expires_at, "now": now}
    return session.execute(_CLAIM_NONCE, values).first() is not None


@writes
def prune_nonces(session: Session, *, now: float) -> int:
    result = session.execute(delete(UsedNonce).where(UsedNonce.expires_at <= now))  # type: ignore[arg-type]
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _lock_key(session: Session, key: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 7250116))"), {"key": key})


def _window(session: Session, key: str, since: float) -> tuple[int, float | None]:
    total, oldest = session.execute(
        select(func.coalesce(func.sum(RateLimitHit.amount), 0), func.min(RateLimitHit.at)).where(
            RateLimitHit.key == key,  # type: ignore[arg-type]
            RateLimitHit.at > since,  # type: ignore[arg-type]
        )
    ).one()
    return int(total), oldest


@writes
def acquire_entry(session: Session, key: str, limit: int, expiry: int, amount: int, *, now: float) -> bool:
    """Moving window: take ``amount`` if the last ``expiry`` seconds hold at most ``limit - amount``."""
    if amount > limit:
        return False
    _lock_key(session, key)
    used, _ = _window(session, key, now - expiry)
    if used + amount > limit:
        return False
    session.add(RateLimitHit(key=key, at=now, expires_at=now + expiry, amount=amount))
    return True


def moving_window(session: Session, key: str, expiry: int, *, now: float) -> tuple[float, int]:
    """(start of the window, entries in it), as ``limits`` storages answer it."""
    used, oldest = _window(session, key, now - expiry)
    return (oldest if oldest is not None else now), used


@writes
def incr(session: Session, key: str, expiry: int, amount: int, *, now: float) -> int:
    """Fixed window: add ``amount`` to the counter that started with the key's oldest live row."""
    _lock_key(session, key)
    live = select(func.min(RateLimitHit.expires_at)).where(
        RateLimitHit.key == key,  # type: ignore[arg-type]
        RateLimitHit.expires_at > now,  # type: ignore[arg-type]
    )
    ends = session.execute(live).scalar_one()
    session.add(RateLimitHit(key=key, at=now, expires_at=ends or now + expiry, amount=amount))
    session.flush()
    return counter(session, key, now=now)


def counter(session: Session, key: str, *, now: float) -> int:
    value = session.execute(
        select(func.coalesce(func.sum(RateLimitHit.amount), 0)).where(
            RateLimitHit.key == key,  # type: ignore[arg-type]
            RateLimitHit.expires_at > now,  # type: ignore[arg-type]
        )
    ).scalar_one()
    return int(value)


def expiry(session: Session, key: str, *, now: float) -> float:
    ends = session.execute(
        select(func.min(RateLimitHit.expires_at)).where(
            RateLimitHit.key == key,  # type: ignore[arg-type]
            RateLimitHit.expires_at > now,  # type: ignore[arg-type]
        )
    ).scalar_one()
    return float(ends) if ends is not None else now


@writes
def clear(session: Session, key: str | None = None) -> int:
    statement = delete(RateLimitHit)
    if key is not None:
        statement = statement.where(RateLimitHit.key == key)  # type: ignore[arg-type]
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


@writes
def prune_rate_limits(session: Session, *, now: float) -> int:
    result = session.execute(delete(RateLimitHit).where(RateLimitHit.expires_at <= now))  # type: ignore[arg-type]
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
