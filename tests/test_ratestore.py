"""Rate-limit counters in the database while Redis is unreachable: one shared budget across
processes, then back to Redis when it answers again."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter
from sqlmodel import select

from oro_graph.db import Database
from oro_graph.edge.ratelimit import RateLimits
from oro_graph.edge.ratestore import (
    DatabaseStorage,
    FailoverStorage,
    charge,
    charge_both,
    charge_both_on_loop,
    charge_on_loop,
    redis_storage,
)
from oro_graph.models import RateLimitHit
from oro_graph.redislink import Breaker
from oro_graph.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_database_counters_are_one_budget_for_every_process(db: Database) -> None:
    item = RateLimitItemPerMinute(5)
    processes = [MovingWindowRateLimiter(DatabaseStorage(db)) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        admitted = list(pool.map(lambda i: processes[i % 4].hit(item, "client", "198.51.100.7"), range(12)))
    assert admitted.count(True) == 5
    stats = processes[0].get_window_stats(item, "client", "198.51.100.7")
    assert stats.remaining == 0 and stats.reset_time > 0
    assert processes[1].hit(item, "client", "198.51.100.8")  # another client has its own budget
    # A cost larger than one takes that many entries (what cost-based budgets will use).
    assert not processes[2].hit(RateLimitItemPerMinute(3), "client", "203.0.113.1", cost=4)
    assert processes[2].hit(RateLimitItemPerMinute(3), "client", "203.0.113.1", cost=3)


def test_counting_does_not_change_the_data_version(runtime) -> None:  # type: ignore[no-untyped-def]
    before = runtime.data_version.current()
    MovingWindowRateLimiter(DatabaseStorage(runtime.db)).hit(RateLimitItemPerMinute(5), "client", "x")
    assert runtime.data_version.current() == before


def test_counters_move_to_the_database_while_redis_is_down_and_back_when_it_answers(
    db: Database, redis_url: str
) -> None:
    prefix = f"oro:test-ratestore:{uuid.uuid4().hex}"
    clock = Clock()
    breaker = Breaker(5.0, clock=clock)
    storage = FailoverStorage(
        redis_storage(redis_url, timeout=0.5, key_prefix=prefix), DatabaseStorage(db), breaker
    )
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerMinute(3)
    breaker.failed("a test")  # as a timeout would
    assert [limiter.hit(item, "client", "a") for _ in range(4)] == [True, True, True, False]
    with db.session() as session:
        assert len(session.exec(select(RateLimitHit)).all()) == 3
    clock.now += 5.0  # the pause is over: the next call probes Redis and stays there
    assert limiter.hit(item, "client", "b") and not breaker.is_open
    client = redis.Redis.from_url(redis_url)
    assert list(client.scan_iter(f"{prefix}*"))
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_a_refused_redis_falls_back_at_once_and_costs_one_attempt(db: Database) -> None:
    clock = Clock()
    breaker = Breaker(5.0, clock=clock)
    primary = redis_storage("redis://127.0.0.1:1/0", timeout=0.5, key_prefix="oro:test")
    storage = FailoverStorage(primary, DatabaseStorage(db), breaker)
    limiter = MovingWindowRateLimiter(storage)
    assert [limiter.hit(RateLimitItemPerMinute(2), "client", "c") for _ in range(3)] == [True, True, False]
    assert breaker.trips == 1 and breaker.is_open


def test_with_neither_store_the_request_goes_through(tmp_path: Path) -> None:
    unreachable = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/none", data_dir=tmp_path, secret_key="k"
    )
    db = Database(unreachable)
    storage = FailoverStorage(
        redis_storage("redis://127.0.0.1:1/0", timeout=0.5, key_prefix="oro:test"),
        DatabaseStorage(db),
        Breaker(5.0),
    )
    limits = RateLimits.from_settings(unreachable.model_copy(update={"rate_limit_per_minute": 1}), storage)
    assert [asyncio.run(limits.hit_client("192.0.2.1")) for _ in range(3)] == [None, None, None]
    db.dispose()


def test_one_round_trip_charge_counts_as_limits_moving_window_does(redis_url: str) -> None:
    """``charge`` (one script) takes and reports what limits' two calls would, on the same keys."""
    prefix = f"oro:test-charge:{uuid.uuid4().hex}"
    storage = redis_storage(redis_url, timeout=0.5, key_prefix=prefix)
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerMinute(5)
    key, expiry = item.key_for("client", "a"), item.get_expiry()
    answers = [charge(storage, key, 5, expiry, cost)[0] for cost in (2, 2, 2, 1, 6)]
    assert [acquired for acquired, _, _ in answers] == [True, True, False, True, False]
    assert [count for _, _, count in answers] == [2, 4, 4, 5, 5]
    assert limiter.get_window_stats(item, "client", "a").remaining == 0  # limits reads the same entries
    assert not limiter.hit(item, "client", "a")
    start, count = storage.get_moving_window(key, 5, expiry)
    assert count == 5 and abs(start - answers[0][1]) < 1
    assert charge(storage, item.key_for("client", "b"), 5, expiry, 1)[0][::2] == (True, 1)
    client = redis.Redis.from_url(redis_url)
    for found in client.scan_iter(f"{prefix}*"):
        client.delete(found)
    client.close()


