"""The response cache follows what an answer read: writes elsewhere keep it, writes to what it read
(even while it is computed) end it, and concurrent misses compute once, across processes too."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlmodel import col, select

from benchmarks.queries import DEEP_LEADERBOARD
from oro_graph.app import create_app
from oro_graph.dataversion import DataVersion
from oro_graph.edge import responsecache
from oro_graph.edge.responsecache import ResponseCache
from oro_graph.errors import AtCapacity
from oro_graph.models import EvaluationRun, ProblemStatus, RunStatus
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, suites
from oro_graph.settings import Settings
from tests.factories import claim, complete, make_eligible, make_world, submit

BOARD = "{ leaderboard(first: 10) { totalCount edges { node { rank agentName finalScore } } } }"
DOCUMENTS = [
    BOARD,
    "{ leaderboard(first: 10) { edges { node { agentVersion { finalScore state agent { name } "
    "runs(first: 10) { edges { node { status validatorScore validator { hotkey } } } } } } } } }",
    "{ validators(first: 10) { edges { node { hotkey lastSeenAt } } } }",
    "{ leaderboard(first: 10) { edges { node { agentVersion { runs(first: 10) { edges { node { "
    "status leaseExpiresAt lastHeartbeatAt validator { name lastSeenAt status currentRun { status } } "
    "} } } } } } } }",
    "{ evaluationRuns(first: 20) { totalCount edges { node { status leaseExpiresAt validatorScore } } } }",
]
LIFTED = {
    "submit_rate_limit": "10000/minute",
    "write_rate_limit": "10000/minute",
    "rate_limit_per_minute": 100_000,
}


def _app(runtime: Runtime, *, own_engine: bool = False, **overrides: Any) -> FastAPI:
    """A server on the test's database; with ``own_engine`` it has an engine (a pool, write hooks)
    of its own, as a separate server process would."""
    settings = Settings(**{**runtime.settings.model_dump(), **LIFTED, **overrides})
    return create_app(
        settings, runtime=Runtime.build(settings, db=None if own_engine else runtime.db), migrate=False
    )


def _graph_cache(app: FastAPI) -> ResponseCache:
    layer: Any = app.middleware_stack
    while layer is not None:
        if isinstance(getattr(layer, "cache", None), ResponseCache) and layer.cache.name == "graphql":
            return layer.cache
        layer = getattr(layer, "app", None)
    raise AssertionError("no graph cache in the app")


def _post(client: TestClient, document: str = BOARD) -> Any:
    response = client.post("/graphql", json={"query": document})
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(_app(runtime)) as test_client:
        yield test_client


def test_a_heartbeat_keeps_the_board_cached_and_a_completion_that_moves_a_score_ends_it(
    runtime: Runtime, client: TestClient
) -> None:
    # given a board with one eligible version and a run of another version in progress
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.7])
    submit(runtime, world.miners[1], "b")
    run = claim(runtime, world.validators[0])
    assert run is not None
    first = _post(client)
    assert first.headers["x-cache"] == "miss"
    # when the validator heartbeats (an event, the run's lease, the validator's state)
    for _ in range(3):
        runtime.db.call(
            evaluations.heartbeat,
            run_id=run.run.id,
            validator_hotkey=world.validators[0],
            settings=runtime.settings,
        )
    # then the board is still answered from the cache
    kept = _post(client)
    assert kept.headers["x-cache"] == "hit" and kept.json() == first.json()
    # but a completion that makes the other version eligible with a score changes it
    complete(runtime, run.run.id, world.validators[0], score=0.9)
    second = claim(runtime, world.validators[1])
    assert second is not None
    complete(runtime, second.run.id, world.validators[1], score=0.9)
    fresh = _post(client)
    assert fresh.headers["x-cache"] == "miss"
    board = fresh.json()["data"]["leaderboard"]
    assert board["totalCount"] == 2 and board["edges"][0]["node"]["agentName"] == "b"


LEASES = (
    "{ validators(first: 10) { edges { node { hotkey lastSeenAt runs(first: 5) { edges { node { "
    "status leaseExpiresAt lastHeartbeatAt } } } } } } }"
)


def test_heartbeats_and_progress_keep_the_deep_board_cached_but_not_what_shows_the_lease(
    runtime: Runtime, client: TestClient
) -> None:
    # given the benchmark's deep board (runs with their validators' names) and a run in progress
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.7])
    submit(runtime, world.miners[1], "b")
    running = claim(runtime, world.validators[0])
    assert running is not None
    validator = world.validators[0]
    beat = {"run_id": running.run.id, "validator_hotkey": validator, "settings": runtime.settings}
    runtime.db.call(evaluations.heartbeat, **beat)
    first, first_leases = _post(client, DEEP_LEADERBOARD), _post(client, LEASES)
    # when the validator heartbeats and reports progress
    problem = runtime.db.call(suites.problems_for_suite, world.suite.id)[0]
    for _ in range(2):
        runtime.db.call(evaluations.heartbeat, **beat)
        runtime.db.call(
            evaluations.update_progress,
            run_id=running.run.id,
            validator_hotkey=validator,
            problems=[evaluations.ProblemUpdate(problem.id, ProblemStatus.RUNNING)],
        )
    # then the board is a hit, while the answer that shows leases and last-seen times is fresh
    again = _post(client, DEEP_LEADERBOARD)
    assert again.headers["x-cache"] == "hit" and again.json() == first.json()
    leases = _post(client, LEASES)
    assert leases.headers["x-cache"] == "miss" and leases.json() != first_leases.json()
    # and a completion (a run's status and score, which the board shows for its runs) ends the entry
    complete(runtime, running.run.id, validator, score=0.1)
    assert _post(client, DEEP_LEADERBOARD).headers["x-cache"] == "miss"


def test_an_answer_computed_while_a_write_lands_is_never_served_after_it(
    runtime: Runtime, client: TestClient
) -> None:
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.7])
    engine = runtime.db.engine
    landed = threading.Event()

    # A write to the score commits right after the execution read the versions (and before it
    # finishes): the answer shows the old score.
    def write_once(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not landed.is_set() and "FROM agentversion" in statement and "final_score" in statement:
            landed.set()
            with engine.begin() as other:
                other.execute(text("UPDATE agentversion SET final_score = 0.99"))

    event.listen(engine, "after_cursor_execute", write_once)
    try:
        during = _post(client).json()["data"]["leaderboard"]["edges"][0]["node"]["finalScore"]
    finally:
        event.remove(engine, "after_cursor_execute", write_once)
    assert landed.is_set() and during == pytest.approx(0.6)
    after = _post(client)
    assert after.headers["x-cache"] == "miss"
    assert after.json()["data"]["leaderboard"]["edges"][0]["node"]["finalScore"] == pytest.approx(0.99)
    assert _post(client).headers["x-cache"] == "hit"  # and the fresh answer is kept


def _forget_shared_answers(redis_url: str) -> None:
    """The test runtime writes without Redis (and earlier tests kept answers there): bump every
    shared version, as a process that wrote to unknown tables would."""
    import redis

    DataVersion(redis.Redis.from_url(redis_url)).bump()


class SlowFirstRead:
    """Holds the first read of the versions a moment, so concurrent misses overlap it."""

    def __init__(self, *apps: FastAPI) -> None:
        self.engines = [app.state.runtime.db.engine for app in apps]
        self.held = threading.Event()

    def hold(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.held.is_set() and "agentversion" in statement:
            self.held.set()
            threading.Event().wait(0.5)

    def __enter__(self) -> SlowFirstRead:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self.hold)
        return self

    def __exit__(self, *exc: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self.hold)


def test_concurrent_misses_compute_once_in_a_process(runtime: Runtime, client: TestClient) -> None:
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.7])
    cache = _graph_cache(client.app)  # type: ignore[arg-type]
    with SlowFirstRead(client.app), ThreadPoolExecutor(8) as pool:  # type: ignore[arg-type]
        answers = list(pool.map(lambda _: _post(client), range(8)))
    assert cache.executions == 1
    assert len({a.content for a in answers}) == 1
    assert sorted(a.headers["x-cache"] for a in answers) == ["hit"] * 7 + ["miss"]


def test_concurrent_misses_compute_once_across_processes(
    runtime: Runtime, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # waiters wait as long as it takes here: on a loaded machine the first execution may outlast the
    # bounded wait, after which a waiter computes by design (never an unbounded wait in production)
    monkeypatch.setattr(responsecache, "WAIT_SECONDS", 60.0)
    _forget_shared_answers(redis_url)
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.7])
    apps = [_app(runtime, own_engine=True, redis_url=redis_url, workers=2) for _ in range(2)]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        with SlowFirstRead(*apps), ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _post((one, two)[i % 2]), range(8)))
        assert sum(_graph_cache(app).executions for app in apps) == 1
        assert len({a.content for a in answers}) == 1


def _write(runtime: Runtime, world: Any, rng: random.Random, step: int) -> None:
    """One of the writes a live subnet makes, chosen at random."""
    kind = rng.choice(["heartbeat", "complete", "submit", "score"])
    live = select(EvaluationRun.id, EvaluationRun.validator_hotkey).where(
        col(EvaluationRun.status).in_([RunStatus.CLAIMED, RunStatus.RUNNING])
    )
    running = runtime.db.call(lambda session: list(session.execute(live).all()))
    if kind == "heartbeat" and running:
        run_id, validator = rng.choice(running)
        runtime.db.call(
            evaluations.heartbeat, run_id=run_id, validator_hotkey=validator, settings=runtime.settings
        )
    elif kind == "complete" and running:
        run_id, validator = rng.choice(running)
        complete(runtime, run_id, validator, score=rng.random())
    elif kind == "submit":
        submit(runtime, world.miners[step % 2], f"agent{step}")
        with contextlib.suppress(AtCapacity):  # the validator holds a run already
            claim(runtime, world.validators[step % 3])
    else:
        with runtime.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE agentversion SET final_score = :s WHERE final_score IS NOT NULL"),
                {"s": round(rng.random(), 3)},
            )


def test_every_cached_answer_equals_a_fresh_execution_while_two_servers_write_and_read(
    runtime: Runtime, redis_url: str
) -> None:
    """The issue's "Done when": writes and reads interleaved over two servers sharing the database
    and Redis; every answer (cached or not) is compared with an execution that uses no cache."""
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.7])
    _forget_shared_answers(redis_url)
    servers = [
        _app(runtime, own_engine=True, redis_url=redis_url, workers=2, submission_cooldown_seconds=0)
        for _ in range(2)
    ]
    writers = [app.state.runtime for app in servers]  # each server's writes go through its own engine
    rng = random.Random(13)
    hits = 0
    with (
        TestClient(servers[0]) as one,
        TestClient(servers[1]) as two,
        TestClient(_app(runtime, response_cache=False)) as fresh,
    ):
        for step in range(40):
            if rng.random() < 0.4:
                _write(writers[step % 2], world, rng, step)
            document = rng.choice(DOCUMENTS)
            answer = _post(rng.choice((one, two)), document)
            hits += answer.headers["x-cache"] == "hit"
            assert answer.json()["data"] == _post(fresh, document).json()["data"], (step, document)
    assert hits > 0  # the comparison saw cached answers, not only fresh ones


PROBLEM_STATS = (
    "{ currentSuite { problemStats(first: 10) { edges { node { position attempts passes medianScore } } } "
    "included: problemStats(first: 10, scope: {includedOnly: true}) { edges { node { attempts } } } } }"
)


def test_problem_statistics_read_from_the_totals_end_with_a_scored_problem_and_a_completion(
    runtime: Runtime, client: TestClient
) -> None:
    # given the suite's statistics, cached, and a run in progress
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    running = claim(runtime, world.validators[0])
    assert running is not None
    first = _post(client, PROBLEM_STATS)
    assert _post(client, PROBLEM_STATS).headers["x-cache"] == "hit"
    problem = runtime.db.call(suites.problems_for_suite, world.suite.id)[0]

    # when the validator scores a problem (the progress service; the totals move in its trigger)
    runtime.db.call(
        evaluations.update_progress,
        run_id=running.run.id,
        validator_hotkey=world.validators[0],
        problems=[evaluations.ProblemUpdate(problem.id, ProblemStatus.SUCCESS, score=0.75)],
    )

    # then the next answer is computed again and counts it, not yet as included
    scored = _post(client, PROBLEM_STATS)
    assert scored.headers["x-cache"] == "miss" and scored.json() != first.json()
    suite = scored.json()["data"]["currentSuite"]
    node = suite["problemStats"]["edges"][0]["node"]
    assert (node["position"], node["attempts"], node["passes"], node["medianScore"]) == (0, 1, 1, 0.75)
    assert suite["included"]["edges"][0]["node"]["attempts"] == 0

    # and a completion that includes the run (the run's trigger) ends the cached answer again
    assert _post(client, PROBLEM_STATS).headers["x-cache"] == "hit"
    complete(runtime, running.run.id, world.validators[0], score=0.75)
    included = _post(client, PROBLEM_STATS)
    assert included.headers["x-cache"] == "miss"
    assert included.json()["data"]["currentSuite"]["included"]["edges"][0]["node"]["attempts"] == 1
