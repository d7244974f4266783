"""Waiting, in a test, until some PostgreSQL session waits for a row lock."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.engine import Engine


def wait_for_a_lock_wait(engine: Engine, *, seconds: float = 15.0, what: str = "a row lock") -> None:
    """Return once a session waits on a lock; AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError(f"nobody waited for {what}")
