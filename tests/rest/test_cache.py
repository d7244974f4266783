"""The hot public reads come from a cache keyed by the data version: never stale after a write,
still rate-limited, and never for paths whose answer is not a function of the data."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from oro_sdk.api.public import get_leaderboard

from oro_graph.runtime import Runtime
from oro_graph.services import evaluations
from tests.factories import claim, make_eligible, make_world, submit
from tests.rest.live import LiveServer


@pytest.fixture
def http(runtime: Runtime, serve: Callable[..., LiveServer]) -> Iterator[httpx.Client]:
    """A client of a server over a registered world with no versions yet."""
    make_world(runtime)
    with serve().http() as client:
        yield client


def test_a_repeated_read_is_a_hit_until_a_write_changes_the_answer(
    runtime: Runtime, serve: Callable[..., LiveServer]
) -> None:
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "first", [0.4, 0.6])
    server = serve()
    with server.http() as http:
        first = http.get("/v1/public/leaderboard")
        again = http.get("/v1/public/leaderboard")
        assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
        assert again.content == first.content and again.headers["content-type"] == "application/json"
        assert http.get("/v1/public/leaderboard", params={"limit": 1}).headers["x-cache"] == "miss"

        # a write through the services (not through this server's HTTP) changes the data version
        make_eligible(runtime, world, world.miners[1], "second", [0.9, 0.9])
        after = http.get("/v1/public/leaderboard")
    assert after.headers["x-cache"] == "miss"
    assert [e["agent_name"] for e in after.json()["entries"]] == ["second", "first"]
    # and the official client reads the cached bytes like any others
    board = get_leaderboard.sync(client=server.public())
    assert [e.agent_name for e in board.entries] == ["second", "first"]


def test_query_order_does_not_split_entries_and_errors_are_not_kept(http: httpx.Client) -> None:
    assert http.get("/v1/public/leaderboard?limit=5&offset=0").headers["x-cache"] == "miss"
    assert http.get("/v1/public/leaderboard?offset=0&limit=5").headers["x-cache"] == "hit"
    for _ in range(2):
        missing = http.get("/v1/public/suites/999/problems")
        assert missing.status_code == 404 and missing.headers["x-cache"] == "miss"


def test_answers_that_depend_on_more_than_the_data_are_never_cached(http: httpx.Client) -> None:
    for path in ("/v1/public/validators", "/v1/public/evaluations/running", "/health"):
        assert all("x-cache" not in http.get(path).headers for _ in range(2)), path


def test_cached_answers_still_count_against_the_rate_limit(
    runtime: Runtime, serve: Callable[..., LiveServer]
) -> None:
    make_world(runtime)
    server = serve(rate_limit_per_minute=3)
    with server.http() as http:
        statuses = [http.get("/v1/public/top").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_cached_graph_answers_count_against_the_rate_limit_too(
    runtime: Runtime, serve: Callable[..., LiveServer]
) -> None:
    make_world(runtime)
    server = serve(rate_limit_per_minute=3)
    with server.http() as http:
        answers = [http.post("/graphql", json={"query": "{ topAgent { suiteId } }"}) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[1].headers["x-cache"] == "hit"


def test_the_cache_can_be_turned_off(runtime: Runtime, serve: Callable[..., LiveServer]) -> None:
    make_world(runtime)
    server = serve(response_cache=False)
    with server.http() as http:
        assert all("x-cache" not in http.get("/v1/public/top").headers for _ in range(2))


def test_a_heartbeat_keeps_the_public_board_cached(
    runtime: Runtime, serve: Callable[..., LiveServer]
) -> None:
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "first", [0.4, 0.6])
    submit(runtime, world.miners[1], "second")
    run = claim(runtime, world.validators[0])
    assert run is not None
    with serve().http() as http:
        first = http.get("/v1/public/leaderboard")
        for _ in range(2):  # the validator's lease, its last-seen time and an event row
            runtime.db.call(
                evaluations.heartbeat,
                run_id=run.run.id,
                validator_hotkey=world.validators[0],
                settings=runtime.settings,
            )
        again = http.get("/v1/public/leaderboard")
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert again.content == first.content


def test_a_versions_runs_and_problems_are_cached_until_a_call_on_its_run(
    runtime: Runtime, serve: Callable[..., LiveServer]
) -> None:
    """The REST version page (its runs, then its problem matrix) comes from the cache between writes,
    and a heartbeat on one of its runs (which moves the lease the runs answer shows) ends it."""
    world = make_world(runtime)
    version = submit(runtime, world.miners[0], "first").agent_version_id
    run = claim(runtime, world.validators[0])
    assert run is not None
    paths = [f"/v1/public/agent-versions/{version}/{part}" for part in ("runs", "problems")]
    with serve().http() as http:
        first = [http.get(path) for path in paths]
        again = [http.get(path) for path in paths]
        assert [r.headers["x-cache"] for r in first + again] == ["miss", "miss", "hit", "hit"]
        assert [r.content for r in again] == [r.content for r in first]
        runtime.db.call(
            evaluations.heartbeat,
            run_id=run.run.id,
            validator_hotkey=world.validators[0],
            settings=runtime.settings,
        )
        after = http.get(paths[0])
    assert after.headers["x-cache"] == "miss"
    [shown] = after.json()
    assert shown["last_heartbeat_at"] is not None and first[0].json()[0]["last_heartbeat_at"] is None
