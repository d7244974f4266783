"""Redis for the state several server processes share, behind one circuit breaker per process.

Every use of Redis in a server process (the data version the response caches key on, the
rate-limit counters) goes through one ``Breaker``: the first call that fails or times out opens it,
and for ``ORO_REDIS_RETRY_SECONDS`` nothing waits on Redis again; callers get ``RedisUnavailable``
at once and use their fallback (the database for rate-limit counters, no caching for the data
version). After that pause a single call tries Redis again (the others keep falling back while it
does); its success closes the breaker. So a hung Redis costs one timeout per pause, not one per
request.

The **epoch** (``oro:epoch``) tells whether Redis still holds what was written to it: a random,
time-prefixed value set once, kept with the counters. A Redis restarted without persistence, a
``FLUSHDB`` or a failover to a replica that never had it loses the key, and the next caller sets a
new one, never seen before. Anything keyed on a Redis counter (the data version; later, one version
per dependency) puts the epoch beside the counter, so a counter that started again from 0 never
repeats an old version.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from oro_graph.observability import REDIS_DEGRADED, REDIS_OUTAGES

log = logging.getLogger("oro_graph.redis")

T = TypeVar("T")
EPOCH_KEY = "oro:epoch"

# Set the epoch unless one is there; return the one that is.
ENSURE_EPOCH = """
local e = redis.call('GET', KEYS[1])
if e then return e end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""
# Replace the epoch only if it is still the one the caller saw (a counter went backwards under it).
REPLACE_EPOCH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1])
"""


class RedisUnavailable(Exception):
    """Redis did not answer (or the breaker is open): use the fallback."""


def new_epoch() -> str:
    """Unix seconds, then 48 random bits: never the same twice, and later epochs sort later."""
    return f"{int(time.time()):011d}-{secrets.token_hex(6)}"


class Breaker:
    """Closed (use Redis) or open (do not, until ``retry_seconds`` after the last failure)."""

    def __init__(
        self, retry_seconds: float, *, clock: Callable[[], float] = time.monotonic, metered: bool = False
    ) -> None:
        """``metered``: the process's own breaker, whose state the metrics report."""
        self.retry_seconds = retry_seconds
        self.metered = metered
        self._clock = clock
        self._lock = threading.Lock()
        self._open = False
        self._retry_at = 0.0
        self._probing = False
        self.trips = 0  # how many times Redis was found unreachable

    def allow(self) -> bool:
        """May this call use Redis? While open, one call per pause is let through as the probe."""
        with self._lock:
            if not self._open:
                return True
            if self._probing or self._clock() < self._retry_at:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            if self._open:
                log.warning("Redis answers again; shared state is back in Redis")
                if self.metered:
                    REDIS_DEGRADED.set(0)
            self._open = self._probing = False

    def failed(self, what: str, exc: BaseException | None = None) -> None:
        with self._lock:
            if not self._open:
                self.trips += 1
                if self.metered:
                    REDIS_DEGRADED.set(1)
                    REDIS_OUTAGES.inc()
                log.warning(
                    "Redis unreachable (%s: %s); using the fallbacks for %.0f s before trying again",
                    what,
                    exc,
                    self.retry_seconds,
                )
            self._open = True
            self._probing = False
            self._retry_at = self._clock() + self.retry_seconds

    def release(self) -> None:
        """A call ended with neither verdict (a bug, not an outage): let the next call probe."""
        with self._lock:
            self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open


class RedisLink:
    """A Redis client with short timeouts and no retries, used only through ``run``."""

    def __init__(self, client: Any, breaker: Breaker) -> None:
        self.client = client
        self.breaker = breaker
        self._ensure = client.register_script(ENSURE_EPOCH)
        self._replace = client.register_script(REPLACE_EPOCH)

    @classmethod
    def from_url(cls, url: str, *, timeout: float, breaker: Breaker) -> RedisLink:
        return cls(redis_client(url, timeout=timeout), breaker)

    def run(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn(client)``, or ``RedisUnavailable`` at once while the breaker is open."""
        import redis

        if not self.breaker.allow():
            raise RedisUnavailable(what)
        try:
            result = fn(self.client)
        except redis.RedisError as exc:  # refused, timed out, loading, read-only replica...
            self.breaker.failed(what, exc)
            raise RedisUnavailable(what) from exc
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.succeeded()
        return result

    def ping(self) -> bool:
        try:
            self.run("ping", lambda client: client.ping())
        except RedisUnavailable:
            return False
        return True

    def ensure_epoch(self, client: Any) -> str:
        """The current epoch, setting a new one if Redis has none (inside ``run``)."""
        return _text(self._ensure(keys=[EPOCH_KEY], args=[new_epoch()], client=client))

    def replace_epoch(self, client: Any, seen: str) -> str:
        """A new epoch unless another process replaced ``seen`` already (inside ``run``)."""
        return _text(self._replace(keys=[EPOCH_KEY], args=[seen, new_epoch()], client=client))

    def close(self) -> None:
        self.client.close()


def redis_client(url: str, *, timeout: float) -> Any:
    """A Redis client that gives up after ``timeout`` seconds, without retries (callers fall back)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
