"""The response cache's memory is bounded: in a process by entries and bytes, in Redis by expiry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
from starlette.types import Message

from oro_graph import dataversion, db
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


def _miss(cache: ResponseCache, app: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    asyncio.run(cache.answer(app, scope, receive, send, "k", lambda _: True))
    return sent


async def _answering(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def test_a_miss_keeps_its_answer_under_the_versions_it_looked_up_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    version = DataVersion()
    cache = ResponseCache(version, ttl=30.0)
    reads: list[object] = []
    real = version.snapshot

    def snapshot() -> Any:
        reads.append(1)
        return real()

    monkeypatch.setattr(version, "snapshot", snapshot)
    _miss(cache, _answering)
    assert len(reads) == 1  # the lookup's (which claims the key too): not again to compute
    assert cache.get("k", real()) is not None and cache.executions == 1


def test_an_answer_computed_while_a_write_lands_is_never_served() -> None:
    version = DataVersion()
    cache = ResponseCache(version, ttl=30.0)

    async def writing(scope: Any, receive: Any, send: Any) -> None:
        reading = db.reads.get()
        assert reading is not None
        reading.add("agent")  # the answer reads a table
        version.bump(["agent"])  # and a write to it commits while the answer is computed
        await _answering(scope, receive, send)

    _miss(cache, writing)
    snapshot = version.snapshot()
    assert snapshot is not None and cache.get("k", snapshot) is None


def _counting(client: redis.Redis) -> list[str]:
    """The commands ``client`` sends from now on (a script's load and call are two)."""
    sent: list[str] = []
    execute = client.execute_command

    def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return execute(*args, **options)

    client.execute_command = counted  # type: ignore[method-assign]
    return sent


def test_a_miss_costs_two_round_trips_to_redis_beyond_the_versions(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = ResponseCache(DataVersion(client), ttl=30.0, name="round-trips-test")
    claim = f"{dataversion.KEY}:computing:round-trips-test:k"
    claims: list[bool] = []

    async def answering(scope: Any, receive: Any, send: Any) -> None:
        claims.append(bool(client.exists(claim)))
        await _answering(scope, receive, send)

    client.delete(f"{dataversion.KEY}:answer:round-trips-test:k", claim)
    sent = _counting(client)
    _miss(cache, answering)
    assert claims == [True]  # claimed while it computes
    # the versions; the lookup that claims the key; storing the answer as the claim is let go
    assert [c for c in sent if c not in ("EXISTS", "SCRIPT LOAD")] == ["EVALSHA"] * 3
    assert not client.exists(claim)
    other = ResponseCache(DataVersion(client), ttl=30.0, name="round-trips-test")
    sent.clear()
    _miss(other, answering)  # another process: the stored answer, found by the same lookup
    assert sent == ["EVALSHA", "EVALSHA"] and other.hits == 1 and other.executions == 0
    client.delete(f"{dataversion.KEY}:answer:round-trips-test:k")


def test_the_lookup_claims_a_key_only_when_its_stored_answer_is_not_valid(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    version = DataVersion(client)
    cache = ResponseCache(version, ttl=30.0, name="lookup-test")
    claim = f"{dataversion.KEY}:computing:lookup-test:k"
    client.delete(claim)
    cache.put("k", _entry(version, 10))
    other = ResponseCache(DataVersion(client), ttl=30.0, name="lookup-test")  # nothing kept here
    snapshot = version.snapshot()
    assert snapshot is not None
    entry, claimed = other._lookup("k", snapshot, "t1")
    assert entry is not None and claimed is False and not client.exists(claim)
    version.bump(["agent"])  # what the stored answer read changed
    other._entries.clear()
    snapshot = version.snapshot()
    assert snapshot is not None
    entry, claimed = other._lookup("k", snapshot, "t1")
    assert entry is None and claimed is True and client.get(claim) == b"t1"
    assert other._lookup("k", snapshot, "t2") == (None, False)  # held by t1: another waits
    client.delete(claim, f"{dataversion.KEY}:answer:lookup-test:k")
