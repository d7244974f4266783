"""One version per table, changed by every committed write to it: what response caches key on.

The engine notes which tables a transaction wrote (``oro_graph.db``) and, once it committed, bumps
each of them. A cached answer keeps the versions of the tables its execution read, as they stood
before it began (``Snapshot.of``), and is served only while all of them are unchanged: a heartbeat
(events, a run's lease, the validator's state) leaves an answer that read none of those valid.

With Redis the versions are shared by every server process: one counter per table in a hash, plus
one counter of all writes (``KEY``), bumped together in one script and read together with the
epoch (``oro_graph.redislink``). When Redis loses its keys (a restart without persistence,
``FLUSHDB``, a failover to a replica that lagged) the counters start again from 0 under a new epoch,
so no version is ever repeated and no answer cached before a write is served after it. A counter of
all writes this process sees go backwards under the same epoch (a replica that lagged but kept the
epoch) gets a new epoch too. The hash holds one field per table and never expires: expiring it
would rewind the counters under the same epoch.

Without Redis the versions live in this process, which sees only this process's writes: caches then
also expire entries after a short TTL, for writes made elsewhere (a CLI command on the same SQLite
file).

Reads sit on the path of every cacheable request, so Redis trouble must cost little: they go
through the process's breaker (one timeout, then no Redis for a pause; meanwhile the versions are
unknown and nothing is cached or served from cache). After any failure the next successful contact
replaces the epoch first: a write made during the outage, here or in a process that could not say
so, must not leave answers cached before the outage looking current.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from oro_graph.redislink import EPOCH_KEY, Breaker, RedisLink, RedisUnavailable

KEY = "oro:data_version"  # the counter of all writes; the tables' counters are in KEY + ":tables"
ANY = "*"  # a write to tables that could not be told: every answer depends on it
RETRY_AFTER = 5.0  # the pause of a breaker made here for a bare client (tests, tools)

# KEYS: epoch, counter, tables hash. ARGV: the tables to bump (none: just read).
# Returns false when Redis has no epoch, else {epoch, counter, field, value, field, value...}.
EXCHANGE = """
local e = redis.call('GET', KEYS[1])
if not e then return false end
local v
if #ARGV > 0 then
  v = redis.call('INCR', KEYS[2])
  for i = 1, #ARGV do redis.call('HINCRBY', KEYS[3], ARGV[i], 1) end
else
  v = redis.call('GET', KEYS[2]) or '0'
