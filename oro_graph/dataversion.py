"""A version that changes whenever committed data changes: what response caches key on.

Every commit that wrote rows bumps it (the engine notices INSERT/UPDATE/DELETE/COPY statements).
With Redis it is one shared counter (INCR) for every server process, read together with the
epoch (``oro_graph.redislink``) in one script: the version is ``redis:{epoch}:{counter}``. When
Redis loses its keys (a restart without persistence, ``FLUSHDB``, a failover to a replica that
lagged) the counter starts again from 0 under a new epoch, so no version is ever repeated and no
answer cached before a write is served after it. A counter this process sees go backwards under
the same epoch (a replica that lagged but kept the epoch) gets a new epoch too.

Without Redis it lives in this process, which sees only this process's writes: caches then also
expire entries after a short TTL, for writes made elsewhere (a CLI command on the same SQLite file).

Reads sit on the path of every cacheable request, so Redis trouble must cost little: they go
through the process's breaker (one timeout, then no Redis for a pause; meanwhile the version is
unknown and nothing is cached or served from cache). After any failure the next successful contact
bumps the counter first: a write made during the outage, here or in a process that could not say
so, must not leave answers cached before the outage looking current.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from oro_graph.redislink import EPOCH_KEY, Breaker, RedisLink, RedisUnavailable

KEY = "oro:data_version"
RETRY_AFTER = 5.0  # the pause of a breaker made here for a bare client (tests, tools)

# KEYS: epoch, counter. ARGV[1] = "1" to bump. Returns false when Redis has no epoch.
READ = """
local e = redis.call('GET', KEYS[1])
if not e then return false end
local v
if ARGV[1] == '1' then v = redis.call('INCR', KEYS[2]) else v = redis.call('GET', KEYS[2]) or '0' end
return {e, tostring(v)}
"""


class DataVersion:
    def __init__(self, redis: RedisLink | Any | None = None) -> None:
        if redis is not None and not isinstance(redis, RedisLink):
            redis = RedisLink(redis, Breaker(RETRY_AFTER))  # a bare client: a breaker of its own
        self._link: RedisLink | None = redis
        self._script = redis.client.register_script(READ) if redis is not None else None
        self._local = itertools.count(1)
        self._value = 0
        self._lock = threading.Lock()
        self._unsent_bumps = False
        self._seen: tuple[str, int] = ("", 0)  # the highest (epoch, counter) this process read

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    @property
    def shared(self) -> bool:
        return self._link is not None

    def _exchange(self, bump: bool) -> tuple[str, int]:
        """(epoch, counter) from Redis, bumping first if asked; a lost epoch is replaced."""
        assert self._link is not None and self._script is not None
        link, script = self._link, self._script

        def call(client: Any) -> tuple[str, int]:
            for _ in range(2):
                answer = script(keys=[EPOCH_KEY, KEY], args=["1" if bump else "0"], client=client)
                if answer:
                    epoch, value = (part.decode() if isinstance(part, bytes) else part for part in answer)
                    return epoch, int(value)
                link.ensure_epoch(client)  # Redis lost its keys: versions go on under a new epoch
            raise RuntimeError("the epoch vanished twice in a row")

        epoch, value = link.run("the data version", call)
        seen_epoch, seen_value = self._seen
        if epoch == seen_epoch and value < seen_value:  # went backwards without losing the epoch
            epoch = link.run("the data version", lambda client: link.replace_epoch(client, seen_epoch))
            self._unsent_bumps = True
        self._seen = (epoch, value)
        return epoch, value

    def bump(self) -> None:
        with self._lock:
            self._value = next(self._local)
        if self._link is None:
            return
        self._unsent_bumps = True
        try:
            self._exchange(bump=True)
            self._unsent_bumps = False
        except RedisUnavailable:
            pass  # sent at the next successful contact

    def current(self) -> str | None:
        """The version to key on, or None when it cannot be known (then nothing may be cached)."""
        if self._link is None:
            return f"local:{self._value}"
        try:
            if self._unsent_bumps:
                self._exchange(bump=True)
                self._unsent_bumps = False
            epoch, value = self._exchange(bump=False)
        except RedisUnavailable:
            self._unsent_bumps = True  # something may be written meanwhile, here or elsewhere
            return None
        return f"redis:{epoch}:{value}"
