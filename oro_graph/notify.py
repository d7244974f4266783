"""Wake-ups for subscribers when new events are committed, in this process and in the others.

The event log in the database is the source of truth; a notifier only shortens the wait. With
PostgreSQL every process LISTENs on the channel the writers NOTIFY at commit; with Redis (and
SQLite) writers publish after commit; otherwise commits in this process wake local subscribers.
Subscribers also re-read on a timer, so a lost notification delays an event, never drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from oro_graph.db import Database
from oro_graph.redislink import RedisLink, RedisUnavailable
from oro_graph.services.events import NOTIFY_CHANNEL

log = logging.getLogger("oro_graph.notify")


class Notifier:
    """Broadcast 'something new' to every waiting subscriber of this process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set once, then replaced: a waiter holds the event of its moment, and a poke sets it. No lock,
        # so a waiter cancelled at any point (a client leaving a subscription) leaves nothing behind;
        # an asyncio.Condition under wait_for could be left unacquired ("Lock is not acquired").
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # Set while commits in other processes reach this one (LISTEN or SUBSCRIBE confirmed; at once
        # when only this process's commits count): what a test waits for before writing elsewhere.
        self.listening = asyncio.Event()

    async def start(
        self, db: Database, *, redis_url: str | None = None, link: RedisLink | None = None
    ) -> None:
        """``link``: publish through the process's Redis breaker (a hung Redis then costs the
        writers one timeout, not one per commit)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        db.on_events.append(self.poke_threadsafe)
        if db.engine.dialect.name == "postgresql":
            self._task = asyncio.create_task(self._listen_postgres(db))
        elif redis_url:
            if link is not None:
                db.on_events.append(lambda: _publish_through(link))
            else:
                db.on_events.append(lambda: _publish(redis_url))
            self._task = asyncio.create_task(self._listen_redis(redis_url))
        else:
            self.listening.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def poke_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._poke)

    def _poke(self) -> None:
        """Wake every current waiter (on the loop's thread)."""
        if self._event is not None:
            woken, self._event = self._event, asyncio.Event()
            woken.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a wake-up; True if poked, False on timeout (callers re-read either way)."""
        if self._event is None:
            await asyncio.sleep(timeout)
            return False
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def _listen_postgres(self, db: Database) -> None:
        import psycopg

        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening.set()
                    async for _ in conn.notifies():
                        self._poke()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away: subscribers fall back to the timer meanwhile
                self.listening.clear()
                log.warning("LISTEN connection lost; retrying in 2 s", exc_info=True)
                await asyncio.sleep(2)

    async def _listen_redis(self, url: str) -> None:
        import redis.asyncio as aredis

        while True:
            try:
                client: Any = aredis.Redis.from_url(url)
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(NOTIFY_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._poke()
                        elif message.get("type") == "subscribe":  # Redis confirmed the subscription
                            self.listening.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.listening.clear()
                log.warning("Redis subscription lost; retrying in 2 s", exc_info=True)
                await asyncio.sleep(2)


def _publish_through(link: RedisLink) -> None:
    try:
        link.run("publish an event wake-up", lambda client: client.publish(NOTIFY_CHANNEL, b"1"))
    except RedisUnavailable:
        pass  # subscribers re-read on their timer; the breaker logged the outage once


_publishers: dict[str, Any] = {}


def _publish(url: str) -> None:
    import redis

    try:
        client = _publishers.get(url)
        if client is None:
            client = _publishers[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        client.publish(NOTIFY_CHANNEL, b"1")
    except Exception:  # a missed wake-up only delays delivery until the next timed re-read
        log.warning("could not publish an event wake-up to Redis", exc_info=True)
