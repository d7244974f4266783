"""Request budgets shared by both surfaces: ORO_RATE_LIMIT_PER_MINUTE per client address and
ORO_SUBMIT_RATE_LIMIT per hotkey on submissions.

Counters live in Redis when ORO_REDIS_URL is set, so every server process draws on the same
budget; in process otherwise. A counter store outage lets requests through (logged): a limit
protects capacity, it is not a security boundary like the nonce store, which fails closed.

Redis is asked from a worker thread with a blocking socket timeout, not from the event loop: a
timeout measured on the loop fires falsely whenever the loop is held up (a large GraphQL page takes
the loop for most of a second), and each false timeout let a request through uncounted.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.concurrency import run_in_threadpool

from oro_graph.observability import RATE_LIMIT_REFUSALS
from oro_graph.settings import Settings

log = logging.getLogger("oro_graph.ratelimit")

KEY_PREFIX = "oro:ratelimit"


class RateLimits:
    def __init__(self, storage: Storage, *, per_client: RateLimitItem, per_submitter: RateLimitItem) -> None:
        self.storage = storage
        self.per_client = per_client
        self.per_submitter = per_submitter
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        submit = parse(settings.submit_rate_limit)  # validated by Settings
        storage: Storage = (
            RedisStorage(
                settings.redis_url,
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                # Fail open quickly: with a hung Redis every request otherwise waited ~5 s here,
                # and redis-py's default retries with backoff would make that seconds again.
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
                retry=Retry(NoBackoff(), 0),
            )
            if settings.redis_url
            else MemoryStorage()
        )
        return cls(
            storage, per_client=RateLimitItemPerMinute(settings.rate_limit_per_minute), per_submitter=submit
        )

    def _count(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one request; None if it is within budget, else the seconds until it would be."""
        try:
            if self._limiter.hit(item, *identifiers):
                return None
            RATE_LIMIT_REFUSALS.labels(identifiers[0]).inc()
            stats = self._limiter.get_window_stats(item, *identifiers)
        except StorageError:
            log.warning("rate-limit store unavailable; letting the request through", exc_info=True)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        if isinstance(self.storage, MemoryStorage):  # no I/O: no reason to leave the loop
            return self._count(item, *identifiers)
        return await run_in_threadpool(self._count, item, *identifiers)

    async def hit_client(self, address: str) -> int | None:
        return await self._hit(self.per_client, "client", address)

    async def hit_submitter(self, hotkey: str) -> int | None:
        return await self._hit(self.per_submitter, "submit", hotkey)
