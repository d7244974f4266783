"""The validator permit is the services' rule: claim, heartbeat, progress and complete check it in their
own transaction, so every caller (REST, GraphQL, the CLI, a script) gets it, and a refused call changes
nothing, not even the sweep of lapsed leases a claim would do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from oro_graph.errors import Forbidden
from oro_graph.models import EvaluationRun, ProblemStatus, RunStatus, utcnow
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, registry, suites
from tests.factories import claim, complete, keypair, make_world, submit


def test_every_lease_call_refuses_a_hotkey_without_a_live_permit(runtime: Runtime) -> None:
    # given a run held by a validator who is then banned
    rt = runtime
    world = make_world(rt)
    submit(rt, world.miners[0], "a")
    validator = world.validators[0]
    got = claim(rt, validator)
    assert got is not None
    problem = rt.db.call(suites.problems_for_suite, world.suite.id)[0]
    rt.db.call(registry.set_banned, validator)

    calls = {
        "claim": lambda hotkey: claim(rt, hotkey),
        "heartbeat": lambda hotkey: rt.db.call(
            evaluations.heartbeat, run_id=got.run.id, validator_hotkey=hotkey, settings=rt.settings
        ),
        "progress": lambda hotkey: rt.db.call(
            evaluations.update_progress,
            run_id=got.run.id,
            validator_hotkey=hotkey,
            problems=[evaluations.ProblemUpdate(problem_id=problem.id, status=ProblemStatus.RUNNING)],
        ),
        "complete": lambda hotkey: complete(rt, got.run.id, hotkey),
    }
    # when each call is made by the banned validator, a miner and an unregistered hotkey
    # then each is FORBIDDEN, with the reason
    for call in calls.values():
        for hotkey, words in (
            (validator, "is banned"),
            (world.miners[0], "no validator permit"),
            (keypair("Ferdie").ss58_address, "not registered"),
        ):
            with pytest.raises(Forbidden, match=words):
                call(hotkey)
    # and the run is as the claim left it
    with rt.db.session() as s:
        run = s.exec(select(EvaluationRun).where(EvaluationRun.id == got.run.id)).one()
    assert run.status == RunStatus.CLAIMED and run.last_heartbeat_at is None


def test_a_refused_claim_does_not_sweep_but_a_permitted_one_does(runtime: Runtime) -> None:
    # given a run whose lease lapsed
    rt = runtime
    world = make_world(rt)
    submit(rt, world.miners[0], "a")
    got = claim(rt, world.validators[0])
    assert got is not None
    later = utcnow() + timedelta(seconds=rt.settings.lease_seconds + 1)

    def status() -> str:
        with rt.db.session() as s:
            return s.exec(select(EvaluationRun.status).where(EvaluationRun.id == got.run.id)).one()

    # when a miner claims, it is refused and the lapsed lease stays as it was
    with pytest.raises(Forbidden):
        claim(rt, world.miners[0], now=later)
    assert status() == RunStatus.CLAIMED
    # when a validator claims, the lease is swept (its own transaction) and the slot is claimed again
    again = claim(rt, world.validators[1], now=later)
    assert status() == RunStatus.STALE
    assert again is not None and again.run.agent_version_id == got.run.agent_version_id
