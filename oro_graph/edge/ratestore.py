"""Where rate-limit counters live: Redis, or the database while Redis is unreachable.

``FailoverStorage`` is a ``limits`` storage (so any of its strategies can use it) that asks Redis
while the process's breaker (``oro_graph.redislink.Breaker``) is closed and the database while it
is open, and goes back to Redis when a probe finds it again. Every server process shares both, so
a client's budget stays one budget across processes in either place; what was counted in one is
not carried to the other, so a switch starts the window afresh (at most one extra budget per
outage). If both fail, ``StorageError`` reaches ``RateLimits``, which lets the request through.

A charge is one call, ``charge`` (take N entries of a moving window if they fit, and say what the
window holds then): in Redis one script, one round trip, where the ``limits`` strategy asks twice
(``acquire_entry``, then ``get_moving_window``); about 0.1 ms of a server's CPU per round trip, and
a cached answer costs about 1 ms in all. The script keeps ``limits``' list layout and logic (the
same keys and entries; a ``MovingWindowRateLimiter`` reads them as its own). A signed write charges two
windows (the client's points, then the hotkey's write budget) in one script too (``charge_both``).

The policy (which keys, limits and costs) is ``oro_graph.edge.ratelimit``'s; this module only stores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from limits.errors import StorageError
from limits.storage import MemoryStorage, MovingWindowSupport, RedisStorage, Storage
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from redis.retry import Retry

from oro_graph.db import Database
from oro_graph.redislink import Breaker

log = logging.getLogger("oro_graph.edge.ratestore")

PRUNE_EVERY = 60.0
# Connections the event loop's Redis client may hold (``LoopCharges``); a charge that finds them all
# busy is asked from a worker thread instead, so a flood of requests never opens a connection each.
LOOP_CONNECTIONS = 16
LOOP_CLIENT_NAME = "oro-graph:loop-charges"

# limits' acquire_moving_window.lua, then its moving_window.lua at the same timestamp: one window.
# Returns {1 if acquired else 0, the oldest entry in the window (or false), entries in the window}.
# The list holds the window's entries, newest first, as limits keeps it. Entries that have left the
# window are removed from its tail here, each once, so the list is the window and a charge costs the
# same whatever the limit: limits' moving_window.lua binary-searches the list with LINDEX, a walk of
# the list at every probe, which cost Redis 64 us a request at the benchmark's 10^8 a minute (a list
# of every request of the last minute; 0.42 of a core at 3,100 cached answers a second).
WINDOW = """
local function window(key, timestamp, limit, expiry, amount)
  local target = timestamp - expiry
  while true do
    local oldest = redis.call('lindex', key, -1)
    if not oldest or tonumber(oldest) >= target then break end
    redis.call('rpop', key)
  end
  local count = redis.call('llen', key)
  local acquired = 0
  if amount <= limit and count + amount <= limit then
    local entries = {}
    for i = 1, amount do entries[i] = timestamp end
    for i = 1, #entries, 5000 do
      redis.call('lpush', key, unpack(entries, i, math.min(i + 4999, #entries)))
    end
    redis.call('expire', key, expiry)
    acquired = 1
    count = count + amount
  end
  if count > 0 then
    return {acquired, redis.call('lindex', key, -1), count}
  end
  return {acquired, false, 0}
end
"""

# One window in one call. KEYS: the counter. ARGV: timestamp, limit, expiry, amount.
CHARGE = (
    WINDOW
    + """
local answer = window(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
-- With KEYS 2-4 (epoch, counter of all writes, tables' counters): the data versions too, read as
-- oro_graph.dataversion reads them (false for the epoch when Redis has none).
if #KEYS == 4 then
  local e = redis.call('GET', KEYS[2])
  answer[4] = e or false
  if e then
    answer[5] = redis.call('GET', KEYS[3]) or '0'
    for _, part in ipairs(redis.call('HGETALL', KEYS[4])) do answer[#answer + 1] = part end
  end
end
return answer
"""
)

# Two windows in one call, the second only if the first acquired (a signed write: the client's
# points, then the hotkey's write budget). KEYS: the two counters. ARGV: timestamp, then limit, expiry
# and amount of each. Returns the first window's three values, then the second's when it was charged.
CHARGE_BOTH = (
    WINDOW
    + """
local timestamp = tonumber(ARGV[1])
local answer = window(KEYS[1], timestamp, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
if answer[1] == 1 then
  local second = window(KEYS[2], timestamp, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
  answer[4], answer[5], answer[6] = second[1], second[2], second[3]
end
return answer
"""
)

Window = tuple[bool, float, int]  # (acquired, start of the window, entries in it)
# What ``charge`` read of the data versions (``DataVersion.snapshot_from`` reads it), or None.
Versions = list[Any] | None


def charge(
    storage: Storage, key: str, limit: int, expiry: int, amount: int, versions: Sequence[str] = ()
) -> tuple[Window, Versions]:
    """Take ``amount`` entries of ``key``'s moving window if they fit; what the window holds then,
    and with ``versions`` (the data version's keys) the data versions, read in the same round trip.

    One call where the storage has one (``ChargingRedisStorage``, ``FailoverStorage``), else the
    two of ``limits``' moving window (the database, this process's memory), without versions."""
    if isinstance(storage, ChargingRedisStorage | FailoverStorage):
        return storage.charge(key, limit, expiry, amount, versions)
    assert isinstance(storage, MovingWindowSupport | MemoryStorage)
    acquired = storage.acquire_entry(key, limit, expiry, amount)
    start, count = storage.get_moving_window(key, limit, expiry)
    return (acquired, float(start), int(count)), None


# One window to charge: (key, limit, expiry, amount).
Ask = tuple[str, int, int, int]


def charge_both(storage: Storage, first: Ask, second: Ask) -> tuple[Window, Window | None]:
    """``charge`` the first window, then the second if the first acquired (None if it did not): in
    Redis one round trip for both (``CHARGE_BOTH``), elsewhere one ``charge`` after the other."""
    if isinstance(storage, ChargingRedisStorage | FailoverStorage):
        return storage.charge_both(first, second)
    window, _ = charge(storage, *first)
    return window, (charge(storage, *second)[0] if window[0] else None)


async def charge_on_loop(
    storage: Storage, key: str, limit: int, expiry: int, amount: int, versions: Sequence[str] = ()
) -> tuple[Window, Versions] | None:
    """``charge`` from the event loop (``LoopCharges``), or None: then ask ``charge`` from a thread."""
    on_loop = storage.loop_charges() if isinstance(storage, FailoverStorage) else None
    return await on_loop.charge(key, limit, expiry, amount, versions) if on_loop is not None else None


async def charge_both_on_loop(
    storage: Storage, first: Ask, second: Ask
) -> tuple[Window, Window | None] | None:
    """``charge_both`` from the event loop, or None: then ask ``charge_both`` from a thread."""
    on_loop = storage.loop_charges() if isinstance(storage, FailoverStorage) else None
    return await on_loop.charge_both(first, second) if on_loop is not None else None


def _window(now: float, acquired: int, oldest: Any, count: int) -> Window:
    """A window as the scripts answer it: no oldest entry means an empty window starting now."""
    if oldest is None or oldest is False:
        return bool(acquired), now, 0
    return bool(acquired), float(oldest), int(count)


class ChargingRedisStorage(RedisStorage):
    """``limits``' Redis storage with ``charge``: acquire and read the window in one round trip."""

    def __init__(self, uri: str, *, key_prefix: str, timeout: float, **options: Any) -> None:
        self.uri, self.timeout = uri, timeout  # for the event loop's client (``LoopCharges``)
        super().__init__(
            uri,
            key_prefix=key_prefix,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **options,
        )

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_charge = self.get_connection().register_script(CHARGE)
        self.lua_charge_both = self.get_connection().register_script(CHARGE_BOTH)

    def charge(
        self, key: str, limit: int, expiry: int, amount: int = 1, versions: Sequence[str] = ()
    ) -> tuple[Window, Versions]:
        now = time.time()
        try:
            answer = self.lua_charge([self.prefixed_key(key), *versions], [now, limit, expiry, amount])
        except self.base_exceptions as exc:
            raise StorageError(exc) from exc
        read = list(answer[3:]) if versions else None
        return _window(now, *answer[:3]), read

    def charge_both(self, first: Ask, second: Ask) -> tuple[Window, Window | None]:
        now = time.time()
        (key, limit, expiry, amount), (key2, limit2, expiry2, amount2) = first, second
        try:
            answer = self.lua_charge_both(
                [self.prefixed_key(key), self.prefixed_key(key2)],
                [now, limit, expiry, amount, limit2, expiry2, amount2],
            )
        except self.base_exceptions as exc:
            raise StorageError(exc) from exc
        return _window(now, *answer[:3]), (_window(now, *answer[3:6]) if len(answer) > 3 else None)


def redis_storage(url: str, *, timeout: float, key_prefix: str) -> ChargingRedisStorage:
    """Counters in Redis: short timeouts and no redis-py retries (the breaker decides what next)."""
    return ChargingRedisStorage(url, key_prefix=key_prefix, timeout=timeout, wrap_exceptions=True)


class LoopCharges:
    """The charge scripts on an asyncio Redis client of one event loop, opened by the app's lifespan
    (``RateLimits.open_loop``): a charge asked from the loop itself, without a worker thread.

    A hop to a worker thread and back is two context switches and a handover of the GIL per request,
    which a busy machine pays dearly for: with the charge asked from the loop, the cached per-version
    page went from 1,839-1,927 to 2,047-2,215 req/s on two processes, each using less CPU
    (``benchmarks/RESULTS.md``). The charges asked in one turn of the loop (requests that arrived
    together) go in one pipeline: one write, one read and one wake-up of Redis for all of them, at
    about a third of the client's CPU per charge for four. A charge goes to the threaded call
    (``FailoverStorage.charge``) instead while the breaker is open (that call probes Redis and falls
    back to the database), when ``LOOP_CONNECTIONS`` pipelines are already waiting for Redis, or
    from another loop. A refused or broken connection opens the
    breaker, as the threaded call's failure would. A timeout does not: the charge is asked again from
    a thread, whose timeout is Redis's alone and trips the breaker if it is real. (A loop held up past
    the timeout while Redis answers still takes the answer, tested; the retry is for whatever else
    could make the loop's timer fire first, and costs at most one point too many.) A hung Redis
    costs its first request two timeouts and every later request none."""

    def __init__(
        self, storage: ChargingRedisStorage, breaker: Breaker, connections: int = LOOP_CONNECTIONS
    ) -> None:
        import redis.asyncio as aredis
        from redis.asyncio.retry import Retry as AsyncRetry

        self.loop = asyncio.get_running_loop()
        self.breaker = breaker
        self.key_prefix = storage.key_prefix
        self.client = aredis.Redis.from_url(
            storage.uri,
            socket_timeout=storage.timeout,
            socket_connect_timeout=storage.timeout,
            retry=AsyncRetry(NoBackoff(), 0),
            max_connections=connections,
            client_name=LOOP_CLIENT_NAME,  # what ``CLIENT LIST`` calls its connections
        )
        self._free = asyncio.Semaphore(connections)  # pipelines waiting for Redis, at most
        self._batch: list[tuple[str, list[str], list[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.answered = 0  # charges Redis answered from the loop
        self.pipelines = 0  # the round trips they took
        self._charge = self.client.register_script(CHARGE)
        self._charge_both = self.client.register_script(CHARGE_BOTH)

    def _key(self, key: str) -> str:
        return f"{self.key_prefix}:{key}"  # as ``RedisStorage.prefixed_key``

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's answer, or None to ask from a worker thread instead. The charges asked in one
        turn of the loop go to Redis together, in one pipeline (``_send``)."""
        if asyncio.get_running_loop() is not self.loop:
            return None
        answer: asyncio.Future[Any] = self.loop.create_future()
        if not self._batch:
            self.loop.call_soon(self._flush)
        self._batch.append((script.sha, keys, args, answer))
        return await answer

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if self._free.locked():  # every connection is waiting for Redis: these go to worker threads
            _settle(batch, [None] * len(batch))
            return
        sending = self.loop.create_task(self._send(batch))
        self._sending.add(sending)  # the loop keeps only a weak reference to a task
        sending.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        answers: list[Any] = [None] * len(batch)
        try:
            async with self._free:
                self.pipelines += 1
                pipe = self.client.pipeline(transaction=False)
                for sha, keys, args, _ in batch:
                    pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
                try:
                    answers = await pipe.execute(raise_on_error=False)
                except (RedisTimeout, TimeoutError):
                    pass  # perhaps only the loop's: the thread's call says (and trips the breaker)
                except (RedisError, OSError) as exc:
                    self.breaker.failed("rate-limit counters", exc)
        finally:
            # An error in its place (NOSCRIPT after Redis lost its scripts) goes to the thread too,
            # whose ``Script`` loads the script again.
            answers = [None if isinstance(a, Exception) else a for a in answers]
            self.answered += sum(a is not None for a in answers)
            _settle(batch, answers)

    async def charge(
        self, key: str, limit: int, expiry: int, amount: int = 1, versions: Sequence[str] = ()
    ) -> tuple[Window, Versions] | None:
        """``ChargingRedisStorage.charge`` from the loop; None to ask from a worker thread."""
        now = time.time()
        answer = await self._run(self._charge, [self._key(key), *versions], [now, limit, expiry, amount])
        if answer is None:
            return None
        return _window(now, *answer[:3]), (list(answer[3:]) if versions else None)

    async def charge_both(self, first: Ask, second: Ask) -> tuple[Window, Window | None] | None:
        """``ChargingRedisStorage.charge_both`` from the loop; None to ask from a worker thread."""
        now = time.time()
        (key, limit, expiry, amount), (key2, limit2, expiry2, amount2) = first, second
        answer = await self._run(
            self._charge_both,
            [self._key(key), self._key(key2)],
            [now, limit, expiry, amount, limit2, expiry2, amount2],
        )
        if answer is None:
            return None
        return _window(now, *answer[:3]), (_window(now, *answer[3:6]) if len(answer) > 3 else None)

    async def aclose(self) -> None:
        await self.client.aclose()


def _settle(batch: list[tuple[str, list[str], list[Any], asyncio.Future[Any]]], answers: list[Any]) -> None:
    for (*_, future), answer in zip(batch, answers, strict=True):
        if not future.done():  # its request may have been cancelled (the client went away)
            future.set_result(answer)


class DatabaseStorage(Storage, MovingWindowSupport):
    """Counters as rows of ``ratelimithit`` (``services.sharedstate``), shared by every process."""

    STORAGE_SCHEME = None

    def __init__(self, db: Database) -> None:
        super().__init__(wrap_exceptions=True)
        self._db = db
        self._next_prune = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return Exception

    def _now(self) -> float:
        from oro_graph.services import sharedstate

        now = time.time()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            self._db.call(sharedstate.prune_rate_limits, now=now)
        return now

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        from oro_graph.services import sharedstate

        return self._db.call(sharedstate.incr, key, int(expiry), amount, now=self._now())

    def get(self, key: str) -> int:
        from oro_graph.services import sharedstate

        return self._db.call(sharedstate.counter, key, now=time.time())

    def get_expiry(self, key: str) -> float:
        from oro_graph.services import sharedstate

        return self._db.call(sharedstate.expiry, key, now=time.time())

    def check(self) -> bool:
        from sqlalchemy import text

        try:
            with self._db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def reset(self) -> int | None:
        from oro_graph.services import sharedstate

        return self._db.call(sharedstate.clear)

    def clear(self, key: str) -> None:
        from oro_graph.services import sharedstate

        self._db.call(sharedstate.clear, key)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        from oro_graph.services import sharedstate

        return self._db.call(sharedstate.acquire_entry, key, limit, int(expiry), amount, now=self._now())

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        from oro_graph.services import sharedstate

        return self._db.call(sharedstate.moving_window, key, int(expiry), now=time.time())


class FailoverStorage(Storage, MovingWindowSupport):
    """Redis while it answers, the database while the breaker is open."""

    STORAGE_SCHEME = None

    def __init__(self, primary: Storage, fallback: Storage, breaker: Breaker) -> None:
        super().__init__(wrap_exceptions=True)
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker
        self.on_loop: LoopCharges | None = None  # while the app's lifespan runs (``open_loop``)

    def open_loop(self) -> None:
        """Charge from the running event loop while Redis answers (``LoopCharges``)."""
        if isinstance(self.primary, ChargingRedisStorage) and self.on_loop is None:
            self.on_loop = LoopCharges(self.primary, self.breaker)

    async def close_loop(self) -> None:
        on_loop, self.on_loop = self.on_loop, None
        if on_loop is not None:
            await on_loop.aclose()

    def loop_charges(self) -> LoopCharges | None:
        """The loop's client, unless the breaker is open: then the threaded call probes and falls back."""
        return None if self.breaker.is_open else self.on_loop

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return Exception

    @property
    def in_fallback(self) -> bool:
        return self.breaker.is_open

    def _call(self, name: str, *args: Any) -> Any:
        return self._guarded(lambda storage: getattr(storage, name)(*args))

    def _guarded(self, work: Callable[[Any], Any], fallback: Callable[[Any], Any] | None = None) -> Any:
        """``work`` on the primary store while the breaker allows it, else ``fallback`` (or ``work``)
        on the in-process store; a storage error opens the breaker."""
        if self.breaker.allow():
            try:
                result = work(self.primary)
            except StorageError as exc:
                self.breaker.failed("rate-limit counters", exc.storage_error)
            except BaseException:
                self.breaker.release()
                raise
            else:
                self.breaker.succeeded()
                return result
        return (fallback or work)(self.fallback)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return int(self._call("incr", key, expiry, amount))

    def get(self, key: str) -> int:
        return int(self._call("get", key))

    def get_expiry(self, key: str) -> float:
        return float(self._call("get_expiry", key))

    def check(self) -> bool:
        return bool(self._call("check"))

    def reset(self) -> int | None:
        self.fallback.reset()
        return self.primary.reset()

    def clear(self, key: str) -> None:
        self._call("clear", key)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return bool(self._call("acquire_entry", key, limit, expiry, amount))

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        start, count = self._call("get_moving_window", key, limit, expiry)
        return float(start), int(count)

    def charge(
        self, key: str, limit: int, expiry: int, amount: int = 1, versions: Sequence[str] = ()
    ) -> tuple[Window, Versions]:
        # The in-process store keeps no data versions: a fallback answer reads none.
        return cast(
            "tuple[Window, Versions]",
            self._guarded(
                lambda storage: charge(storage, key, limit, expiry, amount, versions),
                lambda storage: charge(storage, key, limit, expiry, amount),
            ),
        )

    def charge_both(self, first: Ask, second: Ask) -> tuple[Window, Window | None]:
        return cast(
            "tuple[Window, Window | None]", self._guarded(lambda storage: charge_both(storage, first, second))
        )
