"""The validator calls take the signer's VALIDATOR_STATE row first (``evaluations.lease`` says why): a
completion that held its work item while it waited for the validator's row deadlocked with a claim of
the same validator holding the row and waiting for the work item."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

import pytest
from sqlalchemy import text

from oro_graph.models import ProblemStatus
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, locks, suites
from oro_graph.services.locks import Lock
from tests.factories import claim, complete, make_world, submit
from tests.support.locks import wait_for_a_lock_wait


def _locks_taken(monkeypatch: pytest.MonkeyPatch, call: Callable[[], Any]) -> list[tuple[Lock, Hashable]]:
    taken: list[tuple[Lock, Hashable]] = []
    real = locks.take

    def spy(session: Any, lock: Lock, key: Hashable = None) -> None:
        taken.append((lock, key))
        real(session, lock, key)

    monkeypatch.setattr(locks, "take", spy)
    try:
        call()
    finally:
        monkeypatch.setattr(locks, "take", real)
    return taken


def test_every_validator_call_takes_the_validators_row_first(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a validator and a version to evaluate
    rt = runtime
    world = make_world(rt)
    validator = world.validators[0]
    submit(rt, world.miners[0], "a")
    problem = rt.db.call(suites.problems_for_suite, world.suite.id)[0]
    update = evaluations.ProblemUpdate(problem_id=problem.id, status=ProblemStatus.SUCCESS, score=0.5)
    held: dict[str, Any] = {}

    def claim_it() -> None:
        held["claim"] = claim(rt, validator)

    def beat() -> None:
        run_id = held["claim"].run.id
        rt.db.call(evaluations.heartbeat, run_id=run_id, validator_hotkey=validator, settings=rt.settings)

    def report() -> None:
        run_id = held["claim"].run.id
        rt.db.call(evaluations.update_progress, run_id=run_id, validator_hotkey=validator, problems=[update])

    # when each call of the loop runs
    taken = {
        name: _locks_taken(monkeypatch, call)
        for name, call in (
            ("claim", claim_it),
            ("heartbeat", beat),
            ("progress", report),
            ("complete", lambda: complete(rt, held["claim"].run.id, validator)),
        )
    }

    # then each took the validator's row before anything else, and the run before its work item
    assert {name: found[0] for name, found in taken.items()} == dict.fromkeys(
        taken, (Lock.VALIDATOR_STATE, validator)
    )
    assert [lock for lock, _ in taken["complete"]][:3] == [Lock.VALIDATOR_STATE, Lock.RUN, Lock.WORK_ITEM]


def test_a_completion_waiting_for_the_validators_row_holds_no_work_item(runtime: Runtime) -> None:
    # given (PostgreSQL: real row locks) a validator holding a run, and a transaction holding the
    # validator's row, as a claim of the same validator does while it looks for work
    rt = runtime
    if rt.db.is_sqlite:
        pytest.skip("row locks: PostgreSQL only (SQLite has one writer at a time)")
    world = make_world(rt)
    validator = world.validators[0]
    submit(rt, world.miners[0], "a")
    held = claim(rt, validator)
    assert held is not None
    done: list[Any] = []
    with rt.db.engine.connect() as claimer:
        claimer.execute(
            text("SELECT hotkey FROM validatorstate WHERE hotkey = :h FOR UPDATE"), {"h": validator}
        )

        # when the validator completes its run meanwhile
        def finish() -> None:
            try:
                done.append(complete(rt, held.run.id, validator))
            except Exception as exc:  # reported by the assertion below
                done.append(exc)

        worker = threading.Thread(target=finish)
        worker.start()
        try:
            wait_for_a_lock_wait(rt.db.engine, what="the validator's row")
            # then, while it waits, the run's work item and the run are free for the claim to take
            with rt.db.engine.connect() as other:
                for table, key in (("workitem", held.run.work_item_id), ("evaluationrun", held.run.id)):
                    other.execute(
                        text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE NOWAIT"), {"id": key}
                    )
                other.rollback()
        finally:
            claimer.rollback()
            worker.join(timeout=30)
    # and the completion went through once the row was free
    assert len(done) == 1 and isinstance(done[0], evaluations.Completion), done
