"""A number that changes whenever committed data changes: what response caches key on.

Every commit that wrote rows bumps it (the engine notices INSERT/UPDATE/DELETE/COPY statements).
With Redis it is one shared counter (INCR) for every server process; without Redis it lives in
this process, which sees only this process's writes: caches then also expire entries after a
short TTL, for writes made elsewhere (a CLI command on the same SQLite file).

Reads of the shared counter sit on the path of every cacheable request, so Redis trouble must cost
little: the client gives up after ``TIMEOUT`` seconds without retries, and after a failure the
version is unknown (nothing is cached or served from cache) for ``RETRY_AFTER`` seconds without
asking Redis again. A bump that could not be sent is sent at the next successful contact, so
answers cached before an outage are not served after it as if nothing had been written.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

log = logging.getLogger("oro_graph.dataversion")
KEY = "oro:data_version"
TIMEOUT = 0.25
RETRY_AFTER = 5.0


def redis_client(url: str) -> Any:
    """A Redis client for the version: short timeouts, no retries (callers fall back at once)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 0)
    )


class DataVersion:
    def __init__(self, redis: Any | None = None) -> None:
        self._redis = redis
        self._local = itertools.count(1)
        self._value = 0
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._unsent_bumps = False

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def _reachable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, what: str) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER
        log.warning("data version: could not %s in Redis; caches pause for %.0f s", what, RETRY_AFTER)

    def bump(self) -> None:
        with self._lock:
            self._value = next(self._local)
        if self._redis is None:
            return
        self._unsent_bumps = True
        if not self._reachable():
            return  # sent at the next successful contact
        try:
            self._redis.incr(KEY)
            self._unsent_bumps = False
        except Exception:
            self._failed("bump the version")

    def current(self) -> str | None:
        """The version to key on, or None when it cannot be known (then nothing may be cached)."""
        if self._redis is None:
            return f"local:{self._value}"
        if not self._reachable():
            return None
        try:
            if self._unsent_bumps:
                self._redis.incr(KEY)
                self._unsent_bumps = False
            value = self._redis.get(KEY)
        except Exception:
            self._failed("read the version")
            return None
        return f"redis:{int(value or 0)}"
