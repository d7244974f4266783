"""Request budgets shared by both surfaces: ORO_RATE_LIMIT_PER_MINUTE per client address and
ORO_SUBMIT_RATE_LIMIT per hotkey on submissions.

Counters live in Redis when ORO_REDIS_URL is set, so every server process draws on the same
budget; in process otherwise. A counter store outage lets requests through (logged): a limit
protects capacity, it is not a security boundary like the nonce store, which fails closed.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

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
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                # Fail open quickly: with a hung Redis every request otherwise waited ~5 s here.
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            if settings.redis_url
            else MemoryStorage()
        )
        return cls(
            storage, per_client=RateLimitItemPerMinute(settings.rate_limit_per_minute), per_submitter=submit
        )

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one request; None if it is within budget, else the seconds until it would be."""
        try:
            if await self._limiter.hit(item, *identifiers):
                return None
            stats = await self._limiter.get_window_stats(item, *identifiers)
        except StorageError:
            log.warning("rate-limit store unavailable; letting the request through", exc_info=True)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def hit_client(self, address: str) -> int | None:
        return await self._hit(self.per_client, "client", address)

    async def hit_submitter(self, hotkey: str) -> int | None:
        return await self._hit(self.per_submitter, "submit", hotkey)
