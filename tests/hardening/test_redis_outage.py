"""Redis losing its data, and Redis hanging: no stale cached answer, no replay, one timeout.

A private redis-server without persistence is restarted (it comes back empty, as an operator's
Redis without RDB/AOF would) between writes; a loopback TCP proxy in front of it plays the hung
Redis (connections accepted, nothing answered) and counts what reaches it.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from oro_graph import dataversion
from oro_graph.models import Role
from tests.factories import make_world, register, submit
from tests.hardening.support import PrivateRedis, signed
from tests.rest.live import LiveServer

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

AGENTS = "query($h: String!) { miner(hotkey: $h) { agents { totalCount } } }"


def test_no_stale_cached_answer_after_redis_restarts_without_persistence(
    serve: Callable[..., LiveServer], private_redis: PrivateRedis
) -> None:
    """The issue's reproduction: one write after a restart brought the counter back to a value
    cached before, and the cache answered totalCount 1 while the database held 2 agents."""
    server = serve(
        redis_url=private_redis.url, submission_cooldown_seconds=0, workers=2, redis_retry_seconds=0.5
    )
    world = make_world(server.runtime)
    alice = world.miners[0]
    query = {"query": AGENTS, "variables": {"h": alice}}
    with server.http() as http:
        submit(server.runtime, alice, "first")
        assert http.post("/graphql", json=query).json()["data"]["miner"]["agents"]["totalCount"] == 1
        cached = http.post("/graphql", json=query)
        assert cached.headers["x-cache"] == "hit"  # the cache works: the test can see a stale hit
        direct = redis.Redis.from_url(private_redis.url)
        cached_at = int(direct.get(dataversion.KEY) or 0)  # the counter the cached answer is keyed on
        private_redis.restart()  # empty: the version counter starts again from 0
        submit(server.runtime, alice, "second")
        # Writes that leave Alice's count alone bring the counter back to where the answer was
        # cached (one commit each: registering a hotkey), as the reproduction did.
        names = iter(f"Filler{i}" for i in range(10_000))
        deadline = time.monotonic() + 120
        while int(direct.get(dataversion.KEY) or 0) < cached_at and time.monotonic() < deadline:
            register(server.runtime, next(names), Role.VALIDATOR)
            time.sleep(0.05)
        assert int(direct.get(dataversion.KEY) or 0) == cached_at
        direct.close()
        # The server may first find Redis gone (then nothing is cached for a pause); read until the
        # cache answers again, and every answer on the way must count both agents.
        seen: list[tuple[int, str | None]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not seen or seen[-1][1] != "hit"):
            answer = http.post("/graphql", json=query)
            seen.append(
                (answer.json()["data"]["miner"]["agents"]["totalCount"], answer.headers.get("x-cache"))
            )
            time.sleep(0.1)
        assert {count for count, _ in seen} == {2}, seen
        assert seen[-1][1] == "hit", seen  # and caching resumed, under the new epoch


def test_a_nonce_used_before_redis_restarts_is_still_refused(
    serve: Callable[..., LiveServer], private_redis: PrivateRedis
) -> None:
    server = serve(redis_url=private_redis.url)
    make_world(server.runtime)
    with server.http() as http:
        used = signed("Alice")
        assert http.get("/v1/miner/agents", headers=used).status_code == 200
        private_redis.restart()  # without persistence: whatever Redis held is gone
        replay = http.get("/v1/miner/agents", headers=used)
        assert replay.status_code == 401 and "already used" in replay.json()["detail"], replay.text
        assert http.get("/v1/miner/agents", headers=signed("Alice")).status_code == 200


class HangingProxy:
    """A TCP proxy to Redis on loopback. ``hang()`` turns it into a Redis that accepts connections
    and reads requests but never answers; ``attempts`` counts the requests that reached it so."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.hung = threading.Event()
        self.attempts = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self.hung.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            upstream = None
            if not self.hung.is_set():
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets.append(upstream)
                threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket | None, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if self.hung.is_set():
                    if from_client:
                        with self._lock:
                            self.attempts += 1
                    continue  # swallowed: no answer ever comes
                assert sink is not None
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass


@pytest.fixture
def hanging_proxy(private_redis: PrivateRedis) -> Iterator[HangingProxy]:
    proxy = HangingProxy(private_redis.port)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_hung_redis_costs_one_timeout_not_one_per_request(
    serve: Callable[..., LiveServer], hanging_proxy: HangingProxy
) -> None:
    """While Redis hangs, the first request waits for its timeouts (its charge from the event loop,
    then from a worker thread, whose timeout trips the breaker: a loop's own may be false); the
    breaker then keeps every other request (public or signed) away from Redis for the pause, and all
    are answered."""
    server = serve(redis_url=hanging_proxy.url, rate_limit_per_minute=1000, redis_retry_seconds=600)
    make_world(server.runtime)
    document = "{ currentSuite { suiteId } }"
    digest = hashlib.sha256(document.encode()).hexdigest()
    persisted = {"query": document, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    with server.http() as http:
        for _ in range(2):  # warm: connections to Redis are open and in use
            assert http.get("/v1/public/leaderboard").status_code == 200
            assert http.get("/v1/miner/agents", headers=signed("Alice")).status_code == 200
        hanging_proxy.hang()
        statuses = []
        for _ in range(10):
            statuses.append(http.get("/v1/public/leaderboard").status_code)
            statuses.append(http.get("/v1/miner/agents", headers=signed("Alice")).status_code)
            # the graph: its response cache and persisted queries use Redis too
            statuses.append(http.post("/graphql", json=persisted).status_code)
        assert statuses == [200] * 30
        assert hanging_proxy.attempts == 2, hanging_proxy.attempts  # one request, two timeouts
        assert http.get("/health").json()["redis"] == "degraded"
