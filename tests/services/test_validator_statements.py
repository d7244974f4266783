"""What each validator call costs the database, in statements: the permit check included (it is in the
call's own transaction), so a call that grows a statement fails here.

Counted at the engine, per call, on a validator that already has its state row and a version already
being evaluated (the steady state of the loop), and the first claim of a version by a new validator.
On SQLite the count includes the ``BEGIN IMMEDIATE`` each write transaction starts with. A call's events
are one INSERT, however many, which on PostgreSQL also notifies their subscribers (``pg_notify``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.refusals import StatementCounter
from oro_graph.models import ProblemStatus, RunStatus
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, suites
from tests.factories import claim, complete, make_world, submit

# call -> (SQLite, PostgreSQL)
EXPECTED = {
    "first claim": (8, 7),  # + the validator's state row made
    "claim of a queued version": (7, 6),  # + the version QUEUED -> RUNNING
    "claim": (6, 5),
    "no work": (4, 3),
    "first heartbeat": (5, 4),  # + CLAIMED -> RUNNING (both events in one INSERT)
    "heartbeat": (4, 3),
    "progress": (6, 5),
    "complete": (7, 6),
    # + the version ELIGIBLE: the other scores, its UPDATE and row, the board's rank and top 100, a
    # completed race?, the best version, the reign; on PostgreSQL the board's advisory lock, asked once
    "complete making the version eligible": (16, 16),
}


def _count(rt: Runtime, call: Callable[[], Any]) -> tuple[int, Any]:
    with StatementCounter(rt.db.engine) as sql:
        out = call()
    return sql.count, out


def test_each_validator_call_runs_a_fixed_number_of_statements(runtime: Runtime) -> None:
    # given a suite, a validator, and two versions (the second already evaluated by another validator)
    rt = runtime
    world = make_world(rt)
    first, other = world.validators[0], world.validators[1]
    submit(rt, world.miners[0], "a")
    submit(rt, world.miners[1], "b")
    warm = claim(rt, other)  # the other validator takes version a: it is RUNNING from now on
    assert warm is not None
    problems = rt.db.call(suites.problems_for_suite, world.suite.id)
    updates = [
        evaluations.ProblemUpdate(problem_id=p.id, status=ProblemStatus.SUCCESS, score=0.5)
        for p in problems[:3]
    ]
    counts: dict[str, int] = {}

    # when the validator goes through its loop
    counts["first claim"], got = _count(rt, lambda: claim(rt, first))
    run_id = got.run.id

    def beat() -> Any:
        return rt.db.call(evaluations.heartbeat, run_id=run_id, validator_hotkey=first, settings=rt.settings)

    counts["first heartbeat"], _ = _count(rt, beat)
    counts["heartbeat"], beaten = _count(rt, beat)

    def report() -> Any:
        return rt.db.call(
            evaluations.update_progress, run_id=run_id, validator_hotkey=first, problems=updates
        )

    counts["progress"], saved = _count(rt, report)
    counts["complete"], done = _count(rt, lambda: complete(rt, run_id, first, score=0.5))
    # version a has its 2 successes: b is the open one
    counts["complete making the version eligible"], eligible = _count(
        rt, lambda: complete(rt, warm.run.id, other, score=0.7)
    )
    counts["claim of a queued version"], queued = _count(rt, lambda: claim(rt, other))
    counts["claim"], again = _count(rt, lambda: claim(rt, first))
    complete(rt, queued.run.id, other, score=0.7)  # b: one success, one run leased, none to give
    counts["no work"], none = _count(rt, lambda: claim(rt, other))

    # then every call did its work, in the statements it is allowed
    assert beaten.status == RunStatus.RUNNING and len(saved) == 3 and done.run.status == RunStatus.SUCCESS
    assert queued.run.agent_version_id == again.run.agent_version_id and none is None
    assert eligible.became_eligible
    column = 0 if rt.db.is_sqlite else 1
    assert counts == {call: both[column] for call, both in EXPECTED.items()}