def test_a_charge_drops_what_left_the_window_so_its_cost_does_not_grow_with_the_limit(redis_url: str) -> None:
    """Under a limit far above the traffic the list used to keep every entry of the window and more
    (it was cut only at the limit), and each charge searched it; now the entries that left the window
    are dropped as the next charge comes, so the list is the window, whatever the limit."""
    prefix = f"oro:test-charge-trim:{uuid.uuid4().hex}"
    storage = redis_storage(redis_url, timeout=0.5, key_prefix=prefix)
    key, limit, expiry = "client", 100_000_000, 1
    for _ in range(50):
        assert charge(storage, key, limit, expiry, 1)[0][0]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen(f"{prefix}:{key}") == 50
        time.sleep(0.6)
        assert charge(storage, key, limit, expiry, 1)[0][0]  # (which also keeps the key from expiring)
        time.sleep(0.6)  # the first 50 have left the one-second window, the last one has not
        (acquired, start, count), _ = charge(storage, key, limit, expiry, 2)
        assert acquired and count == 3 and time.time() - start < 1
        assert client.llen(f"{prefix}:{key}") == 3  # the 50 old entries are gone
        # and a full window still refuses: the limit counts what is in the window
        assert [charge(storage, "small", 3, 60, 1)[0][::2] for _ in range(4)] == [
            (True, 1),
            (True, 2),
            (True, 3),
            (False, 3),
        ]
    finally:
        for found in client.scan_iter(f"{prefix}*"):
            client.delete(found)
        client.close()


def test_charge_both_takes_the_second_window_only_when_the_first_fits(db: Database, redis_url: str) -> None:
    """``charge_both`` (a signed write: the client's points, then its write budget) in one script
    counts as two ``charge`` calls would, in Redis and in the database while Redis is down; a
    refused first window leaves the second untouched."""
    prefix = f"oro:test-charge-both:{uuid.uuid4().hex}"
    clock = Clock()
    breaker = Breaker(5.0, clock=clock)
    storage = FailoverStorage(
        redis_storage(redis_url, timeout=0.5, key_prefix=prefix), DatabaseStorage(db), breaker
    )
    client, write = ("client", 3, 60, 1), ("write", 2, 60, 1)
    for place in ("redis", "database"):
        if place == "database":
            breaker.failed("a test")  # as a timeout would
            client, write = ("client-db", 3, 60, 1), ("write-db", 2, 60, 1)
        answers = [charge_both(storage, client, write) for _ in range(4)]
        assert [first[::2] for first, _ in answers] == [(True, 1), (True, 2), (True, 3), (False, 3)], place
        assert [second and second[::2] for _, second in answers] == [(True, 1), (True, 2), (False, 2), None]
        assert charge(storage, *write)[0][::2] == (False, 2), place  # the refused client took none
    redis_client = redis.Redis.from_url(redis_url)
    for found in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(found)
    redis_client.close()


def _storage(db: Database, url: str, prefix: str, clock: Clock | None = None) -> FailoverStorage:
    return FailoverStorage(
        redis_storage(url, timeout=0.5, key_prefix=prefix),
        DatabaseStorage(db),
        Breaker(5.0, clock=clock or Clock()),
    )


def test_charges_from_the_event_loop_count_as_the_threaded_ones_do(db: Database, redis_url: str) -> None:
    """``LoopCharges`` (the lifespan's client, on the event loop) takes the same entries of the same
    keys as the threaded call: a budget is one budget whichever way a charge went."""
    prefix = f"oro:test-loop:{uuid.uuid4().hex}"
    storage = _storage(db, redis_url, prefix)
    item = RateLimitItemPerMinute(5)
    key, expiry = item.key_for("client", "a"), item.get_expiry()

    async def main() -> list[tuple[tuple[bool, float, int], object] | None]:
        storage.open_loop()
        try:
            answers = [await charge_on_loop(storage, key, 5, expiry, cost) for cost in (2, 1)]
            both = await charge_both_on_loop(storage, (key, 5, expiry, 1), ("w", 2, 60, 1))
            answers.append((both[0], both[1]) if both is not None else None)
            return answers
        finally:
            await storage.close_loop()

    answers = asyncio.run(main())
    assert [a[0][::2] if a is not None else None for a in answers] == [(True, 2), (True, 3), (True, 4)]
    assert answers[2] is not None and answers[2][1] is not None and answers[2][1][::2] == (True, 1)
    # the threaded call and limits' own strategy see the entries the loop took
    assert charge(storage, key, 5, expiry, 2)[0][::2] == (False, 4)
    assert MovingWindowRateLimiter(storage).get_window_stats(item, "client", "a").remaining == 1
    assert storage.on_loop is None  # closed with the loop
    client = redis.Redis.from_url(redis_url)
    for found in client.scan_iter(f"{prefix}*"):
        client.delete(found)
    client.close()


