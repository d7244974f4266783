"""The small demo world, generated once per database for this module (it took a few seconds each
time, and a dozen tests only read it): deterministic, complete, consistent with the lifecycle and the
races' rules, described by its manifest. The tests that need a world of other sizes or settings, or
an empty database, are in test_demo.py."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import col
from sqlmodel import select as sqlmodel_select

from oro_graph import demo
from oro_graph.db import Database
from oro_graph.migrations import upgrade
from oro_graph.models import AgentVersionState, Race, RaceStatus, RunStatus
from oro_graph.runtime import Runtime
from oro_graph.services import invariants, leaderboard, races, suites
from tests.test_demo import (
    INVARIANT_SQL,
    SMALL,
    _aware,
    _generate,
    _rows,
    _same,
    _scalar,
    _snapshot,
    _uuid,
    check_top_agent_history,
)


@dataclass(frozen=True)
class Built:
    runtime: Runtime
    manifest: demo.Manifest
    progress: list[tuple[int, int]]  # (step, total) as generate reported them


@pytest.fixture(scope="module")
def world(module_runtime: Runtime) -> Iterator[Built]:
    """The SMALL world on this module's database (the tests read it; the last one tries a write)."""
    assert demo.is_empty(module_runtime.db)
    calls: list[tuple[int, int]] = []
    manifest = _generate(module_runtime, progress=lambda step, total: calls.append((step, total)))
    yield Built(module_runtime, manifest, calls)


def test_same_seed_gives_identical_rows_on_both_databases(world: Built, tmp_path: Path) -> None:
    # given: the module's world and a fresh SQLite database
    runtime = world.runtime
    other_url = f"sqlite:///{tmp_path / 'second.db'}"
    upgrade(other_url)
    other = Database(runtime.settings.model_copy(update={"database_url": other_url}))

    # when
    first = world.manifest
    second = demo.generate(other, other.settings, **SMALL)

    # then: ids, scores and times agree row for row
    try:
        assert first.to_json() == second.to_json()
        mine, theirs = _snapshot(runtime.db), _snapshot(other)
        assert {name: len(rows) for name, rows in mine.items()} == {
            name: len(rows) for name, rows in theirs.items()
        }
        for name in mine:
            assert _same(name, mine[name], theirs[name]), f"table {name} differs"
    finally:
        other.dispose()


def test_another_seed_gives_another_world(world: Built, tmp_path: Path) -> None:
    runtime = world.runtime
    other_url = f"sqlite:///{tmp_path / 'second.db'}"
    upgrade(other_url)
    other = Database(runtime.settings.model_copy(update={"database_url": other_url}))
    try:
        demo.generate(other, other.settings, **{**SMALL, "seed": 12})
        mine, theirs = _snapshot(runtime.db), _snapshot(other)
        assert mine["evaluationrun"] != theirs["evaluationrun"]
        assert mine["problem"] == theirs["problem"]  # the built-in suite is the same
        assert mine["race"] and theirs["race"] and mine["race"] != theirs["race"]
    finally:
        other.dispose()


