"""The shared data version under Redis trouble: answers fast, pauses, loses no bump, and never
repeats a version after Redis lost its keys."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from oro_graph import dataversion
from oro_graph.dataversion import DataVersion
from oro_graph.redislink import EPOCH_KEY, Breaker, RedisLink, RedisUnavailable, redis_client


class Flaky:
    """A real Redis client that can be made to fail, counting the calls that reached it."""

    def __init__(self, url: str) -> None:
        self.real = redis.Redis.from_url(url)
        self.down = False
        self.calls = 0

    def register_script(self, source: str) -> Any:
        script = self.real.register_script(source)

        def call(*, keys: list[str], args: list[str], client: Any = None) -> Any:
            self.calls += 1
            if self.down:
                raise redis.ConnectionError("refused")
            return script(keys=keys, args=args)

        return call

    def ping(self) -> bool:
        self.calls += 1
        if self.down:
            raise redis.ConnectionError("refused")
        return bool(self.real.ping())

    def close(self) -> None:
        self.real.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def flaky(redis_url: str) -> Flaky:
    client = Flaky(redis_url)
    client.real.delete(dataversion.KEY)
    return client


def test_an_outage_pauses_the_version_and_a_missed_bump_is_sent_later(flaky: Flaky) -> None:
    clock = Clock()
    breaker = Breaker(5.0, clock=clock)
    version = DataVersion(RedisLink(flaky, breaker))
    before = version.current()
    assert before is not None

    flaky.down = True
    assert version.current() is None  # unknown: nothing may be cached or served from cache
    version.bump()  # a write during the outage
    calls = flaky.calls
    assert version.current() is None and flaky.calls == calls  # paused: Redis is not asked again

    flaky.down = False
    clock.now += 5.0
    after = version.current()
    assert after is not None and after != before  # the missed bump went out before the read


def test_after_an_outage_the_version_moves_even_without_a_write_here(flaky: Flaky) -> None:
    """Another process may have written while this one could not read: answers cached before the
    outage must not look current after it."""
    clock = Clock()
    version = DataVersion(RedisLink(flaky, Breaker(5.0, clock=clock)))
    before = version.current()
    flaky.down = True
    assert version.current() is None
    flaky.down = False
    clock.now += 5.0
    assert version.current() not in (None, before)


def test_a_lost_epoch_never_repeats_a_version(redis_url: str) -> None:
    """FLUSHDB (or a restart without persistence) drops the counter: it starts again from 0,
    under a new epoch, so no version seen before comes back."""
    client = redis.Redis.from_url(redis_url)
    version = DataVersion(client)
    seen = set()
    for _ in range(3):
        seen.add(version.current())
        version.bump()
    client.delete(EPOCH_KEY, dataversion.KEY)  # what a restart without persistence leaves
    for _ in range(5):
        now = version.current()
        assert now not in seen, (now, seen)
        seen.add(now)
        version.bump()


def test_a_counter_that_goes_back_under_the_same_epoch_gets_a_new_epoch(redis_url: str) -> None:
    """A replica that lagged but already had the epoch: the counter is lower than this process
    saw; continuing would repeat versions."""
    client = redis.Redis.from_url(redis_url)
    version = DataVersion(client)
    for _ in range(3):
        version.bump()
    high = version.current()
    client.decr(dataversion.KEY, 3)  # the promoted replica never saw the last three writes
    seen = {high}
    for _ in range(4):
        now = version.current()
        assert now not in seen, (now, seen)
        seen.add(now)
        version.bump()


def test_the_breaker_costs_one_timeout_then_answers_at_once() -> None:
    """A Redis that does not answer: the first call waits for its timeout, the next ones do not
    touch the socket until the pause is over, and then exactly one call probes."""
    clock = Clock()
    breaker = Breaker(5.0, clock=clock)
    link = RedisLink(redis_client("redis://127.0.0.1:1/0", timeout=0.2), breaker)  # refused
    calls = []

    def call(client: Any) -> bool:
        calls.append(1)
        return bool(client.ping())

    with pytest.raises(RedisUnavailable):
        link.run("ping", call)
    for _ in range(20):
        with pytest.raises(RedisUnavailable):
            link.run("ping", call)
    assert len(calls) == 1 and breaker.trips == 1
    clock.now += 5.0
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False  # everyone else, while the probe is out
    breaker.succeeded()
    assert breaker.allow() is True and not breaker.is_open


def test_the_clients_timeouts_are_short_and_it_does_not_retry(redis_url: str) -> None:
    client = redis_client(redis_url, timeout=0.25)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.25 and kwargs["retry"].get_retries() == 0
    client.close()


def test_a_probe_that_ends_in_a_bug_does_not_leave_the_breaker_stuck(redis_url: str) -> None:
    clock = Clock()
    breaker = Breaker(5.0, clock=clock)
    link = RedisLink(redis_client(redis_url, timeout=0.5), breaker)
    breaker.failed("a test")
    clock.now += 5.0

    def broken(client: Any) -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        link.run("probe", broken)  # the probe
    assert link.run("probe", lambda client: client.ping()) is True  # the next call may probe again
    assert not breaker.is_open
    link.close()


def test_versions_read_again_unchanged_are_the_same_snapshot_until_a_newer_one_is_seen() -> None:
    """Between two writes every request's rate-limit round trip reads the same versions: they are
    made into a snapshot once. A read the process has since seen surpassed still counts as going
    backwards (None), memo or not."""
    version = DataVersion(None)
    older = [b"epoch-a", b"7", b"run", b"3", b"agentversion", b"5"]
    first = version.snapshot_from(list(older))
    again = version.snapshot_from(list(older))
    assert first is not None and first.versions == {"run": 3, "agentversion": 5}
    assert again is first
    newer = version.snapshot_from([b"epoch-a", b"8", b"run", b"4", b"agentversion", b"5"])
    assert newer is not None and newer is not first and newer.versions["run"] == 4
    assert version.snapshot_from(list(older)) is None  # counter 7 after 8, under the same epoch
    assert version.snapshot_from([b"epoch-b", b"1", b"run", b"1"]) is not None  # a new epoch starts over