end
local answer = {e, tostring(v)}
for _, part in ipairs(redis.call('HGETALL', KEYS[3])) do answer[#answer + 1] = part end
return answer
"""


@dataclass(frozen=True)
class Snapshot:
    """The tables' versions at one moment (``epoch`` tells which counters they come from)."""

    epoch: str
    versions: dict[str, int] = field(default_factory=dict)

    def of(self, tables: Iterable[str]) -> tuple[str, tuple[tuple[str, int], ...]]:
        """What an answer that read ``tables`` is valid under: compare with ``valid``. Every answer
        also depends on ``ANY``, bumped by a write whose tables could not be told."""
        return self.epoch, tuple((t, self.versions.get(t, 0)) for t in sorted({*tables, ANY}))

    def valid(self, deps: tuple[str, tuple[tuple[str, int], ...]]) -> bool:
        epoch, versions = deps
        return epoch == self.epoch and all(self.versions.get(t, 0) == v for t, v in versions)


class DataVersion:
    def __init__(self, redis: RedisLink | Any | None = None) -> None:
        if redis is not None and not isinstance(redis, RedisLink):
            redis = RedisLink(redis, Breaker(RETRY_AFTER))  # a bare client: a breaker of its own
        self._link: RedisLink | None = redis
        self._script = redis.client.register_script(EXCHANGE) if redis is not None else None
        self._local: dict[str, int] = {}
        self._lock = threading.Lock()
        self._lost_contact = False
        self._seen: tuple[str, int] = ("", 0)  # the highest (epoch, counter) this process read
        # The last versions ``snapshot_from`` was given and what it made of them: between two writes
        # every request reads the same ones, and building the same mapping again per cached answer
        # was a twentieth of a cached answer's server time.
        self._last: tuple[list[Any], Snapshot, tuple[str, int]] | None = None

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    @property
    def shared(self) -> bool:
        return self._link is not None

    @property
    def link(self) -> RedisLink | None:
        return self._link

    def _exchange(self, tables: list[str]) -> Snapshot:
        """The versions from Redis, bumping ``tables`` first; a lost epoch is replaced."""
        assert self._link is not None and self._script is not None
        link, script = self._link, self._script

        def call(client: Any) -> tuple[str, int, list[Any]]:
            for _ in range(2):
                answer = script(keys=[EPOCH_KEY, KEY, KEY + ":tables"], args=tables, client=client)
                if answer:
                    return _text(answer[0]), int(answer[1]), list(answer[2:])
                link.ensure_epoch(client)  # Redis lost its keys: versions go on under a new epoch
            raise RuntimeError("the epoch vanished twice in a row")

        epoch, counter, pairs = link.run("the data version", call)
        seen_epoch, seen_counter = self._seen
        if self._lost_contact or (epoch == seen_epoch and counter < seen_counter):
            # Writes may have gone unrecorded (an outage), or the counters went backwards without
            # losing the epoch: no version read before may stand for the data now.
            epoch = link.run("the data version", lambda client: link.replace_epoch(client, epoch))
            self._lost_contact = False
        self._seen = (epoch, counter)
        versions = {_text(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        return Snapshot(epoch, versions)

    def bump(self, tables: Iterable[str] = (ANY,)) -> None:
        """Record a committed write to ``tables``."""
        names = sorted(set(tables))
        if not names:
            return
        if self._link is None:
            with self._lock:
                for name in names:
                    self._local[name] = self._local.get(name, 0) + 1
            return
        try:
            self._exchange(names)
        except RedisUnavailable:
            self._lost_contact = True  # answered at the next successful contact

    def snapshot(self) -> Snapshot | None:
        """The versions to key on, or None when they cannot be known (then nothing may be cached)."""
        if self._link is None:
            with self._lock:
                return Snapshot("local", dict(self._local))
        try:
            return self._exchange([])
        except RedisUnavailable:
            self._lost_contact = True  # something may be written meanwhile, here or elsewhere
            return None

    @property
    def keys(self) -> tuple[str, ...]:
        """Where Redis keeps the versions, for a script that reads them with other work
        (``oro_graph.edge.ratestore.charge``); empty without Redis."""
        return (EPOCH_KEY, KEY, KEY + ":tables") if self._link is not None else ()

    def snapshot_from(self, read: list[Any] | None) -> Snapshot | None:
        """The versions another call read at ``keys`` (its answer's tail: epoch, counter, then
        table and version pairs), or None when they cannot stand for now: nothing was read, Redis
        had no epoch, contact was lost since, or the counter went backwards (``snapshot`` asks
        Redis again and replaces the epoch as it must)."""
        if not read or not read[0] or self._lost_contact:
            return None
        last = self._last
        if last is not None and last[0] == read and last[2] == self._seen:  # nothing newer seen since
            return last[1]
        epoch, counter, pairs = _text(read[0]), int(read[1]), read[2:]
        seen_epoch, seen_counter = self._seen
        if epoch == seen_epoch and counter < seen_counter:
            return None
        self._seen = (epoch, counter)
        snapshot = Snapshot(epoch, {_text(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)})
        self._last = (read, snapshot, self._seen)
        return snapshot

    def current(self) -> str | None:
        """Every table's version in one string (None when unknown): changes with any write."""
        snapshot = self.snapshot()
        if snapshot is None:
            return None
        return f"{snapshot.epoch}:" + ",".join(f"{t}={v}" for t, v in sorted(snapshot.versions.items()))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
