"""Subscribers wake when events commit, also when another process (another engine) commits them."""

import asyncio

import pytest

from oro_graph.db import Database
from oro_graph.notify import Notifier, _publish
from oro_graph.services import events


def _record(db: Database) -> None:
    def write(session):
        events.record(session, events.BoardEvent.TOP_CHANGED, suite_id=1)

    write.__oro_writes__ = True  # type: ignore[attr-defined]
    db.call(write)


async def _woken_by(listener_db: Database, writer_db: Database, redis_url: str | None = None) -> bool:
    notifier = Notifier()
    await notifier.start(listener_db, redis_url=redis_url)
    await asyncio.wait_for(notifier.listening.wait(), 60)  # LISTEN / SUBSCRIBE confirmed
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
            other.on_events.append(
                lambda: _publish(uses_redis)
            )  # what the other process's Notifier registers
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


def test_waiters_cancelled_amid_wake_ups_and_timeouts_leave_the_notifier_working(runtime):
    # given many subscribers waiting with short timeouts, as the clients of a busy server do
    async def scenario() -> tuple[list[BaseException], bool]:
        notifier = Notifier()
        await notifier.start(runtime.db)
        try:
            failures: list[BaseException] = []
            for round_ in range(100):
                waiters = [asyncio.create_task(notifier.wait(timeout=0.001 * (i % 3))) for i in range(20)]
                await asyncio.sleep(0.001 * (round_ % 3))
                # when wake-ups, timeouts and cancellations land together, each waiter cancelled twice
                # (a client leaving while its server shuts the subscription down)
                notifier.poke_threadsafe()
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.sleep(0)
                for waiter in waiters:
                    waiter.cancel()
                results = await asyncio.gather(*waiters, return_exceptions=True)
                failures += [
                    r
                    for r in results
                    if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
                ]
            # then nothing but cancellations was raised, and a new waiter is still woken
            waiting = asyncio.create_task(notifier.wait(timeout=5))
            await asyncio.sleep(0.01)
            notifier.poke_threadsafe()
            return failures, await asyncio.wait_for(waiting, 10)
        finally:
            await notifier.stop()

    failures, woken = asyncio.run(scenario())
    assert failures == [] and woken
