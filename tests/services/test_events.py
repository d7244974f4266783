import json
import uuid
from datetime import timedelta

from sqlalchemy import update as sql_update
from sqlmodel import col

from oro_graph.models import Event, ProblemStatus, RunStatus, utcnow
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


def test_moves_are_published_within_the_top_100(runtime):
    # given a board of twelve versions
    world = make_world(runtime)
    t0 = utcnow() - timedelta(days=1)
    board = [
        make_eligible(runtime, world, register(runtime, f"Miner{i}"), f"v{i}", [0.5 - i / 100] * 2, now=t0)
        for i in range(12)
    ]
    seen = runtime.db.call(events.latest_event_id)

    # when a new best version enters
    best = make_eligible(runtime, world, world.miners[0], "best", [0.9, 0.9], now=t0 + timedelta(hours=1))

    # then every one of the twelve is told it moved down one place (ranks 2 to 13, beyond a top 10)
    log = runtime.db.call(events.board_events, world.suite.id, after=seen)
    moved = [(e.agent_version_id, e.payload["rank"]) for e in log if e.kind == "MOVED"]
    assert [e.agent_version_id for e in log if e.kind == "ENTERED"] == [best]
    assert moved == [(vid, rank) for rank, vid in enumerate(board, start=2)]


def _age_events(runtime, ages):
    """Backdate a run's events (the lease would lapse between heartbeats days apart)."""
    with runtime.db.engine.begin() as conn:
        for event_id, age in ages.items():
            conn.execute(sql_update(Event).where(col(Event.id) == event_id).values(created_at=utcnow() - age))


def test_retention_prunes_old_heartbeats_first_and_other_run_events_later(runtime):
    # given a run claimed 100 days ago that heartbeat two days ago, yesterday and now
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    v = world.validators[0]
    c = claim(runtime, v)
    for _ in range(3):
        runtime.db.call(evaluations.heartbeat, run_id=c.run.id, validator_hotkey=v, settings=runtime.settings)
    claimed, changed, *beats = runtime.db.call(events.run_events, c.run.id)
    _age_events(
        runtime,
        {claimed.id: timedelta(days=100), beats[0].id: timedelta(days=2), beats[1].id: timedelta(hours=23)},
    )
    # when the retention runs (24 h for heartbeats, 90 days for the rest by default)
    report = runtime.db.call(events.prune, settings=runtime.settings, holder="one")
    # then the heartbeat older than a day and the claim older than 90 days are gone, the rest kept
    assert (report.acted, report.heartbeats, report.run_events) == (True, 1, 1)
    kept = runtime.db.call(events.run_events, c.run.id)
    assert [e.id for e in kept] == [changed.id, beats[1].id, beats[2].id]
    # and while its lease holds, another process does not prune
    assert runtime.db.call(events.prune, settings=runtime.settings, holder="two").acted is False


def test_retention_deletes_in_batches(runtime, monkeypatch):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    v = world.validators[0]
    c = claim(runtime, v)
    for _ in range(5):
        runtime.db.call(evaluations.heartbeat, run_id=c.run.id, validator_hotkey=v, settings=runtime.settings)
    beats = [e for e in runtime.db.call(events.run_events, c.run.id) if e.kind == "HEARTBEAT"]
    _age_events(runtime, {e.id: timedelta(days=3) for e in beats})
    monkeypatch.setattr(events, "PRUNE_BATCH", 2)
    counts = []
    while (report := runtime.db.call(events.prune, settings=runtime.settings, holder="one")).full:
        counts.append(report.heartbeats)
    counts.append(report.heartbeats)
    assert counts == [2, 2, 1]


def test_event_payloads_keep_the_logs_stored_form():
    # given: the JSON each kind has always been stored as (replayed cursors read it back)
    at = utcnow()
    version, race = uuid.uuid4(), uuid.uuid4()
    stored = {
        events.Claimed("5V", at): {"validator_hotkey": "5V", "lease_expires_at": at.isoformat()},
        events.Heartbeat(at): {"lease_expires_at": at.isoformat()},
        events.ProblemReported(version, ProblemStatus.SUCCESS, 0.5): {
            "problem_id": str(version),
            "status": "SUCCESS",
            "score": 0.5,
        },
        events.StatusChanged(RunStatus.CLAIMED, RunStatus.STALE): {"from": "CLAIMED", "to": "STALE"},
        events.Finished(RunStatus.SUCCESS, 0.9, True): {
            "status": "SUCCESS",
            "validator_score": 0.9,
            "became_eligible": True,
        },
        events.Entered(3, 0.8): {"rank": 3, "final_score": 0.8},
        events.Moved(4, 3, 0.7): {"rank": 4, "previous_rank": 3, "final_score": 0.7},
        events.TopChanged(0.8, None): {"final_score": 0.8, "previous_agent_version_id": None},
        events.TopChanged(0.8, version, race_id=race): {
            "final_score": 0.8,
            "race_id": str(race),
            "previous_agent_version_id": str(version),
        },
        events.RaceChanged(race): {"race_id": str(race)},
    }
    for payload, form in stored.items():
        # when
        written = json.loads(json.dumps(payload.to_json()))
        # then: the same keys in the same order, and read back to the same value
        assert list(written.items()) == list(form.items())
        assert type(payload).from_json(written) == payload


def test_payload_of_tells_a_race_top_change_from_a_board_one():
    race = uuid.uuid4()
    board = Event(id=1, topic="board", kind="TOP_CHANGED", payload={"final_score": 0.5, "race_id": str(race)})
    raced = Event(id=2, topic="race", kind="TOP_CHANGED", payload={"race_id": str(race)})
    assert events.payload_of(board) == events.TopChanged(0.5, None, race_id=race)
    assert events.payload_of(raced) == events.RaceChanged(race)
