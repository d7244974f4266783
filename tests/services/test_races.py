"""Races as the services keep them: the field, pins, the committed draw, race work, scores, the winner."""

import threading
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select

from oro_graph.errors import NoSelection, NotVersionOwner, RaceInFlight, RaceLocked, ValidationFailed
from oro_graph.models import Race, RaceStatus, RunStatus, TopAgentHistory, WorkItem, utcnow
from oro_graph.services import evaluations, invariants, leaderboard, races, suites
from oro_graph.settings import Settings
from tests.factories import claim, complete, make_eligible, make_world, register


def _settings(rt, **overrides) -> Settings:
    values = {
        **rt.settings.model_dump(),
        "race_required_successes": 2,
        "race_max_attempts": 3,
        "race_problems": 3,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def world(runtime):
    w = make_world(runtime)
    w.miners.append(register(runtime, "Ferdie"))
    return w


@pytest.fixture
def board(runtime, world):
    """Three miners on the board: Alice 0.8 (and an older 0.6), Bob 0.7, Ferdie 0.4."""
    base = utcnow() - timedelta(hours=12)  # past the submission cooldown of the test settings
    return {
        "alice_old": make_eligible(runtime, world, world.miners[0], "a-old", [0.6, 0.6], now=base),
        "alice": make_eligible(
            runtime, world, world.miners[0], "a-new", [0.8, 0.8], now=base + timedelta(hours=2)
        ),
        "bob": make_eligible(runtime, world, world.miners[1], "b", [0.7, 0.7], now=base),
        "ferdie": make_eligible(runtime, world, world.miners[2], "f", [0.4, 0.4], now=base),
    }


def _finish_race_work(rt, world, scores_by_version, *, fail=(), qualifying_score=None):
    """Every validator claims work until none is left, reporting the given race scores (and
    ``qualifying_score`` for qualifying work, which only a test that made some expects)."""
    done = 0
    for _ in range(20):
        progressed = False
        for validator in world.validators:
            c = claim(rt, validator)
            if c is None:
                continue
            vid = c.run.agent_version_id
            if c.run.race_id is None:
                assert qualifying_score is not None, "qualifying work handed out"
                complete(rt, c.run.id, validator, score=qualifying_score)
                progressed, done = True, done + 1
                continue
            status = RunStatus.FAILED if (vid, validator) in fail else RunStatus.SUCCESS
            complete(rt, c.run.id, validator, score=scores_by_version[vid], status=status)
            progressed, done = True, done + 1
        if not progressed:
            return done
    raise AssertionError("race work never ran out")


def test_the_field_is_one_best_version_per_miner_best_first(runtime, world, board):
    settings = _settings(runtime)
    race = runtime.db.call(races.open_race, settings=settings)
    view = runtime.db.call(races.race_view, race.id)
    assert [q.row.agent_version_id for q in view.qualifiers] == [
        board["alice"],
        board["bob"],
        board["ferdie"],
    ]
    assert {q.row.qualification_type for q in view.qualifiers} == {"SCORED"}
    assert view.race.qualifying_threshold == 0.0 and view.race.status == RaceStatus.QUALIFYING_OPEN
    # a second live race is refused
    with pytest.raises(RaceInFlight):
        runtime.db.call(races.open_race, settings=settings)


def test_the_cap_keeps_the_best(runtime, world, board):
    race = runtime.db.call(races.open_race, settings=_settings(runtime, race_max_qualifiers=2))
    view = runtime.db.call(races.race_view, race.id)
    assert [q.row.agent_version_id for q in view.qualifiers] == [board["alice"], board["bob"]]


def test_a_pin_chooses_the_version_that_races_and_locks_when_qualifying_closes(runtime, world, board):
    settings = _settings(runtime)
    race = runtime.db.call(races.open_race, settings=settings)
    alice = world.miners[0]
    runtime.db.call(races.pin_selection, hotkey=alice, agent_version_id=board["alice_old"], settings=settings)
    ids = [q.row.agent_version_id for q in runtime.db.call(races.race_view, race.id).qualifiers]
    assert board["alice_old"] in ids and board["alice"] not in ids
    # another miner's version is not Alice's to pin
    with pytest.raises(NotVersionOwner):
        runtime.db.call(races.pin_selection, hotkey=alice, agent_version_id=board["bob"], settings=settings)
    runtime.db.call(races.close_qualifying, settings=settings)
    with pytest.raises(RaceLocked):
        runtime.db.call(races.pin_selection, hotkey=alice, agent_version_id=board["alice"], settings=settings)
    with pytest.raises(RaceLocked):
        runtime.db.call(races.unpin_selection, hotkey=alice)


def test_unpinning_without_a_pin_says_so(runtime, world, board):
    with pytest.raises(NoSelection):
        runtime.db.call(races.unpin_selection, hotkey=world.miners[1])


def test_a_version_that_cannot_qualify_cannot_be_pinned(runtime, world, board):
    from tests.factories import submit

    queued = submit(runtime, world.miners[1], "queued").agent_version_id
    with pytest.raises(ValidationFailed, match="ELIGIBLE"):
        runtime.db.call(
            races.pin_selection, hotkey=world.miners[1], agent_version_id=queued, settings=_settings(runtime)
        )


def test_the_revealed_secret_reproduces_the_draw(runtime, world, board):
    settings = _settings(runtime)
    race = runtime.db.call(races.open_race, settings=settings)
    committed = race.seed_commitment
    running = runtime.db.call(races.close_qualifying, settings=settings)
    assert running.status == RaceStatus.RACE_RUNNING and len(running.problem_ids) == 3
    assert runtime.db.call(races.race_view, race.id).revealed_secret is None  # not before the end
    runtime.db.call(races.complete_race, settings=settings)
    view = runtime.db.call(races.race_view, race.id)
    secret = view.revealed_secret
    assert races.commitment_of(secret) == committed
    problems = [p.id for p in runtime.db.call(suites.problems_for_suite, world.suite.id)]
    seed = races.draw_seed(secret, [q.row.agent_version_id for q in view.qualifiers])
    assert races.draw_problems(seed, problems, 3) == view.race.problem_ids
    # another field would have drawn from another seed
    assert races.draw_seed(secret, [board["alice"]]) != seed


def test_race_work_comes_first_and_the_winner_becomes_the_top_agent(runtime, world, board):
    settings = _settings(runtime)
    runtime.db.call(races.open_race, settings=settings)
    from tests.factories import submit

    waiting = submit(runtime, world.miners[1], "new-qualifying").agent_version_id
    race = runtime.db.call(races.close_qualifying, settings=settings)
    first = claim(runtime, world.validators[0])
    assert first.run.race_id == race.id and first.run.agent_version_id != waiting
    problems = runtime.db.call(races.race_problem_ids, first.run)
    assert [str(p) for p in problems] == race.problem_ids
    complete(
        runtime,
        first.run.id,
        world.validators[0],
        score={board["alice"]: 0.5, board["bob"]: 0.9, board["ferdie"]: 0.6}[first.run.agent_version_id],
    )
    scores = {board["alice"]: 0.5, board["bob"]: 0.9, board["ferdie"]: 0.6}
    _finish_race_work(runtime, world, scores, qualifying_score=0.99)
    view = runtime.db.call(races.race_view, race.id)
    assert view.race.status == RaceStatus.RACE_COMPLETE  # completed when every qualifier settled
    ranked = [(q.row.agent_version_id, q.row.race_rank, q.row.race_score) for q in view.qualifiers]
    assert ranked == [(board["bob"], 1, 0.9), (board["ferdie"], 2, 0.6), (board["alice"], 3, 0.5)]
    assert view.race.winner_agent_version_id == board["bob"] and view.race.winner_score == 0.9
    assert view.race.scored_count == 3 and view.winner_agent_name == "b"
    top = runtime.db.call(leaderboard.top_agent, settings=settings)
    assert top.version.id == board["bob"]
    # the waiting version became eligible with 0.99, but races decide the top agent now
    assert runtime.db.call(evaluations.run_view, claim_run_id(runtime, waiting)).version.final_score == 0.99
    assert runtime.db.call(leaderboard.top_agent, settings=settings).version.id == board["bob"]
    broken = runtime.db.call(invariants.check_invariants, max_active_runs_per_validator=1)
    assert not any(broken.values()), broken


def test_a_qualifier_out_of_attempts_did_not_finish(runtime, world, board):
    settings = _settings(runtime, race_max_attempts=2)
    runtime.db.call(races.open_race, settings=settings)
    race = runtime.db.call(races.close_qualifying, settings=settings)
    scores = {board["alice"]: 0.5, board["bob"]: 0.9, board["ferdie"]: 0.6}
    fail = {(board["bob"], world.validators[0]), (board["bob"], world.validators[1])}
    _finish_race_work(runtime, world, scores, fail=fail)
    view = runtime.db.call(races.race_view, race.id)
    bob = next(q for q in view.qualifiers if q.row.agent_version_id == board["bob"])
    assert bob.row.race_score is None and bob.row.did_not_finish and bob.row.race_rank is None
    assert view.race.winner_agent_version_id == board["ferdie"] and view.race.scored_count == 2


def test_the_deadline_completes_a_race_with_non_finishers(runtime, world, board):
    settings = _settings(runtime, race_max_hours=1)
    start = utcnow()
    runtime.db.call(races.open_race, settings=settings, now=start)
    race = runtime.db.call(races.close_qualifying, settings=settings, now=start)
    later = start + timedelta(hours=2)
    report = runtime.db.call(races.tick, settings=settings, holder="p1", now=later)
    assert report.completed == race.id
    view = runtime.db.call(races.race_view, race.id)
    assert view.race.winner_agent_version_id is None and view.race.scored_count == 0
    assert all(q.row.did_not_finish for q in view.qualifiers)
    # race work closed: validators get qualifying work (none here) and no race work
    assert claim(runtime, world.validators[0], now=later) is None


def test_the_scheduler_acts_in_one_process_at_a_time(runtime, world, board):
    settings = _settings(runtime, race_qualifying_hours=1)
    now = utcnow()
    first = runtime.db.call(races.tick, settings=settings, holder="p1", now=now)
    second = runtime.db.call(races.tick, settings=settings, holder="p2", now=now + timedelta(seconds=1))
    assert first.acted and first.opened is not None
    assert not second.acted
    # the holder closes qualifying at its hour; once the lease lapses another process takes over
    closed = runtime.db.call(
        races.tick, settings=settings, holder="p1", now=now + timedelta(hours=1, seconds=1)
    )
    assert closed.closed == first.opened
    taken = runtime.db.call(races.tick, settings=settings, holder="p2", now=now + timedelta(hours=2))
    assert taken.acted


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_openers_never_open_two_races(runtime, world, board):
    settings = _settings(runtime)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def opener() -> None:
        barrier.wait()
        try:
            runtime.db.call(races.open_race, settings=settings)
            outcomes.append("opened")
        except RaceInFlight:
            outcomes.append("refused")

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["opened", "refused", "refused", "refused"]
    with runtime.db.session() as s:
        assert len(s.exec(select(Race)).all()) == 1


def test_the_incumbent_enters_and_the_threshold_follows_its_race_score(runtime, world, board):
    settings = _settings(runtime, challenge_threshold=0.05, race_threshold_half_life_hours=24)
    start = utcnow()
    runtime.db.call(races.open_race, settings=settings, now=start)
    runtime.db.call(races.close_qualifying, settings=settings, now=start)
    _finish_race_work(runtime, world, {board["alice"]: 0.5, board["bob"]: 0.65, board["ferdie"]: 0.6})
    # Bob won with 0.65; a day later the threshold is (0.65 + 0.05) / 2
    later = start + timedelta(hours=24)
    race = runtime.db.call(races.open_race, settings=settings, now=later)
    assert race.qualifying_threshold == pytest.approx(0.35, abs=1e-3)
    view = runtime.db.call(races.race_view, race.id)
    entries = {q.row.agent_version_id: q.row.qualification_type for q in view.qualifiers}
    assert entries == {board["bob"]: "INCUMBENT", board["alice"]: "SCORED", board["ferdie"]: "SCORED"}
    # right after the race the threshold is the full 0.70: only the incumbent and Alice's 0.8 stand
    runtime.db.call(races.cancel_race)
    race = runtime.db.call(races.open_race, settings=settings, now=start + timedelta(minutes=1))
    assert race.qualifying_threshold == pytest.approx(0.70, abs=1e-3)
    ids = {q.row.agent_version_id for q in runtime.db.call(races.race_view, race.id).qualifiers}
    assert ids == {board["bob"], board["alice"]}


def test_weights_follow_the_public_validators_rule():
    finishers = [
        (f"hk{i}", uuid.UUID(int=i), score) for i, score in enumerate([0.9, 0.8, 0.8, 0.5, 0.4, 0.1])
    ]
    weights = races.race_weights(finishers, t_top=0.25, t_burn=0.75)
    # K = 3: rank 2 gets 2, rank 3 gets 1 (the tie goes to the smaller id); burn 65535; winner 21846
    units = {w.miner_hotkey: w.units for w in weights}
    assert units == {None: 65535, "hk0": round(0.25 * (65535 + 3) / 0.75), "hk1": 2, "hk2": 1}
    assert sum(w.share for w in weights) == pytest.approx(1.0)
    assert next(w for w in weights if w.miner_hotkey == "hk0").share == pytest.approx(0.25, abs=1e-4)
    # one finisher: K = 0 burns everything, the winner gets nothing
    alone = races.race_weights(finishers[:1], t_top=0.25, t_burn=0.75)
    assert [(w.miner_hotkey, w.units) for w in alone] == [(None, 65535)]
    # low burn: the winner is pinned, the burn slot gets what the tail leaves
    low = {w.miner_hotkey: w.units for w in races.race_weights(finishers[:4], t_top=0.9, t_burn=0.1)}
    assert low == {None: round(0.1 * 65535 / 0.9) - 1, "hk0": 65535, "hk1": 1}


def test_race_runs_do_not_count_as_qualifying_runs(runtime, world, board):
    settings = _settings(runtime)
    runtime.db.call(races.open_race, settings=settings)
    runtime.db.call(races.close_qualifying, settings=settings)
    _finish_race_work(runtime, world, {board["alice"]: 0.1, board["bob"]: 0.1, board["ferdie"]: 0.1})
    view = runtime.db.call(evaluations.run_view, claim_run_id(runtime, board["alice"]))
    assert view.version.final_score == pytest.approx(0.8)  # the qualifying mean, untouched by race runs
    with runtime.db.session() as s:
        qualifying = s.exec(
            select(WorkItem).where(WorkItem.agent_version_id == board["alice"], WorkItem.race_id.is_(None))
        ).one()
        assert qualifying.is_closed and qualifying.included_successes == 2
        assert len(s.exec(select(TopAgentHistory).where(TopAgentHistory.replaced_at.is_(None))).all()) == 1


def claim_run_id(rt, version_id):
    from oro_graph.models import EvaluationRun

    with rt.db.session() as s:
        return s.exec(select(EvaluationRun.id).where(EvaluationRun.agent_version_id == version_id)).first()


def test_a_race_run_evaluates_the_drawn_problems_only(runtime, world, board):
    from oro_graph.errors import InvalidProblemId
    from oro_graph.models import ProblemStatus

    settings = _settings(runtime)
    runtime.db.call(races.open_race, settings=settings)
    race = runtime.db.call(races.close_qualifying, settings=settings)
    c = claim(runtime, world.validators[0])
    served = runtime.db.call(evaluations.run_problems, run_id=c.run.id, validator_hotkey=world.validators[0])
    assert [str(p.problem.id) for p in served] == race.problem_ids
    others = [
        p.id
        for p in runtime.db.call(suites.problems_for_suite, world.suite.id)
        if str(p.id) not in race.problem_ids
    ]
    update = evaluations.ProblemUpdate(problem_id=others[0], status=ProblemStatus.SUCCESS, score=1.0)
    with pytest.raises(InvalidProblemId, match="not drawn"):
        runtime.db.call(
            evaluations.update_progress,
            run_id=c.run.id,
            validator_hotkey=world.validators[0],
            problems=[update],
        )


def _score_aggregates(rt, world, board) -> dict:
    """Everything computed from run scores outside the race itself: final scores and the board, score
    intervals, and the validators' agreement (reliability deltas and the suite's variance view)."""
    from oro_graph.services import reliability

    versions = [board[k] for k in ("alice_old", "alice", "bob", "ferdie")]
    with rt.db.session() as s:
        page = leaderboard.leaderboard_page(s, suite_id=world.suite.id)
        rel = reliability.validator_reliability(s, world.validators)
        variance = reliability.validator_variance(s, suite_id=world.suite.id)
        intervals = reliability.score_intervals_by_version_ids(s, versions)
        return {
            "board": [(r.version.id, r.version.final_score) for r in page.rows],
            "deltas": {
                h: (r.mean_delta, r.delta_sd, r.versions_compared, r.pairs_evaluated) for h, r in rel.items()
            },
            "variance": (variance.versions, variance.mean_spread, variance.max_spread, variance.buckets),
            "variance_deltas": [(d.hotkey, d.mean_delta, d.pairs_evaluated) for d in variance.deltas],
            "intervals": {v: repr(intervals.get(v)) for v in versions},
        }


def test_score_aggregates_leave_race_runs_out(runtime, world, board):
    # given the aggregates over the qualifying runs alone
    settings = _settings(runtime)
    before = _score_aggregates(runtime, world, board)
    assert before["board"] and any(d[3] for d in before["deltas"].values()), (
        "validators compared on something"
    )

    # when a race runs and completes with race scores far from the qualifying ones
    runtime.db.call(races.open_race, settings=settings)
    runtime.db.call(races.close_qualifying, settings=settings)
    wild = {board["alice"]: 0.01, board["bob"]: 0.99, board["ferdie"]: 0.5, board["alice_old"]: 0.02}
    assert _finish_race_work(runtime, world, wild) > 0
    assert runtime.db.call(races.latest_completed) is not None

    # then none of them moved
    assert _score_aggregates(runtime, world, board) == before


def test_the_export_keeps_race_run_scores_back_until_the_race_completes(runtime, world, board, tmp_path):
    pytest.importorskip("pyarrow")
    from oro_graph import export as exporting
    from oro_graph.services import export as tables

    def race_scores() -> list[float | None]:
        out = tmp_path / uuid.uuid4().hex
        exporting.export(runtime.db, out, "csv")
        runs = exporting.read_table(out / "runs.csv", tables.BY_NAME["runs"]).to_pylist()
        return [r["validator_score"] for r in runs if r["race_id"] is not None]

    # given a race running, one of its runs completed with a score
    settings = _settings(runtime)
    runtime.db.call(races.open_race, settings=settings)
    runtime.db.call(races.close_qualifying, settings=settings)
    c = claim(runtime, world.validators[0])
    assert c is not None and c.run.race_id is not None
    complete(runtime, c.run.id, world.validators[0], score=0.9)

    # then the export has the race run, its score held back as the public graph holds it back
    assert race_scores() == [None]

    # when the race completes, then the export has the race runs' scores
    scores = {board["alice"]: 0.3, board["bob"]: 0.6, board["ferdie"]: 0.5, board["alice_old"]: 0.2}
    _finish_race_work(runtime, world, scores)
    assert runtime.db.call(races.latest_completed) is not None
    published = race_scores()
    assert 0.9 in published and None not in published