def test_world_has_every_state_and_status(world: Built) -> None:
    runtime, manifest = world.runtime, world.manifest
    db = runtime.db

    states = {s for (s,) in _rows(db, "SELECT DISTINCT state FROM agentversion")}
    statuses = {s for (s,) in _rows(db, "SELECT DISTINCT status FROM evaluationrun")}
    problem_statuses = {s for (s,) in _rows(db, "SELECT DISTINCT status FROM problemresult")}

    assert states == {s.value for s in AgentVersionState} - {"RECEIVED"}
    assert statuses == {s.value for s in RunStatus}
    assert problem_statuses == {"PENDING", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED"}
    assert _scalar(db, "SELECT count(*) FROM evaluationrun") == SMALL["runs"] == manifest.counts["runs"]
    # every run has a result for every problem of the suite
    assert _scalar(db, "SELECT count(*) FROM problem") == 30
    # ... and a race run for every problem its race drew
    assert _scalar(db, "SELECT count(*) FROM problemresult") == _scalar(
        db,
        "SELECT sum(CASE WHEN r.race_id IS NULL THEN 30 ELSE "
        "(SELECT problem_count FROM race WHERE race.id = r.race_id) END) FROM evaluationrun r",
    )
    assert _scalar(db, "SELECT count(DISTINCT run_id) FROM problemresult") == SMALL["runs"]
    # the suite shape
    shape = _rows(db, "SELECT category, difficulty, count(*) FROM problem GROUP BY 1, 2 ORDER BY 1, 2")
    assert [tuple(r) for r in shape] == [
        (c, d, n) for c in ("Product", "Shop", "Voucher") for d, n in (("easy", 7), ("medium", 3))
    ]
    assert _scalar(db, "SELECT count(*) FROM suite WHERE is_active") == 1
    # registry: every miner and validator has a name; validators hold a permit
    assert _scalar(db, "SELECT count(*) FROM hotkey WHERE role = 'validator' AND validator_permit") == 8
    assert _scalar(db, "SELECT count(*) FROM hotkey WHERE role = 'miner'") == SMALL["miners"]
    assert _scalar(db, "SELECT count(*) FROM hotkey WHERE name IS NULL") == 0
    assert _scalar(db, "SELECT count(*) FROM validatorstate") == 8
    assert _scalar(db, "SELECT count(*) FROM topagenthistory") >= 2


def test_world_keeps_the_lifecycle_invariants(world: Built) -> None:
    runtime = world.runtime
    max_active = runtime.settings.max_active_runs_per_validator

    violations = {
        name: _scalar(runtime.db, sql, **({"max_active": max_active} if ":max_active" in sql else {}))
        for name, sql in INVARIANT_SQL.items()
    }
    shared = runtime.db.call(invariants.check_invariants, max_active_runs_per_validator=max_active)

    assert violations == dict.fromkeys(INVARIANT_SQL, 0)
    assert shared == dict.fromkeys(shared, 0)


@pytest.mark.parametrize("threshold", [0.0])
def test_top_agent_history_follows_the_challenge_rule_then_the_races(world: Built, threshold: float) -> None:
    # the default threshold (the module's world); test_demo.py builds a world with another one
    assert world.runtime.settings.challenge_threshold == threshold
    check_top_agent_history(world.runtime.db, threshold)


def test_board_events_follow_the_simulated_clock(world: Built) -> None:
    runtime = world.runtime

    events = _rows(runtime.db, "SELECT agent_version_id, created_at FROM event WHERE kind = 'TOP_CHANGED'")
    reigns = {
        (str(v), _aware(at))
        for v, at in _rows(runtime.db, "SELECT agent_version_id, top_at FROM topagenthistory")
    }
    assert events and {(str(v), _aware(at)) for v, at in events} == reigns


def test_manifest_describes_the_world(world: Built, tmp_path: Path) -> None:
    runtime, manifest = world.runtime, world.manifest
    data = json.loads(manifest.to_json())

    assert data["seed"] == SMALL["seed"]
    assert [v["fault"] for v in data["validators"]] and len(data["validators"]) == 3
    registered = {h for (h,) in _rows(runtime.db, "SELECT ss58 FROM hotkey WHERE role = 'validator'")}
    assert {v["hotkey"] for v in data["validators"]} <= registered
    by_status = dict(_rows(runtime.db, "SELECT status, count(*) FROM evaluationrun GROUP BY status"))
    assert data["counts"]["runs_by_status"] == by_status
    by_state = dict(_rows(runtime.db, "SELECT state, count(*) FROM agentversion GROUP BY state"))
    assert data["counts"]["versions_by_state"] == by_state
    newest = _scalar(runtime.db, "SELECT max(claimed_at) FROM evaluationrun")
    assert _aware(newest) < datetime.fromisoformat(data["now"])


def test_progress_reports_up_to_its_total(world: Built) -> None:
    calls = world.progress  # what the module's world reported while it was built

    totals = {total for _, total in calls}
    assert len(totals) == 1 and sum(step for step, _ in calls) == totals.pop()
    assert all(step > 0 for step, _ in calls)


def test_code_of_every_version_is_in_the_artifact_store(world: Built) -> None:
    runtime = world.runtime
    keys = _rows(runtime.db, "SELECT code_key, code_sha256 FROM agentversion")

    import hashlib

    for key, digest in keys:
        assert hashlib.sha256(runtime.storage.get(key)).hexdigest() == digest


def test_world_runs_races_with_incumbents_pins_and_non_finishers(world: Built) -> None:
    runtime, manifest = world.runtime, world.manifest
    db = runtime.db

    statuses = [s for (s,) in _rows(db, "SELECT status FROM race ORDER BY race_number")]
    opened = [_aware(t) for (t,) in _rows(db, "SELECT created_at FROM race ORDER BY race_number")]
    # a race every few days over the six weeks; only the latest may still be qualifying or running
    assert len(statuses) == manifest.counts["races"] >= 5
    assert set(statuses[:-1]) == {"RACE_COMPLETE"}
    assert all(2 <= (b - a).total_seconds() / 86400 <= 5 for a, b in zip(opened, opened[1:], strict=False))
    assert manifest.counts["races_by_status"] == dict(
        _rows(db, "SELECT status, count(*) FROM race GROUP BY 1")
    )
    # reigning winners enter by themselves, some entries do not finish, some miners pinned a version
    assert _scalar(db, "SELECT count(*) FROM racequalifier WHERE qualification_type = 'INCUMBENT'") >= 3
    assert _scalar(db, "SELECT count(*) FROM racequalifier WHERE did_not_finish") >= 1
    assert _scalar(db, "SELECT count(*) FROM raceselection") >= 1
    # race runs by the same validators, the planted faulty ones among them
    racing = {h for (h,) in _rows(db, "SELECT validator_hotkey FROM evaluationrun WHERE race_id IS NOT NULL")}
    assert {v["hotkey"] for v in manifest.validators} <= racing
    # the raceChanges log, in time order as the services write it
    kinds = dict(_rows(db, "SELECT kind, count(*) FROM event GROUP BY kind"))
    assert kinds["RACE_OPENED"] == len(statuses)
    assert kinds["RACE_COMPLETED"] == statuses.count("RACE_COMPLETE")
    assert kinds["QUALIFIER_ENTERED"] == manifest.counts["race_qualifiers"]
    logged = [_aware(t) for (t,) in _rows(db, "SELECT created_at FROM event ORDER BY id")]
    assert logged == sorted(logged)
    assert (
        _scalar(db, "SELECT count(*) FROM evaluationrun WHERE race_id IS NOT NULL")
        == manifest.counts["race_runs"]
    )


def test_races_follow_the_services_rules(world: Built) -> None:
    runtime = world.runtime
    settings = runtime.settings

    with runtime.db.session() as session:
        stored = list(session.exec(sqlmodel_select(Race).order_by(col(Race.race_number))))
        views = races.views_of(session, stored)
        problems = [p.id for p in suites.problems_for_suite(session, stored[0].suite_id)]
        run_scores = _rows(
            runtime.db,
            "SELECT race_id, agent_version_id, validator_score FROM evaluationrun "
            "WHERE race_id IS NOT NULL AND is_included",
        )
        last: Race | None = None
        for view in views:
            race, entries = view.race, [q.row for q in view.qualifiers]
            # when it opened: the threshold decays from the last winner's score, who enters as incumbent
            assert race.qualifying_threshold == pytest.approx(
                races.decayed_threshold(
                    last.winner_score if last else None,
                    last.race_completed_at if last else None,
                    settings=settings,
                    now=race.created_at,
                )
            )
            incumbents = [q.agent_version_id for q in entries if q.qualification_type == "INCUMBENT"]
            winner = last.winner_agent_version_id if last else None
            assert incumbents == ([winner] if winner else [])
            assert all(
                (q.qualifying_score or 0.0) >= race.qualifying_threshold - 1e-12
                for q in entries
                if q.qualification_type == "SCORED"
            )
            assert race.qualifier_count == len(entries) <= race.max_qualifiers
            assert len({q.miner_hotkey for q in entries}) == len(entries)  # one entry per miner
            assert race.seed_commitment == races.commitment_of(race.secret)
            if race.status == RaceStatus.QUALIFYING_OPEN:
                assert race.draw_seed is None and not race.secret_revealed
                continue
            # the draw follows from the secret and the final field
            assert race.draw_seed == races.draw_seed(race.secret, [q.agent_version_id for q in entries])
            assert race.problem_ids == races.draw_problems(race.draw_seed, problems, race.problem_count)
            # a finisher's race score is the mean of its X included race runs
            for q in entries:
                mine = [s for r, v, s in run_scores if (_uuid(r), _uuid(v)) == (race.id, q.agent_version_id)]
                if q.race_score is not None:
                    assert len(mine) == race.required_successes
                    assert q.race_score == pytest.approx(statistics.fmean(mine), abs=1e-12)
            if race.status != RaceStatus.RACE_COMPLETE:
                continue
            # ranks follow race scores, rank 1 wins, non-finishers have no rank
            finishers = sorted(
                (q for q in entries if q.race_score is not None),
                key=lambda q: races.finisher_order(q.race_score or 0.0, q.agent_version_id),
            )
            assert [q.race_rank for q in finishers] == list(range(1, len(finishers) + 1))
            assert all(q.did_not_finish and q.race_rank is None for q in entries if q.race_score is None)
            assert race.scored_count == len(finishers) and race.secret_revealed
            assert race.winner_agent_version_id == (finishers[0].agent_version_id if finishers else None)
            assert race.winner_score == (finishers[0].race_score if finishers else None)
            # the weights are the public validator's rule over the finishers
            assert races.weights_of(view, settings) == races.race_weights(
                [(q.miner_hotkey, q.agent_version_id, q.race_score or 0.0) for q in finishers],
                t_top=settings.weight_top_share,
                t_burn=settings.weight_burn_share,
            )
            last = race
        # the top agent is the latest completed race's winner (CONTRACTS section 5)
        top = leaderboard.current_top_agent(session, settings=settings)
        assert last is not None and top.version is not None
        assert top.version.id == last.winner_agent_version_id


def test_refuses_to_run_twice(world: Built) -> None:
    # given: the module's world, generated once (the last test of the module: it tries to write)
    runtime = world.runtime
    versions = _scalar(runtime.db, "SELECT count(*) FROM agentversion")

    with pytest.raises(demo.DatabaseNotEmpty):
        _generate(runtime)
    assert _scalar(runtime.db, "SELECT count(*) FROM agentversion") == versions
