"""The shared data version under Redis trouble: answers fast, pauses, and loses no bump."""

from __future__ import annotations

import pytest
import redis

from oro_graph import dataversion
from oro_graph.dataversion import KEY, DataVersion


class Flaky:
    """A real Redis client that can be made to fail, counting the calls that reached it."""

    def __init__(self, url: str) -> None:
        self.real = redis.Redis.from_url(url)
        self.down = False
        self.calls = 0

    def _call(self, name: str, *args: object) -> object:
        self.calls += 1
        if self.down:
            raise redis.ConnectionError("refused")
        return getattr(self.real, name)(*args)

    def incr(self, key: str) -> object:
        return self._call("incr", key)

    def get(self, key: str) -> object:
        return self._call("get", key)

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def flaky(redis_url: str) -> Flaky:
    client = Flaky(redis_url)
    client.real.delete(KEY)
    return client


def test_an_outage_pauses_the_version_and_a_missed_bump_is_sent_later(
    flaky: Flaky, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(dataversion.time, "monotonic", lambda: clock[0])
    version = DataVersion(flaky)
    before = version.current()
    assert before is not None

    flaky.down = True
    assert version.current() is None  # unknown: nothing may be cached or served from cache
    version.bump()  # a write during the outage
    calls = flaky.calls
    assert version.current() is None and flaky.calls == calls  # paused: Redis is not asked again

    flaky.down = False
    clock[0] += dataversion.RETRY_AFTER
    after = version.current()
    assert after is not None and after != before  # the missed bump went out before the read


def test_the_clients_timeouts_are_short_and_it_does_not_retry(redis_url: str) -> None:
    client = dataversion.redis_client(redis_url)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == dataversion.TIMEOUT and kwargs["retry"].get_retries() == 0
    client.close()
