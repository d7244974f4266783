"""Automatic persisted queries: hash first, document on a miss, then the hash alone (also by GET)."""

import hashlib
import json

from fastapi.testclient import TestClient

from tests.factories import make_world

QUERY = "query { currentSuite { suiteId } }"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()
PERSISTED = {"persistedQuery": {"version": 1, "sha256Hash": DIGEST}}


def test_unknown_hash_then_register_then_hash_only(runtime, client: TestClient) -> None:
    world = make_world(runtime)
    # when the hash is unknown
    miss = client.post("/graphql", json={"extensions": PERSISTED})
    assert miss.status_code == 200
    assert miss.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    # the client retries with the document, which is stored
    full = client.post("/graphql", json={"query": QUERY, "extensions": PERSISTED})
    assert full.json()["data"]["currentSuite"]["suiteId"] == world.suite.id
    # and from then on the hash alone runs it, also as a cacheable GET
    hit = client.post("/graphql", json={"extensions": PERSISTED})
    assert hit.json()["data"]["currentSuite"]["suiteId"] == world.suite.id
    got = client.get("/graphql", params={"extensions": json.dumps(PERSISTED)})
    assert got.status_code == 200 and got.json()["data"]["currentSuite"]["suiteId"] == world.suite.id


def test_hash_must_match_the_document(runtime, client: TestClient) -> None:
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    response = client.post("/graphql", json={"query": QUERY, "extensions": wrong})
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_INVALID"
    # nothing was stored under the wrong hash
    again = client.post("/graphql", json={"extensions": wrong})
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


def test_shared_through_redis_between_processes(runtime, redis_url) -> None:
    import redis

    from oro_graph.edge.apq import QueryStore

    client = redis.Redis.from_url(redis_url)
    client.delete(f"oro:apq:{DIGEST}")
    QueryStore(client).put(DIGEST, QUERY)
    assert QueryStore(redis.Redis.from_url(redis_url)).get(DIGEST) == QUERY  # another process's store
