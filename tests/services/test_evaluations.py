import math
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select

from oro_graph.errors import (
    AtCapacity,
    EvalRunNotFound,
    InvalidProblemId,
    LeaseExpired,
    MissingScore,
    NotRunOwner,
    RunAlreadyComplete,
    ValidationFailed,
)
from oro_graph.models import (
    AgentVersionState,
    EvaluationRun,
    ProblemResult,
    ProblemStatus,
    RunStatus,
    ValidatorState,
    WorkItem,
    utcnow,
)
from oro_graph.services import agents, evaluations, suites
from tests.factories import claim, complete, make_world, submit


def _heartbeat(rt, run_id, validator, now=None, metrics=None):
    return rt.db.call(
        evaluations.heartbeat,
        run_id=run_id,
        validator_hotkey=validator,
        settings=rt.settings,
        metrics=metrics,
        now=now,
    )


def _progress(rt, run_id, validator, updates, now=None):
    return rt.db.call(
        evaluations.update_progress, run_id=run_id, validator_hotkey=validator, problems=updates, now=now
    )


def _work(rt, version_id):
    with rt.db.session() as s:
        return s.exec(select(WorkItem).where(WorkItem.agent_version_id == version_id)).one()


def _problems(rt, suite_id):
    return rt.db.call(suites.problems_for_suite, suite_id)


def test_claim_leases_oldest_open_work_item(runtime):
    # given two submissions an hour apart
    world = make_world(runtime)
    t0 = utcnow()
    older = submit(runtime, world.miners[0], "a", now=t0 - timedelta(hours=1))
    submit(runtime, world.miners[1], "b", now=t0)
    # when
    c = claim(runtime, world.validators[0], now=t0)
    # then
    assert c.run.agent_version_id == older.agent_version_id
    assert c.run.status == RunStatus.CLAIMED
    assert c.run.lease_expires_at == t0 + timedelta(seconds=runtime.settings.lease_seconds)
    assert "/artifacts/agents/" in c.code_download_url
    assert _work(runtime, older.agent_version_id).active_runs == 1
    version = runtime.db.call(agents.get_version, older.agent_version_id)
    assert version.state == AgentVersionState.RUNNING
    with runtime.db.session() as s:
        assert s.get(ValidatorState, world.validators[0]).last_claim_at == t0


def test_claim_returns_none_without_work(runtime):
    world = make_world(runtime)
    assert claim(runtime, world.validators[0]) is None


def test_claim_at_capacity(runtime):
    world = make_world(runtime)
    t0 = utcnow()
    submit(runtime, world.miners[0], "a", now=t0)
    submit(runtime, world.miners[1], "b", now=t0)
    assert claim(runtime, world.validators[0]) is not None
    with pytest.raises(AtCapacity, match="limit is 1"):
        claim(runtime, world.validators[0])


