"""Subscribers wake when events commit, also when another process (another engine) commits them."""

import asyncio

import pytest

from oro_graph.db import Database
from oro_graph.notify import Notifier, _publish
from oro_graph.services import events


def _record(db: Database) -> None:
    def write(session):
        events.record(session, events.BoardEvent.TOP_CHANGED, suite_id=1, payload={})

    write.__oro_writes__ = True  # type: ignore[attr-defined]
    db.call(write)


async def _woken_by(listener_db: Database, writer_db: Database, redis_url: str | None = None) -> bool:
    notifier = Notifier()
    await notifier.start(listener_db, redis_url=redis_url)
    await asyncio.sleep(0.3)  # let LISTEN / SUBSCRIBE settle
    try:
        waiting = asyncio.create_task(notifier.wait(timeout=5))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(_record, writer_db)
        return await waiting
    finally:
        await notifier.stop()


def test_commit_in_this_process_wakes_subscribers(runtime):
    assert asyncio.run(_woken_by(runtime.db, runtime.db))


def test_commit_by_another_process_wakes_subscribers(runtime, redis_url):
    # another process = another engine on the same database; PostgreSQL uses LISTEN/NOTIFY,
    # SQLite needs Redis to carry the wake-up
    other = Database(runtime.settings)
    try:
        uses_redis = None if not runtime.db.is_sqlite else redis_url
        if uses_redis:
            other.on_events.append(lambda: _publish(uses_redis))  # what the other process's Notifier registers
        assert asyncio.run(_woken_by(runtime.db, other, redis_url=uses_redis))
    finally:
        other.dispose()


def test_nothing_committed_means_timeout(runtime):
    async def quiet() -> bool:
        notifier = Notifier()
        await notifier.start(runtime.db)
        try:
            return await notifier.wait(timeout=0.3)
        finally:
            await notifier.stop()

    assert asyncio.run(quiet()) is False


def test_rolled_back_events_wake_nobody(runtime):
    async def run() -> bool:
        notifier = Notifier()
        await notifier.start(runtime.db)
        try:
            waiting = asyncio.create_task(notifier.wait(timeout=0.5))

            def failing(session):
                events.record(session, events.BoardEvent.TOP_CHANGED, suite_id=1)
                raise RuntimeError("boom")

            with pytest.raises(RuntimeError):
                await asyncio.to_thread(runtime.db.call, failing)
            return await waiting
        finally:
            await notifier.stop()

    assert asyncio.run(run()) is False