def test_a_failed_charge_on_the_loop_opens_the_breaker_and_goes_to_the_thread(db: Database) -> None:
    """A refused connection from the loop trips the breaker as the threaded call would: the charge is
    asked from a thread (which then counts in the database), and later charges skip the loop."""
    clock = Clock()
    storage = _storage(db, "redis://127.0.0.1:1/0", "oro:test", clock)

    async def main() -> tuple[object, object]:
        storage.open_loop()
        try:
            first = await charge_on_loop(storage, "client/x", 2, 60, 1)
            assert storage.breaker.is_open and storage.breaker.trips == 1
            return first, await charge_on_loop(storage, "client/x", 2, 60, 1)
        finally:
            await storage.close_loop()

    assert asyncio.run(main()) == (None, None)
    assert charge(storage, "client/x", 2, 60, 1)[0][::2] == (True, 1)  # in the database
    with db.session() as session:
        assert len(session.exec(select(RateLimitHit)).all()) == 1


def test_the_loop_client_is_asked_only_from_its_own_loop_and_within_its_connections(
    db: Database, redis_url: str
) -> None:
    """Another loop, or a charge finding every connection busy, is asked from a thread: no error,
    and the breaker stays closed."""
    prefix = f"oro:test-loop-busy:{uuid.uuid4().hex}"
    storage = _storage(db, redis_url, prefix)

    async def open_here() -> None:
        storage.open_loop()

    asyncio.run(open_here())  # that loop is gone now
    assert asyncio.run(charge_on_loop(storage, "client/y", 5, 60, 1)) is None
    storage.on_loop = None

    async def busy() -> list[object]:
        storage.open_loop()
        on_loop = storage.on_loop
        assert on_loop is not None
        try:
            together = await asyncio.gather(
                *(charge_on_loop(storage, "client/y", 5, 60, 1) for _ in range(3))
            )
            on_loop._free = asyncio.Semaphore(1)
            async with on_loop._free:  # the one connection is waiting for Redis
                held = await charge_on_loop(storage, "client/y", 5, 60, 1)
            return [*together, held, on_loop.answered, on_loop.pipelines]
        finally:
            await storage.close_loop()

    answers = asyncio.run(busy())
    # asked in one turn of the loop: one pipeline, each charge its own window's answer
    assert [a[0][::2] for a in answers[:3]] == [(True, 1), (True, 2), (True, 3)]  # type: ignore[index]
    assert answers[3:] == [None, 3, 1]  # the held one went to a thread
    assert not storage.breaker.is_open
    client = redis.Redis.from_url(redis_url)
    for found in client.scan_iter(f"{prefix}*"):
        client.delete(found)
    client.close()


def test_a_loop_held_up_past_the_timeout_still_takes_the_answer(db: Database, redis_url: str) -> None:
    """Redis answered while the loop was held up for three timeouts (a flood of requests would hold
    it): the charge takes the answer, from the loop, and the breaker stays closed."""
    prefix = f"oro:test-loop-held:{uuid.uuid4().hex}"
    storage = FailoverStorage(
        redis_storage(redis_url, timeout=0.2, key_prefix=prefix), DatabaseStorage(db), Breaker(5.0)
    )

    async def main() -> tuple[object, float]:
        storage.open_loop()
        try:
            assert await charge_on_loop(storage, "client/z", 5, 60, 1) is not None  # connected
            asyncio.get_running_loop().call_soon(time.sleep, 0.6)  # runs once the command is sent
            started = time.monotonic()
            answer = await charge_on_loop(storage, "client/z", 5, 60, 1)
            return answer, time.monotonic() - started
        finally:
            await storage.close_loop()

    answer, waited = asyncio.run(main())
    assert waited >= 0.6  # the loop was held up
    assert answer is not None and answer[0][::2] == (True, 2)  # type: ignore[index]
    assert not storage.breaker.is_open
    client = redis.Redis.from_url(redis_url)
    for found in client.scan_iter(f"{prefix}*"):
        client.delete(found)
    client.close()
