"""Races: many validators claiming at once never over-claim; two completions, one winner."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import text

from oro_graph.errors import AtCapacity, OroError
from oro_graph.models import Role, RunStatus, utcnow
from oro_graph.services import invariants
from oro_graph.services.evaluations.claim import _insert_run
from tests.factories import claim, complete, make_suite, register, submit
from tests.support.locks import wait_for_a_lock_wait


def assert_invariants(rt) -> None:
    broken = rt.db.call(
        invariants.check_invariants, max_active_runs_per_validator=rt.settings.max_active_runs_per_validator
    )
    assert broken == dict.fromkeys(invariants.INVARIANTS, 0)


def _run_at_once(n: int, fn) -> list:
    barrier = threading.Barrier(n)

    def task(i: int):
        barrier.wait()
        try:
            return fn(i)
        except OroError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(task, range(n)))


def test_concurrent_claims_never_over_claim(runtime):
    # given 8 versions needing 2 successes each, and 24 validators claiming at the same instant
    make_suite(runtime)
    t0 = utcnow()
    for i in range(8):
        miner = register(runtime, f"miner{i}")
        submit(runtime, miner, f"agent{i}", now=t0 - timedelta(minutes=i))
    validators = [register(runtime, f"validator{i}", Role.VALIDATOR) for i in range(24)]
    # when
    results = _run_at_once(len(validators), lambda i: claim(runtime, validators[i]))
    # then: exactly 16 slots existed, 16 claims won, the rest got nothing; no errors
    won = [r for r in results if r is not None and not isinstance(r, Exception)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert len(won) == 16
    assert_invariants(runtime)


def test_same_validator_racing_itself_stays_within_capacity(runtime):
    make_suite(runtime)
    for i in range(6):
        submit(runtime, register(runtime, f"miner{i}"), f"agent{i}")
    validator = register(runtime, "validator", Role.VALIDATOR)
    results = _run_at_once(6, lambda _: claim(runtime, validator))
    won = [r for r in results if r is not None and not isinstance(r, Exception)]
    assert len(won) == 1
    assert all(isinstance(r, AtCapacity) for r in results if r not in won)
    assert_invariants(runtime)


def test_two_completions_at_once_one_wins(runtime):
    make_suite(runtime)
    submit(runtime, register(runtime, "miner"), "agent")
    v1, v2 = (register(runtime, n, Role.VALIDATOR) for n in ("v1", "v2"))
    c1, c2 = claim(runtime, v1), claim(runtime, v2)
    complete(runtime, c2.run.id, v2, score=0.4)
    results = _run_at_once(4, lambda i: complete(runtime, c1.run.id, v1, score=0.6))
    wins = [r for r in results if not isinstance(r, Exception)]
    assert len(wins) == 1 and wins[0].became_eligible
    assert {type(r).__name__ for r in results if isinstance(r, Exception)} == {"RunAlreadyComplete"}
    assert_invariants(runtime)


def test_completions_of_different_versions_crown_one_top(runtime):
    make_suite(runtime)
    n = 6
    for i in range(n):
        submit(runtime, register(runtime, f"miner{i}"), f"agent{i}")
    validators = [register(runtime, f"validator{i}", Role.VALIDATOR) for i in range(2 * n)]
    claims = [claim(runtime, v) for v in validators]
    pairs = list(zip(validators, claims, strict=True))
    firsts, seconds = {}, []
    for v, c in pairs:
        if c.run.agent_version_id in firsts:
            seconds.append((v, c))
        else:
            firsts[c.run.agent_version_id] = (v, c)
    for v, c in firsts.values():
        complete(runtime, c.run.id, v, score=0.5)
    results = _run_at_once(
        len(seconds), lambda i: complete(runtime, seconds[i][1].run.id, seconds[i][0], score=0.5 + i / 100)
    )
    assert all(not isinstance(r, Exception) and r.became_eligible for r in results)
    assert_invariants(runtime)


def test_heartbeat_racing_completion(runtime):
    make_suite(runtime)
    submit(runtime, register(runtime, "miner"), "agent")
    v = register(runtime, "v1", Role.VALIDATOR)
    c = claim(runtime, v)
    from oro_graph.services import evaluations

    def act(i: int):
        if i % 2:
            return runtime.db.call(
                evaluations.heartbeat, run_id=c.run.id, validator_hotkey=v, settings=runtime.settings
            )
        return complete(runtime, c.run.id, v, status=RunStatus.FAILED, score=None)

    results = _run_at_once(6, act)
    completions = [r for r in results if isinstance(r, evaluations.Completion)]
    assert len(completions) == 1
    assert_invariants(runtime)


def test_first_submissions_of_a_new_miner_racing(runtime):
    # given a miner that never submitted, sending the same submission from several processes at once
    make_suite(runtime)
    miner = register(runtime, "newcomer")
    # when
    results = _run_at_once(6, lambda i: submit(runtime, miner, f"agent{i}"))
    # then exactly one is accepted; the others see the cooldown, none crashes
    accepted = [r for r in results if not isinstance(r, Exception)]
    assert len(accepted) == 1 and accepted[0].status == "ACCEPTED"
    assert {type(r).__name__ for r in results if isinstance(r, Exception)} == {"CooldownActive"}


def test_a_fruitless_blocking_attempt_gives_its_work_item_locks_back(runtime):
    # given (PostgreSQL: real row locks) one open work item, locked by another transaction
    if runtime.db.is_sqlite:
        pytest.skip("row locks: PostgreSQL only (SQLite has one writer at a time)")
    make_suite(runtime)
    submit(runtime, register(runtime, "miner"), "agent")
    validator = register(runtime, "v1", Role.VALIDATOR)
    engine = runtime.db.engine
    with engine.connect() as holder:
        item = holder.execute(text("SELECT id FROM workitem FOR UPDATE")).scalar_one()
        found: list = []
        answered, release = threading.Event(), threading.Event()

        def look_for_work() -> None:  # a claim's search for a run, its transaction kept open after
            try:
                with runtime.db.session(write=True) as session:
                    found.append(_insert_run(session, validator, runtime.settings, None, utcnow()))
                    answered.set()
                    release.wait(30)
            finally:
                answered.set()

        worker = threading.Thread(target=look_for_work)
        worker.start()
        try:
            # when the claim waits for the item (SKIP LOCKED found nothing), and the holder fills it
            wait_for_a_lock_wait(engine)
            holder.execute(
                text("UPDATE workitem SET active_runs = required_successes WHERE id = :id"), {"id": item}
            )
            holder.commit()
            assert answered.wait(30)
            # then the claim found no run, and its transaction, still open, holds no lock on the item
            assert found == [None]
            with engine.connect() as other:
                other.execute(text("SELECT id FROM workitem WHERE id = :id FOR UPDATE NOWAIT"), {"id": item})
                other.rollback()
        finally:
            release.set()
            worker.join(timeout=30)
