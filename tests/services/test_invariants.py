from sqlalchemy import text

from oro_graph.services import invariants
from tests.factories import claim, make_eligible, make_world, submit


def _check(rt):
    return rt.db.call(invariants.check_invariants, max_active_runs_per_validator=1)


def test_a_healthy_lifecycle_breaks_nothing(runtime):
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.3, 0.5])
    submit(runtime, world.miners[1], "b")
    claim(runtime, world.validators[2])
    assert _check(runtime) == dict.fromkeys(invariants.INVARIANTS, 0)


def test_each_corruption_is_detected(runtime):
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "a", [0.3, 0.5])
    with runtime.db.engine.begin() as conn:
        conn.execute(text("UPDATE agentversion SET final_score = 0.9"))
        conn.execute(text("UPDATE workitem SET active_runs = 1"))
    broken = _check(runtime)
    assert broken["eligible_score_not_mean_of_included"] == 1
    assert broken["over_claimed_work_items"] == 1
    assert broken["active_runs_mismatch"] == 1
