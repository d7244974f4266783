"""Which path answers, and that the compiled one keeps the executor's rules: one statement for the
deep leaderboard, the executor on SQLite and for errors, the time budget, the cache's dependencies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import Text, bindparam, event, literal_column, select
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from benchmarks.queries import DEEP_LEADERBOARD, VERSION_PAGE
from oro_graph import db as db_module
from oro_graph.graphql.sqlcompile import driver, executor, wire
from oro_graph.graphql.sqlcompile.mapping import RELEASE_CUTOFF
from oro_graph.runtime import Runtime
from tests.factories import make_eligible, make_world, register, submit
from tests.graphql.conftest import _client


def _post(client: Any, document: str, variables: dict[str, Any] | None = None, *, compiled: bool) -> Any:
    saved = executor.ENABLED
    executor.ENABLED = compiled
    try:
        response = client.post("/graphql", json={"query": document, "variables": variables or {}})
    finally:
        executor.ENABLED = saved
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
def small_world(runtime: Runtime) -> list[str]:
    """Two eligible versions with runs and one still queued; its version ids."""
    world = make_world(runtime)
    versions = [
        str(make_eligible(runtime, world, world.miners[0], "first", [0.4, 0.6])),
        str(make_eligible(runtime, world, world.miners[1], "second", [1.0, 1.0])),
    ]
    ferdie = register(runtime, "Ferdie")
    versions.append(str(submit(runtime, ferdie, "queued").agent_version_id))
    return versions


def test_compiled_on_postgresql_executed_on_sqlite_with_the_same_answers(
    runtime: Runtime, small_world: list[str], compiled_answers: list[bool]
) -> None:
    client = _client(runtime, response_cache=False)
    bodies = [(DEEP_LEADERBOARD, None)] + [(VERSION_PAGE, {"id": v}) for v in small_world]
    for document, variables in bodies:
        compiled = _post(client, document, variables, compiled=True)
        assert compiled == _post(client, document, variables, compiled=False)
        assert "errors" not in json.loads(compiled)
    assert compiled_answers == ([] if runtime.db.is_sqlite else [True] * len(bodies))


def test_an_answer_the_executor_would_refuse_is_executed(
    runtime: Runtime, compiled_answers: list[bool]
) -> None:
    client = _client(runtime, response_cache=False)
    compiled = _post(client, DEEP_LEADERBOARD, compiled=True)  # no suite is active: SUITE_NOT_FOUND
    assert compiled == _post(client, DEEP_LEADERBOARD, compiled=False)
    assert json.loads(compiled)["errors"]
    assert compiled_answers == ([] if runtime.db.is_sqlite else [False])  # the statement said not ok


def _statements(runtime: Runtime, client: Any, *, compiled: bool) -> int:
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(runtime.db.engine, "before_cursor_execute", counted)
    try:
        _post(client, DEEP_LEADERBOARD, compiled=compiled)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", counted)
    return count


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_compiled_deep_leaderboard_is_one_statement(runtime: Runtime, small_world: list[str]) -> None:
    client = _client(runtime, response_cache=False)
    assert _statements(runtime, client, compiled=True) == 1
    assert _statements(runtime, client, compiled=False) > 1


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_compiled_answer_depends_on_what_it_read_and_not_on_leases(
    runtime: Runtime, small_world: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response cache keys on these: a heartbeat (lease columns) leaves the board cached, a score
    or a race's status ends it (``oro_graph.dependencies``)."""
    recorded: list[set[str]] = []
    real = executor.answer

    def answer(session: Session, compiled: Any) -> Any:
        reads: set[str] = set()
        token = db_module.reads.set(reads)
        try:
            return real(session, compiled)
        finally:
            db_module.reads.reset(token)
            recorded.append(reads)

    monkeypatch.setattr(executor, "answer", answer)
    _post(_client(runtime, response_cache=False), DEEP_LEADERBOARD, compiled=True)
    [reads] = recorded
    assert {
        "evaluationrun.validator_score",
        "race.status",
        "agentversion.final_score",
        "hotkey.name",
    } <= reads
    assert not {"evaluationrun.lease_expires_at", "evaluationrun.last_heartbeat_at"} & reads


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_compiled_path_keeps_the_time_budget(
    runtime: Runtime, small_world: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = runtime.db.run

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn is executor.answer:
            await asyncio.sleep(30)  # a statement that never ends: the deadline cancels the wait
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(runtime.db, "run", run)
    client = _client(runtime, response_cache=False, graphql_time_budget_seconds=0.3)
    answer = json.loads(_post(client, DEEP_LEADERBOARD, compiled=True))
    assert answer["data"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["TIME_BUDGET_EXCEEDED"]


def _deep_leaderboard_statement(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> driver.Prepared:
    """The one statement the compiled deep leaderboard sends (planned afresh)."""
    sent: list[driver.Prepared] = []
    real = driver.run

    def run(session: Session, prepared: driver.Prepared, params: dict[str, Any]) -> Any:
        sent.append(prepared)
        return real(session, prepared, params)

    monkeypatch.setattr(driver, "run", run)
    monkeypatch.setattr(executor, "PLANS", executor.Plans())
    _post(_client(runtime, response_cache=False), DEEP_LEADERBOARD, compiled=True)
    [prepared] = sent
    return prepared


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_only_the_per_run_values_are_parameters_of_the_statement(
    runtime: Runtime, small_world: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constants (limits, keys, the JSON text around the values) are written into the statement:
    the deep leaderboard's one parameter is the release cutoff, whatever the clock."""
    prepared = _deep_leaderboard_statement(runtime, monkeypatch)
    assert prepared.order == (RELEASE_CUTOFF,)
    assert prepared.sql.count("$1") == 1 and "$2" not in prepared.sql


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_deep_leaderboard_reads_each_agent_once_and_numbers_only_the_board(
    runtime: Runtime, small_world: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry's ``agentVersion { agent }`` is the agent the board joined (no lookup by key per
    entry), and its runs, asked without ``pageInfo``, are read 10 rows a page without numbering
    them: the only ``row_number()`` is the board's rank."""
    prepared = _deep_leaderboard_statement(runtime, monkeypatch)
    assert prepared.sql.count(" agent AS ") == 1  # JOIN agent AS agent_1 ON ... (the board's)
    assert prepared.sql.count("row_number()") == 1
    assert "LIMIT 10)" in prepared.sql and "LIMIT 11" not in prepared.sql


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_statement_whose_placeholders_do_not_match_its_parameters_is_executed(
    runtime: Runtime, small_world: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text with a placeholder no parameter fills is refused before it runs (it would bind the
    wrong values or fail inside PostgreSQL): the executor answers, the same answer."""
    client = _client(runtime, response_cache=False)
    executed = _post(client, DEEP_LEADERBOARD, compiled=False)
    real = driver._inlined

    def stray(statement: Any, per_run: frozenset[str], dialect: Any) -> Any:
        return real(statement, per_run, dialect).where(literal_column("$2") == literal_column("$2"))

    refused: list[Exception] = []
    real_answer = executor.answer

    def answer(session: Session, bound: Any) -> Any:
        try:
            return real_answer(session, bound)
        except driver.PlaceholderMismatch as exc:
            refused.append(exc)
            raise

    monkeypatch.setattr(driver, "_inlined", stray)
    monkeypatch.setattr(executor, "answer", answer)
    monkeypatch.setattr(executor, "PLANS", executor.Plans())
    assert _post(client, DEEP_LEADERBOARD, compiled=True) == executed
    [error] = refused
    assert "placeholders [1, 2] for 1 parameters" in str(error)


def test_constants_are_written_into_the_text_and_a_backslash_stays_a_parameter() -> None:
    statement = select(wire.concat(wire.text("{'a':"), wire.text("b\\c"), bindparam("run", type_=Text)))
    prepared = driver.Prepared.of(statement, postgresql.dialect(), frozenset({"run"}))
    assert "'{''a'':'" in prepared.sql  # written in, quote doubled
    assert len(prepared.order) == 2 and "run" in prepared.order
    assert sorted(prepared.values({"run": "x"})) == sorted(["b\\c", "x"])
