"""What a validator's completion reads does not grow with the board.

A statement that sorts a table to take its first row (the best eligible version, the reigning top
agent, the latest race or event) must ask the database for one row: without ``LIMIT 1`` PostgreSQL
sorts and sends every row and the driver receives them all, so each completion that made a version
eligible cost a read of the whole board (the validator loop's largest single cost in a profile).
Counted at the driver (rows each statement returned), which PostgreSQL reports and SQLite does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from oro_graph.models import Agent, AgentVersion, AgentVersionState, Miner
from oro_graph.models.base import utcnow
from oro_graph.runtime import Runtime
from oro_graph.services import events
from oro_graph.services.leaderboard import MOVED_EVENTS_WITHIN
from tests.factories import claim, complete, world_with_a_version

BOARD = MOVED_EVENTS_WITHIN + 50  # the new entry ranks below the top 100: no MOVED events to read


@contextmanager
def rows_returned(engine: Any) -> Iterator[list[tuple[int, str]]]:
    """(rows, statement) of every statement the engine runs meanwhile, from any thread (an INSERT's
    rows are what it RETURNED)."""
    seen: list[tuple[int, str]] = []

    def note(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append((cursor.rowcount, statement))

    event.listen(engine, "after_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "after_cursor_execute", note)


def _fill_board(rt: Runtime, suite_id: int, miner: str) -> None:
    """BOARD eligible versions, all scoring above what the test's version will score."""

    def fill(session: Any) -> None:
        if session.get(Miner, miner) is None:
            session.add(Miner(hotkey=miner, created_at=utcnow()))
            session.flush()
        agent = Agent(miner_hotkey=miner, name="board")
        session.add(agent)
        session.flush()
        for i in range(BOARD):
            session.add(
                AgentVersion(
                    agent_id=agent.id,
                    version_number=i + 1,
                    suite_id=suite_id,
                    state=AgentVersionState.ELIGIBLE,
                    eligible_at=utcnow(),
                    final_score=0.5 + i / (10 * BOARD),
                    code_key=f"agents/board/v{i}.py",
                    code_sha256="0" * 64,
                    code_size=1,
                )
            )

    fill.__oro_writes__ = True  # type: ignore[attr-defined]
    rt.db.call(fill)


@pytest.mark.postgres
def test_a_completion_that_makes_a_version_eligible_reads_a_bounded_number_of_rows(
    pg_runtime: Runtime,
) -> None:
    rt = pg_runtime
    # given a board of 150 eligible versions and a version one success from eligible
    world = world_with_a_version(rt, "new")
    _fill_board(rt, world.suite.id, world.miners[1])
    first = claim(rt, world.validators[0])
    assert first is not None
    complete(rt, first.run.id, world.validators[0], score=0.1)
    second = claim(rt, world.validators[1])
    assert second is not None

    # when its last success lands
    with rows_returned(rt.db.engine) as seen:
        done = complete(rt, second.run.id, world.validators[1], score=0.1)

    # then it entered the board last, and no statement returned more than a row or two
    assert done.became_eligible and done.final_score is not None
    reads = [(rows, sql) for rows, sql in seen if sql.lstrip().upper().startswith("SELECT")]
    assert reads
    most, statement = max(reads)
    assert most <= 2, f"{most} rows from: {statement}"


@pytest.mark.postgres
def test_the_latest_event_id_reads_one_row(pg_runtime: Runtime) -> None:
    rt = pg_runtime
    world = world_with_a_version(rt)
    for validator in world.validators[:2]:  # each claim records an event
        assert claim(rt, validator) is not None
    with rows_returned(rt.db.engine) as seen:
        latest = rt.db.call(events.latest_event_id)
    assert latest > 0
    assert [rows for rows, _ in seen] == [1]
