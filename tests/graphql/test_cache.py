"""The response cache serves repeated reads until any write changes the data version."""

from __future__ import annotations

from fastapi.testclient import TestClient

from oro_graph.app import create_app
from oro_graph.dataversion import DataVersion
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.factories import make_eligible, make_world, submit
from tests.graphql.conftest import signed

BOARD = (
    "query($first: Int) { leaderboard(first: $first) { totalCount edges { node { agentName finalScore } } } }"
)


def _post(client: TestClient, variables=None, **kw):
    return client.post("/graphql", json={"query": BOARD, "variables": variables or {"first": 10}}, **kw)


def test_repeated_reads_hit_until_a_write(runtime: Runtime, client: TestClient) -> None:
    # given a board
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.7])
    first = _post(client)
    assert first.headers["x-cache"] == "miss"
    # when the same read comes again
    again = _post(client)
    assert again.headers["x-cache"] == "hit" and again.json() == first.json()
    # other variables are another entry
    assert _post(client, {"first": 5}).headers["x-cache"] == "miss"
    # then a write anywhere (here through a service) makes the next read fresh
    make_eligible(runtime, world, world.miners[1], "b", [0.9, 0.9])
    fresh = _post(client)
    assert fresh.headers["x-cache"] == "miss"
    assert fresh.json()["data"]["leaderboard"]["totalCount"] == 2


def test_mutations_signed_requests_and_errors_are_never_cached(runtime: Runtime, client: TestClient) -> None:
    make_world(runtime)
    mutation = "mutation { claimWork { __typename } }"
    for _ in range(2):
        response = client.post("/graphql", json={"query": mutation}, headers=signed("Charlie"))
        assert "x-cache" not in response.headers
    assert "x-cache" not in _post(client, headers=signed("Alice")).headers
    too_big = {"query": BOARD, "variables": {"first": 1000}}  # refused by the gate: over the page limit
    assert "errors" in client.post("/graphql", json=too_big).json()
    assert "x-cache" not in client.post("/graphql", json=too_big).headers
    invalid = {"query": "{ currentSuite { noSuchField } }"}  # within the limits, refused by validation
    assert "errors" in client.post("/graphql", json=invalid).json()
    assert client.post("/graphql", json=invalid).headers.get("x-cache") == "miss"


def test_a_write_by_another_process_invalidates_through_redis(runtime: Runtime, redis_url: str) -> None:
    import redis

    settings = Settings(**{**runtime.settings.model_dump(), "redis_url": redis_url, "workers": 2})
    ours = Runtime.build(settings, db=runtime.db)
    world = make_world(runtime)
    with TestClient(create_app(settings, runtime=ours, migrate=False)) as client:
        _post(client)
        assert _post(client).headers["x-cache"] == "hit"
        # another process commits and bumps the shared version
        DataVersion(redis.Redis.from_url(redis_url)).bump()
        assert _post(client).headers["x-cache"] == "miss"
        submit(runtime, world.miners[0], "a")  # and our own writes bump it too
        _post(client)
        assert _post(client).headers["x-cache"] == "hit"


def test_no_cache_for_several_workers_without_redis(runtime: Runtime) -> None:
    settings = Settings(**{**runtime.settings.model_dump(), "workers": 2})
    with TestClient(
        create_app(settings, runtime=Runtime.build(settings, db=runtime.db), migrate=False)
    ) as client:
        _post(client)
        assert "x-cache" not in _post(client).headers
