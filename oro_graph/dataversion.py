"""A number that changes whenever committed data changes: what response caches key on.

Every commit that wrote rows bumps it (the engine notices INSERT/UPDATE/DELETE/COPY statements).
With Redis it is one shared counter (INCR) for every server process; without Redis it lives in
this process, which sees only this process's writes: caches then also expire entries after a
short TTL, for writes made elsewhere (a CLI command on the same SQLite file).
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

log = logging.getLogger("oro_graph.dataversion")
KEY = "oro:data_version"


class DataVersion:
    def __init__(self, redis: Any | None = None) -> None:
        self._redis = redis
        self._local = itertools.count(1)
        self._value = 0
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def bump(self) -> None:
        with self._lock:
            self._value = next(self._local)
        if self._redis is not None:
            try:
                self._redis.incr(KEY)
            except Exception:  # caches keyed on the old number may serve it until their TTL runs out
                log.warning("could not bump the data version in Redis", exc_info=True)

    def current(self) -> str | None:
        """The version to key on, or None when it cannot be known (then nothing may be cached)."""
        if self._redis is None:
            return f"local:{self._value}"
        try:
            value = self._redis.get(KEY)
        except Exception:
            return None
        return f"redis:{int(value or 0)}"
