"""The response cache's memory is bounded: in a process by entries and bytes, in Redis by expiry."""

from __future__ import annotations

import time

import pytest
import redis

from oro_graph import dataversion
from oro_graph.dataversion import DataVersion
from oro_graph.edge import responsecache
from oro_graph.edge.responsecache import Entry, ResponseCache


def _entry(version: DataVersion, size: int, ttl: float = 30.0) -> Entry:
    snapshot = version.snapshot()
    assert snapshot is not None
    return Entry(snapshot.of(["agent"]), b"x" * size, time.monotonic() + ttl)


def test_a_process_keeps_at_most_its_entries_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responsecache, "MAX_ENTRIES", 3)
    monkeypatch.setattr(responsecache, "MAX_BYTES", 250)
    version = DataVersion()
    cache = ResponseCache(version, ttl=30.0)
    for i in range(5):
        cache.put(f"k{i}", _entry(version, 10))
    assert list(cache._entries) == ["k2", "k3", "k4"]  # the oldest went first
    cache.put("big", _entry(version, 235))
    assert list(cache._entries) == ["k4", "big"] and cache._bytes == 245
    snapshot = version.snapshot()
    assert snapshot is not None and cache.get("big", snapshot) is not None
    version.bump(["agent"])  # and an entry whose table changed is not served
    snapshot = version.snapshot()
    assert snapshot is not None and cache.get("big", snapshot) is None


def test_shared_answers_expire_in_redis_with_the_ttl(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    version = DataVersion(client)
    cache = ResponseCache(version, ttl=30.0, name="expiry-test")
    cache.put("k", _entry(version, 10))
    key = f"{dataversion.KEY}:answer:expiry-test:k"
    assert 0 < client.pttl(key) <= 30_000
    # another process reads it back (with its expiry) while it is valid
    other = ResponseCache(DataVersion(client), ttl=30.0, name="expiry-test")
    snapshot = version.snapshot()
    assert snapshot is not None
    shared = other.get("k", snapshot)
    assert shared is not None and shared.body == b"x" * 10 and shared.expires <= time.monotonic() + 30.0
    client.delete(key)
