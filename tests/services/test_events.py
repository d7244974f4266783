from datetime import timedelta

from oro_graph.models import ProblemStatus, RunStatus, utcnow
from oro_graph.services import evaluations, events, suites
from tests.factories import claim, complete, make_eligible, make_world, register, submit


def _kinds(rows):
    return [e.kind for e in rows]


def test_a_runs_life_is_logged_in_order(runtime):
    # given
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    v = world.validators[0]
    t0 = utcnow()
    c = claim(runtime, v, now=t0)
    p = runtime.db.call(suites.problems_for_suite, world.suite.id)[0].id
    # when
    runtime.db.call(
        evaluations.heartbeat, run_id=c.run.id, validator_hotkey=v, settings=runtime.settings, now=t0
    )
    runtime.db.call(
        evaluations.update_progress,
        run_id=c.run.id,
        validator_hotkey=v,
        problems=[evaluations.ProblemUpdate(p, ProblemStatus.RUNNING)],
        now=t0,
    )
    runtime.db.call(
        evaluations.update_progress,
        run_id=c.run.id,
        validator_hotkey=v,
        problems=[evaluations.ProblemUpdate(p, ProblemStatus.SUCCESS, score=0.75)],
        now=t0,
    )
    complete(runtime, c.run.id, v, score=0.75, now=t0)
    # then
    log = runtime.db.call(events.run_events, c.run.id)
    assert _kinds(log) == [
        "CLAIMED",
        "STATUS_CHANGED",
        "HEARTBEAT",
        "PROBLEM_STARTED",
        "PROBLEM_SCORED",
        "FINISHED",
    ]
    assert log[1].payload == {"from": "CLAIMED", "to": "RUNNING"}
    assert log[4].payload["score"] == 0.75
    assert log[5].payload == {"status": "SUCCESS", "validator_score": 0.75, "became_eligible": False}
    # a cursor resumes after what was seen
    assert _kinds(runtime.db.call(events.run_events, c.run.id, after=log[3].id)) == [
        "PROBLEM_SCORED",
        "FINISHED",
    ]


def test_failed_writes_leave_no_events(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    before = runtime.db.call(events.latest_event_id)
    try:
        complete(runtime, c.run.id, world.validators[0], score=None)  # MISSING_SCORE
    except Exception:
        pass
    assert runtime.db.call(events.latest_event_id) == before


def test_expiry_is_a_status_change(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    t0 = utcnow()
    c = claim(runtime, world.validators[0], now=t0)
    runtime.db.call(evaluations.expire_leases, now=t0 + timedelta(seconds=301))
    last = runtime.db.call(events.run_events, c.run.id)[-1]
    assert (last.kind, last.payload["to"]) == ("STATUS_CHANGED", RunStatus.STALE.value)


def test_board_events_enter_move_and_crown(runtime):
    world = make_world(runtime)
    t0 = utcnow() - timedelta(days=1)
    low = make_eligible(runtime, world, world.miners[0], "low", [0.3, 0.3], now=t0)
    high = make_eligible(runtime, world, world.miners[1], "high", [0.9, 0.9], now=t0 + timedelta(hours=1))
    mid = make_eligible(
        runtime, world, register(runtime, "Ferdie"), "mid", [0.5, 0.5], now=t0 + timedelta(hours=2)
    )
    log = runtime.db.call(events.board_events, world.suite.id)
    summary = [(e.kind, e.agent_version_id, (e.payload or {}).get("rank")) for e in log]
    assert summary == [
        ("ENTERED", low, 1),
        ("TOP_CHANGED", low, None),
        ("ENTERED", high, 1),
        ("MOVED", low, 2),
        ("TOP_CHANGED", high, None),
        ("ENTERED", mid, 2),
        ("MOVED", low, 3),
    ]