def test_claim_skips_versions_this_validator_already_ran(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    complete(runtime, c.run.id, world.validators[0], status=RunStatus.FAILED, score=None)
    # the failed slot is free again, but not for the same validator
    assert claim(runtime, world.validators[0]) is None
    again = claim(runtime, world.validators[1])
    assert again.run.agent_version_id == c.run.agent_version_id


def test_claim_never_exceeds_required_successes(runtime):
    world = make_world(runtime)  # required_successes = 2, three validators
    admission = submit(runtime, world.miners[0], "a")
    assert claim(runtime, world.validators[0]) is not None
    assert claim(runtime, world.validators[1]) is not None
    assert claim(runtime, world.validators[2]) is None
    work = _work(runtime, admission.agent_version_id)
    assert work.included_successes + work.active_runs == work.required_successes


def test_heartbeat_extends_lease_and_records_metrics(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    t0 = utcnow()
    c = claim(runtime, world.validators[0], now=t0)
    metrics = evaluations.Metrics(service_versions={"sandbox": "1.2"}, cpu_pct=41.5, docker_container_count=3)
    run = _heartbeat(runtime, c.run.id, world.validators[0], now=t0 + timedelta(seconds=100), metrics=metrics)
    assert run.status == RunStatus.RUNNING
    assert run.lease_expires_at == t0 + timedelta(seconds=100 + runtime.settings.lease_seconds)
    assert run.service_versions == {"sandbox": "1.2"}
    with runtime.db.session() as s:
        state = s.get(ValidatorState, world.validators[0])
    assert (state.cpu_pct, state.docker_container_count) == (41.5, 3)
    assert state.metrics_reported_at == t0 + timedelta(seconds=100)


def test_run_guards_owner_complete_and_lease(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    t0 = utcnow()
    c = claim(runtime, world.validators[0], now=t0)
    with pytest.raises(EvalRunNotFound):
        _heartbeat(runtime, uuid.uuid4(), world.validators[0])
    with pytest.raises(NotRunOwner):
        _heartbeat(runtime, c.run.id, world.validators[1])
    with pytest.raises(LeaseExpired):
        _heartbeat(runtime, c.run.id, world.validators[0], now=t0 + timedelta(seconds=301))
    complete(runtime, c.run.id, world.validators[0], score=0.3, now=t0 + timedelta(seconds=10))
    with pytest.raises(RunAlreadyComplete):
        _heartbeat(runtime, c.run.id, world.validators[0])
    with pytest.raises(RunAlreadyComplete):
        complete(runtime, c.run.id, world.validators[0], score=0.3)


def test_progress_upserts_by_run_and_problem(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    p1, p2 = [p.id for p in _problems(runtime, world.suite.id)[:2]]
    _progress(runtime, c.run.id, world.validators[0], [evaluations.ProblemUpdate(p1, ProblemStatus.RUNNING)])
    _progress(
        runtime,
        c.run.id,
        world.validators[0],
        [
            evaluations.ProblemUpdate(
                p1, ProblemStatus.SUCCESS, score=0.9, execution_time=12.5, inference_total=4
            ),
            evaluations.ProblemUpdate(
                p2, ProblemStatus.FAILED, score=0.0, inference_failure_count=1, inference_total=2
            ),
        ],
    )
    with runtime.db.session() as s:
        rows = {
            r.problem_id: r for r in s.exec(select(ProblemResult).where(ProblemResult.run_id == c.run.id))
        }
        run = s.get(EvaluationRun, c.run.id)
    assert len(rows) == 2
    assert (rows[p1].status, rows[p1].score, rows[p1].execution_time) == ("SUCCESS", 0.9, 12.5)
    assert run.status == RunStatus.RUNNING
    done = complete(runtime, c.run.id, world.validators[0], score=0.45)
    assert (done.run.inference_failure_count, done.run.inference_total) == (1, 6)


def test_progress_rejects_unknown_problem_and_writes_nothing(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    good = _problems(runtime, world.suite.id)[0].id
    bad = uuid.uuid4()
    with pytest.raises(InvalidProblemId, match=str(bad)):
        _progress(
            runtime,
            c.run.id,
            world.validators[0],
            [
                evaluations.ProblemUpdate(good, ProblemStatus.SUCCESS, score=1.0),
                evaluations.ProblemUpdate(bad, ProblemStatus.SUCCESS),
            ],
        )
    with runtime.db.session() as s:
        assert s.exec(select(ProblemResult)).all() == []


@pytest.mark.parametrize("score", [-0.1, 1.5, math.nan, math.inf])
def test_scores_outside_unit_interval_are_refused(runtime, score):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    p = _problems(runtime, world.suite.id)[0].id
    with pytest.raises(ValidationFailed):
        _progress(
            runtime,
            c.run.id,
            world.validators[0],
            [evaluations.ProblemUpdate(p, ProblemStatus.SUCCESS, score=score)],
        )
    with pytest.raises(ValidationFailed):
        complete(runtime, c.run.id, world.validators[0], score=score)


def test_complete_success_needs_score(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    with pytest.raises(MissingScore):
        complete(runtime, c.run.id, world.validators[0], score=None)


def test_complete_reaching_required_makes_version_eligible(runtime):
    world = make_world(runtime)
    admission = submit(runtime, world.miners[0], "a")
    c1 = claim(runtime, world.validators[0])
    c2 = claim(runtime, world.validators[1])
    first = complete(runtime, c1.run.id, world.validators[0], score=0.2)
    assert not first.became_eligible and first.work_item.included_successes == 1
    t = utcnow()
    second = complete(runtime, c2.run.id, world.validators[1], score=0.7, now=t)
    assert second.became_eligible
    assert second.work_item.is_closed and second.work_item.active_runs == 0
    assert second.final_score == pytest.approx(0.45)
    version = runtime.db.call(agents.get_version, admission.agent_version_id)
    assert (version.state, version.eligible_at) == (AgentVersionState.ELIGIBLE, t)


def test_failed_and_timed_out_free_the_slot(runtime):
    world = make_world(runtime)
    admission = submit(runtime, world.miners[0], "a")
    c1 = claim(runtime, world.validators[0])
    c2 = claim(runtime, world.validators[1])
    complete(runtime, c1.run.id, world.validators[0], status=RunStatus.FAILED, score=None)
    complete(runtime, c2.run.id, world.validators[1], status=RunStatus.TIMED_OUT, score=None)
    work = _work(runtime, admission.agent_version_id)
    assert (work.active_runs, work.included_successes, work.is_closed) == (0, 0, False)
    assert runtime.db.call(agents.get_version, admission.agent_version_id).state == AgentVersionState.QUEUED
    assert claim(runtime, world.validators[2]) is not None


def test_expired_leases_go_stale_and_free_the_slot(runtime):
    world = make_world(runtime)
    admission = submit(runtime, world.miners[0], "a")
    t0 = utcnow()
    c = claim(runtime, world.validators[0], now=t0)
    claim(runtime, world.validators[1], now=t0)
    later = t0 + timedelta(seconds=runtime.settings.lease_seconds + 1)
    # when the third validator claims after the first two leases lapsed
    c3 = claim(runtime, world.validators[2], now=later)
    # then the sweep inside claim freed a slot for it
    assert c3 is not None and c3.run.agent_version_id == admission.agent_version_id
    with runtime.db.session() as s:
        stale = s.get(EvaluationRun, c.run.id)
    assert stale.status == RunStatus.STALE
    # a lapsed run is over for a completion or a progress report (what the validator's retry queue drops)
    with pytest.raises(RunAlreadyComplete, match="lapsed"):
        complete(runtime, c.run.id, world.validators[0], score=0.5, now=later)
    with pytest.raises(RunAlreadyComplete, match="lapsed"):
        _progress(runtime, c.run.id, world.validators[0], [], now=later)
    with pytest.raises(LeaseExpired, match="lapsed"):
        _heartbeat(runtime, c.run.id, world.validators[0], now=later)
    work = _work(runtime, admission.agent_version_id)
    assert work.active_runs == 1


def test_periodic_sweep_marks_stale(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    t0 = utcnow()
    c = claim(runtime, world.validators[0], now=t0)
    assert runtime.db.call(evaluations.expire_leases, now=t0).expired == []
    report = runtime.db.call(evaluations.expire_leases, now=t0 + timedelta(seconds=400))
    assert report.expired == [c.run.id]


@pytest.mark.parametrize(
    "key", ["agents/abc.py", "runs/other/x", "../../etc/passwd", "runs/{run}/../../agents/x"]
)
def test_runs_may_only_point_at_their_own_artifacts(runtime, key):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    key = key.replace("{run}", str(c.run.id))
    p = _problems(runtime, world.suite.id)[0].id
    with pytest.raises(ValidationFailed, match="key"):
        _progress(
            runtime,
            c.run.id,
            world.validators[0],
            [evaluations.ProblemUpdate(p, ProblemStatus.SUCCESS, logs_key=key)],
        )
    with pytest.raises(ValidationFailed, match="key"):
        runtime.db.call(
            evaluations.complete_run,
            run_id=c.run.id,
            validator_hotkey=world.validators[0],
            terminal_status=RunStatus.SUCCESS,
            validator_score=0.5,
            results_key=key,
            settings=runtime.settings,
        )
    own = f"runs/{c.run.id}/{p}/logs-1"
    _progress(
        runtime,
        c.run.id,
        world.validators[0],
        [evaluations.ProblemUpdate(p, ProblemStatus.SUCCESS, logs_key=own)],
    )
