"""A document the executor planned for is answered by the edge's ``CompiledAnswers`` without
Strawberry's view, with the view's bytes; anything it cannot answer goes on to the view unchanged."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

from benchmarks.queries import DEEP_LEADERBOARD, VERSION_PAGE
from oro_graph.graphql.sqlcompile import executor
from oro_graph.graphql.sqlcompile.fastpath import CompiledAnswers
from tests.sqlcompile.conftest import Graph

pytestmark = pytest.mark.postgres


def fast_path(world: Graph) -> CompiledAnswers:
    world.client.get("/health")  # the middleware stack is built on the first request
    layer: Any = world.client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, CompiledAnswers):
        layer = layer.app
    return layer


def ids(world: Graph, sql: str) -> list[str]:
    with world.runtime.db.engine.connect() as conn:
        return [str(v) for v in conn.execute(text(sql)).scalars()]


def answered(world: Graph, document: str, variables: dict[str, Any] | None = None) -> tuple[Any, ...]:
    response = world.client.post("/graphql", json={"query": document, "variables": variables or {}})
    varying = {"x-request-id", "x-ratelimit-remaining"}
    headers = sorted((k, v) for k, v in response.headers.items() if k not in varying)
    return response.status_code, headers, response.content


@pytest.mark.parametrize("query", ["deep leaderboard", "version page"])
def test_a_planned_document_is_answered_without_the_view_with_its_bytes(
    world: Graph, compiled_answers: list[bool], built: list[str], query: str
) -> None:
    fast = fast_path(world)
    version = ids(world, "SELECT id FROM agentversion WHERE final_score IS NOT NULL ORDER BY id LIMIT 2")
    document, pool = (
        (DEEP_LEADERBOARD, [None])
        if query == "deep leaderboard"
        else (VERSION_PAGE, [{"id": v} for v in version])
    )
    before = fast.answered
    viewed = answered(world, document, pool[0])  # planned by the executor, answered by the view
    assert fast.answered == before
    for i, variables in enumerate(pool):
        # a copy by comment (the uncached benchmark's request) and another id share the plan
        copy = answered(world, f"# copy {i}\n{document}", variables)
        assert copy[2] == world.post(document, variables, compiled=False)
        if i == 0:
            assert copy == viewed
    assert fast.answered == before + len(pool)
    assert len(built) == 1 and compiled_answers == [True] * (1 + len(pool))


def test_a_statement_that_declines_is_not_run_again_by_the_executor(
    world: Graph, built: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []

    def declining(*_: Any) -> None:
        runs.append(1)

    monkeypatch.setattr(executor, "answer", declining)
    fast = fast_path(world)
    before = fast.answered
    executed = world.post(DEEP_LEADERBOARD, compiled=False)
    for i in range(3):
        assert answered(world, f"# {i}\n{DEEP_LEADERBOARD}")[2] == executed
    assert len(runs) == 3  # once per request: by the executor, then by the fast path alone
    assert fast.answered == before


@pytest.mark.parametrize("variables", [{"id": None}, {"id": {"not": "an id"}}, {}])
def test_variables_the_executor_refuses_go_on_to_it(
    world: Graph, built: list[str], variables: dict[str, Any]
) -> None:
    fast = fast_path(world)
    [version] = ids(world, "SELECT id FROM agentversion ORDER BY id LIMIT 1")
    answered(world, VERSION_PAGE, {"id": version})
    before = fast.answered
    copy = f"# refused\n{VERSION_PAGE}"
    refused = answered(world, copy, variables)
    assert b'"errors"' in refused[2] and refused[2] == world.post(copy, variables, compiled=False)
    assert fast.answered == before


def test_a_failing_plan_lookup_goes_on_to_the_view(
    world: Graph, built: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("a bug in the lookup")

    fast = fast_path(world)
    answered(world, DEEP_LEADERBOARD)
    monkeypatch.setattr(executor, "known_plan", broken)
    before = fast.answered
    assert answered(world, DEEP_LEADERBOARD)[2] == world.post(DEEP_LEADERBOARD, compiled=False)
    assert fast.answered == before


@pytest.mark.parametrize("accept", ["text/event-stream", "multipart/mixed;subscriptionSpec=1.0"])
def test_a_stream_goes_on_to_the_view(world: Graph, built: list[str], accept: str) -> None:
    fast = fast_path(world)
    answered(world, DEEP_LEADERBOARD)
    before = fast.answered
    world.client.post("/graphql", json={"query": DEEP_LEADERBOARD}, headers={"accept": accept})
    assert fast.answered == before


def test_the_statement_runs_without_begin_and_commit_and_leaves_the_connection_transactional(
    world: Graph, built: list[str]
) -> None:
    """One statement is its own transaction: no BEGIN before it (psycopg sends one when the
    connection is idle outside autocommit) and so no COMMIT after it; the pool gets the connection
    back in transaction mode, for the services that write."""
    fast = fast_path(world)
    answered(world, DEEP_LEADERBOARD)  # planned
    seen: list[tuple[Any, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append((cursor.connection, cursor.connection.info.transaction_status))

    engine = world.runtime.db.engine
    event.listen(engine, "after_cursor_execute", note)
    try:
        before = fast.answered
        assert answered(world, f"# fresh\n{DEEP_LEADERBOARD}")[0] == 200
        assert fast.answered == before + 1
    finally:
        event.remove(engine, "after_cursor_execute", note)
    assert [status for _, status in seen] == [psycopg.pq.TransactionStatus.IDLE]
    assert all(raw.autocommit is False for raw, _ in seen)
