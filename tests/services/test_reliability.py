from datetime import timedelta

import pytest

from oro_graph.models import RunStatus, utcnow
from oro_graph.services import evaluations, reliability
from tests.factories import claim, complete, make_eligible, make_world, register, submit


def _world(rt):
    """Two versions scored by two validators each, plus a failure and a stale lease."""
    world = make_world(rt)
    t0 = utcnow() - timedelta(days=2)
    a = make_eligible(rt, world, world.miners[0], "a", [0.40, 0.52], now=t0)  # Charlie 0.40, Dave 0.52
    b = make_eligible(
        rt, world, world.miners[1], "b", [0.70, 0.95], now=t0 + timedelta(hours=1)
    )  # Charlie 0.70, Dave 0.95
    third = register(rt, "Ferdie")
    submit(rt, third, "c", now=t0 + timedelta(hours=2))
    c = claim(rt, world.validators[2], now=t0 + timedelta(hours=2))
    complete(
        rt,
        c.run.id,
        world.validators[2],
        status=RunStatus.FAILED,
        score=None,
        now=t0 + timedelta(hours=2, minutes=4),
    )
    claim(rt, world.validators[0], now=t0 + timedelta(hours=3))  # never heartbeats
    rt.db.call(evaluations.expire_leases, now=t0 + timedelta(hours=4))
    return world, t0, (a, b)


def test_outcomes_durations_and_deltas(runtime):
    world, t0, _ = _world(runtime)
    charlie, dave, eve = world.validators
    stats = runtime.db.call(reliability.validator_reliability, [charlie, dave, eve])
    # Charlie: 2 successes + 1 stale; Dave: 2 successes; Eve: 1 failure
    assert stats[charlie].runs == 3 and stats[charlie].counts == {"SUCCESS": 2, "STALE": 1}
    assert stats[charlie].stale_rate == pytest.approx(1 / 3)
    assert stats[eve].rate("FAILED") == 1.0
    # deltas vs peers: Charlie -0.12 and -0.25 -> mean -0.185, sample sd of (-0.12, -0.25) = 0.0919239
    assert stats[charlie].mean_delta == pytest.approx(-0.185)
    assert stats[charlie].delta_sd == pytest.approx(0.0919239, rel=1e-5)
    assert stats[dave].mean_delta == pytest.approx(0.185)
    assert (stats[charlie].versions_compared, stats[charlie].pairs_evaluated) == (2, 2)
    assert stats[eve].mean_delta is None
    # Eve's failed run lasted 4 minutes
    assert stats[eve].duration_p50 == pytest.approx(240, abs=1)


def test_last_activity_is_the_validators_act_not_the_sweep(runtime):
    world, t0, _ = _world(runtime)
    charlie, dave, _ = world.validators
    stats = runtime.db.call(reliability.validator_reliability, [charlie, dave])
    # Charlie's last act was the claim at +3 h; the sweep at +4 h marked it STALE, which is not his doing.
    assert stats[charlie].last_activity_at == t0 + timedelta(hours=3)
    assert stats[dave].last_activity_at == t0 + timedelta(hours=1)  # his completion of version b


def test_window_limits_the_runs(runtime):
    world, t0, _ = _world(runtime)
    charlie = world.validators[0]
    late = reliability.Window(since=t0 + timedelta(hours=2, minutes=30))
    stats = runtime.db.call(reliability.validator_reliability, [charlie], late)
    assert stats[charlie].counts == {"STALE": 1}
    assert stats[charlie].mean_delta is None


def test_suite_variance_spreads(runtime):
    world, _, _ = _world(runtime)
    summary = runtime.db.call(reliability.validator_variance, suite_id=world.suite.id)
    assert summary.versions == 2
    assert summary.mean_spread == pytest.approx(0.185)
    assert summary.max_spread == pytest.approx(0.25)
    assert summary.buckets == {"<0.01": 0, "0.01-0.02": 0, "0.02-0.05": 0, "0.05-0.1": 0, ">=0.1": 2}
    assert {r.hotkey: round(r.mean_delta, 6) for r in summary.deltas} == {
        world.validators[0]: -0.185,
        world.validators[1]: 0.185,
    }
    empty = runtime.db.call(reliability.validator_variance, suite_id=world.suite.id + 1)
    assert empty.versions == 0 and empty.mean_spread is None


def test_score_interval_matches_the_notebook_bootstrap(runtime):
    import pandas as pd

    from oro_graph.analytics import metrics
    from oro_graph.models import ProblemStatus
    from oro_graph.services import suites

    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    admission = submit(runtime, world.miners[0], "a")
    rows = []
    for i, validator in enumerate(world.validators[:2]):
        c = claim(runtime, validator)
        updates = [
            evaluations.ProblemUpdate(p.id, ProblemStatus.SUCCESS, score=round((j * 0.13 + i * 0.07) % 1, 2))
            for j, p in enumerate(problems)
        ]
        runtime.db.call(
            evaluations.update_progress, run_id=c.run.id, validator_hotkey=validator, problems=updates
        )
        complete(runtime, c.run.id, validator, score=0.5)
        rows += [(str(u.problem_id), "SUCCESS", u.score) for u in updates]
    got = runtime.db.call(reliability.score_interval, admission.agent_version_id)
    expected = metrics.bootstrap_scores(
        pd.DataFrame(rows, columns=["problem_id", "status", "score"]).assign(agent_version_id="v"),
        n_boot=2000,
        seed=0,
    ).iloc[0]
    assert got.n_problems == len(problems)
    assert (got.mean, got.lower, got.upper) == pytest.approx(
        (expected["mean"], expected["lower"], expected["upper"])
    )
    assert got.lower < got.mean < got.upper
    # cached until the results change
    assert runtime.db.call(reliability.score_interval, admission.agent_version_id) is got


def test_score_interval_without_results_is_none(runtime):
    world = make_world(runtime)
    admission = submit(runtime, world.miners[0], "a")
    assert runtime.db.call(reliability.score_interval, admission.agent_version_id) is None
