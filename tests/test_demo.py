"""The demo world: deterministic, complete (every state and status), consistent with the lifecycle
rules, and carrying the planted validator faults that the manifest documents."""

from __future__ import annotations

import json
import math
import statistics
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import SQLModel, col
from sqlmodel import select as sqlmodel_select

from oro_graph import demo
from oro_graph.db import Database
from oro_graph.errors import ValidationFailed
from oro_graph.migrations import upgrade
from oro_graph.models import AgentVersionState, Race, RaceStatus, RunStatus
from oro_graph.models import totals as cells
from oro_graph.runtime import Runtime
from oro_graph.services import invariants, leaderboard, races, reliability, suites
from oro_graph.settings import Settings
from tests.factories import make_world, submit

SMALL = {"seed": 11, "miners": 25, "validators": 8, "runs": 500}
FAULTY = {"seed": 3, "miners": 40, "validators": 8, "runs": 1500}


def _generate(rt: Runtime, **sizes: Any) -> demo.Manifest:
    return demo.generate(rt.db, rt.settings, **{**SMALL, **sizes})


def _scalar(db: Database, sql: str, **params: Any) -> Any:
    with db.session() as session:
        return session.execute(text(sql), params).scalar_one()


def _rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.session() as session:
        return list(session.execute(text(sql), params).all())


def _snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered by primary key, in comparable plain values."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict | list):
            return json.dumps(value, sort_keys=True)
        return str(value) if value is not None and not isinstance(value, bool | int | float) else value

    out = {}
    with db.session() as session:
        for table in SQLModel.metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in WALL_CLOCK_COLUMNS]
            rows = session.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(plain(v) for v in row) for row in rows]
    return out


def _same(table: str, mine: list[tuple[Any, ...]], theirs: list[tuple[Any, ...]]) -> bool:
    """Row for row equal; the running totals' float sums (added in each database's own order) to
    within rounding."""
    if table not in cells.TABLES:
        return mine == theirs
    return len(mine) == len(theirs) and all(
        len(a) == len(b)
        and all(
            math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) if isinstance(x, float) else x == y
            for x, y in zip(a, b, strict=True)
        )
        for a, b in zip(mine, theirs, strict=True)
    )


# Columns stamped by the wall clock (none since events carry the service's `now`).
WALL_CLOCK_COLUMNS: set[tuple[str, str]] = set()


def test_same_seed_gives_identical_rows_on_both_databases(runtime: Runtime, tmp_path: Path) -> None:
    # given: the test's database and a fresh SQLite one
    other_url = f"sqlite:///{tmp_path / 'second.db'}"
    upgrade(other_url)
    other = Database(runtime.settings.model_copy(update={"database_url": other_url}))

    # when
    first = _generate(runtime)
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


def test_another_seed_gives_another_world(runtime: Runtime, tmp_path: Path) -> None:
    other_url = f"sqlite:///{tmp_path / 'second.db'}"
    upgrade(other_url)
    other = Database(runtime.settings.model_copy(update={"database_url": other_url}))
    try:
        _generate(runtime)
        demo.generate(other, other.settings, **{**SMALL, "seed": 12})
        mine, theirs = _snapshot(runtime.db), _snapshot(other)
        assert mine["evaluationrun"] != theirs["evaluationrun"]
        assert mine["problem"] == theirs["problem"]  # the built-in suite is the same
        assert mine["race"] and theirs["race"] and mine["race"] != theirs["race"]
    finally:
        other.dispose()


def test_world_has_every_state_and_status(runtime: Runtime) -> None:
    manifest = _generate(runtime)
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


def test_default_world_matches_the_serve_demo_promise(runtime: Runtime) -> None:
    """`serve --demo`: 100+ miners, 10+ validators, 150+ eligible versions, 2000+ runs over weeks."""
    manifest = demo.generate(runtime.db, runtime.settings)
    counts = manifest.counts

    assert counts["miners"] >= 100 and counts["validators"] >= 10 and counts["runs"] >= 2000
    assert counts["versions_by_state"]["ELIGIBLE"] >= 150
    first, last = _rows(runtime.db, "SELECT min(claimed_at), max(claimed_at) FROM evaluationrun")[0]
    assert (_aware(last) - _aware(first)).days >= 35


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=demo.BASE_TIME.tzinfo)


INVARIANT_SQL = {
    "included successes never exceed required": (
        "SELECT count(*) FROM workitem WHERE included_successes > required_successes "
        "OR included_successes + active_runs > required_successes"
    ),
    "eligible: closed work item with all required successes": (
        "SELECT count(*) FROM agentversion v JOIN workitem w ON w.agent_version_id = v.id "
        "WHERE w.race_id IS NULL AND v.state = 'ELIGIBLE' AND NOT (w.is_closed "
        "AND w.included_successes = w.required_successes AND v.eligible_at IS NOT NULL)"
    ),
    "eligible final score is the mean of its included runs": (
        "SELECT count(*) FROM agentversion v WHERE v.state = 'ELIGIBLE' AND abs(v.final_score - "
        "(SELECT avg(r.validator_score) FROM evaluationrun r WHERE r.agent_version_id = v.id "
        "AND r.is_included AND r.status = 'SUCCESS' AND r.race_id IS NULL)) > 1e-9"
    ),
    "only eligible versions have a final score": (
        "SELECT count(*) FROM agentversion WHERE (state = 'ELIGIBLE') <> (final_score IS NOT NULL)"
    ),
    "at most one current top agent per suite": (
        "SELECT count(*) FROM (SELECT suite_id FROM topagenthistory WHERE replaced_at IS NULL "
        "GROUP BY suite_id HAVING count(*) > 1) t"
    ),
    "active_runs counts the CLAIMED and RUNNING runs": (
        "SELECT count(*) FROM workitem w WHERE active_runs <> (SELECT count(*) FROM evaluationrun r "
        "WHERE r.work_item_id = w.id AND r.status IN ('CLAIMED', 'RUNNING'))"
    ),
    "no validator over capacity": (
        "SELECT count(*) FROM (SELECT validator_hotkey FROM evaluationrun "
        "WHERE status IN ('CLAIMED', 'RUNNING') GROUP BY validator_hotkey HAVING count(*) > :max_active) c"
    ),
    "a validator runs a version at most once": (
        "SELECT count(*) FROM (SELECT work_item_id, validator_hotkey FROM evaluationrun "
        "GROUP BY 1, 2 HAVING count(*) > 1) d"
    ),
    "running/queued versions follow their work item": (
        "SELECT count(*) FROM agentversion v JOIN workitem w ON w.agent_version_id = v.id "
        "AND w.race_id IS NULL WHERE "
        "(v.state = 'RUNNING' AND w.active_runs = 0 AND w.included_successes = 0) OR "
        "(v.state = 'QUEUED' AND (w.active_runs > 0 OR w.included_successes > 0)) OR "
        "(v.state IN ('QUEUED', 'RUNNING') AND w.is_closed) OR "
        "(v.state IN ('DISCARDED', 'CANCELLED') AND (NOT w.is_closed OR w.active_runs > 0))"
    ),
    "times are in order": (
        "SELECT count(*) FROM evaluationrun WHERE last_heartbeat_at < claimed_at "
        "OR completed_at < claimed_at OR lease_expires_at <= claimed_at "
        "OR (status = 'STALE' AND completed_at < lease_expires_at) "
        "OR (status IN ('SUCCESS', 'FAILED', 'TIMED_OUT') AND completed_at > lease_expires_at) "
        "OR (status IN ('CLAIMED', 'RUNNING') AND completed_at IS NOT NULL) "
        "OR (status = 'CLAIMED' AND last_heartbeat_at IS NOT NULL) "
        "OR (status NOT IN ('CLAIMED', 'RUNNING') AND completed_at IS NULL)"
    ),
    "runs start after their version was submitted": (
        "SELECT count(*) FROM evaluationrun r JOIN agentversion v ON v.id = r.agent_version_id "
        "WHERE r.claimed_at < v.submitted_at"
    ),
    "successful runs have a score, others none": (
        "SELECT count(*) FROM evaluationrun WHERE (status = 'SUCCESS') <> (validator_score IS NOT NULL) "
        "OR (is_included AND status <> 'SUCCESS') "
        "OR (race_id IS NULL AND is_included <> (status = 'SUCCESS'))"
    ),
    "run score is the mean of its problem scores": (
        "SELECT count(*) FROM evaluationrun r WHERE r.status = 'SUCCESS' AND abs(r.validator_score - "
        "(SELECT avg(p.score) FROM problemresult p WHERE p.run_id = r.id)) > 1e-9"
    ),
    "a race run evaluates exactly its race's drawn problems": (
        "SELECT count(*) FROM evaluationrun r JOIN race ON race.id = r.race_id WHERE "
        "(SELECT count(*) FROM problemresult p WHERE p.run_id = r.id) <> race.problem_count"
    ),
    "race work belongs to a qualifier of its race": (
        "SELECT count(*) FROM workitem w WHERE w.race_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
        "racequalifier q WHERE q.race_id = w.race_id AND q.agent_version_id = w.agent_version_id)"
    ),
    "race runs run their race's work": (
        "SELECT count(*) FROM evaluationrun r JOIN workitem w ON w.id = r.work_item_id "
        "WHERE (r.race_id IS NULL) <> (w.race_id IS NULL) OR r.race_id <> w.race_id"
    ),
    "race work takes at most its attempts": (
        "SELECT count(*) FROM workitem WHERE race_id IS NOT NULL AND "
        "(included_successes + failed_attempts > max_attempts "
        "OR failed_attempts <> (SELECT count(*) FROM evaluationrun r WHERE r.work_item_id = workitem.id "
        "AND r.status IN ('FAILED', 'TIMED_OUT')))"
    ),
    "problem results are consistent with their status": (
        "SELECT count(*) FROM problemresult WHERE (status IN ('SUCCESS', 'FAILED', 'TIMED_OUT')) <> "
        "(score IS NOT NULL AND execution_time IS NOT NULL AND inference_total IS NOT NULL) "
        "OR (status IN ('FAILED', 'TIMED_OUT') AND score <> 0) OR score < 0 OR score > 1"
    ),
}


def test_world_keeps_the_lifecycle_invariants(runtime: Runtime) -> None:
    _generate(runtime)
    max_active = runtime.settings.max_active_runs_per_validator

    violations = {
        name: _scalar(runtime.db, sql, **({"max_active": max_active} if ":max_active" in sql else {}))
        for name, sql in INVARIANT_SQL.items()
    }
    shared = runtime.db.call(invariants.check_invariants, max_active_runs_per_validator=max_active)

    assert violations == dict.fromkeys(INVARIANT_SQL, 0)
    assert shared == dict.fromkeys(shared, 0)


@pytest.mark.parametrize("threshold", [0.0, 0.02])
def test_top_agent_history_follows_the_challenge_rule_then_the_races(
    runtime: Runtime, threshold: float
) -> None:
    settings = runtime.settings.model_copy(update={"challenge_threshold": threshold})
    demo.generate(runtime.db, settings, **SMALL)

    eligible = _rows(
        runtime.db,
        "SELECT id, final_score, eligible_at FROM agentversion WHERE state = 'ELIGIBLE' "
        "ORDER BY eligible_at, id",
    )
    completed = _rows(
        runtime.db,
        "SELECT winner_agent_version_id, winner_score, race_completed_at FROM race "
        "WHERE status = 'RACE_COMPLETE' ORDER BY race_completed_at",
    )
    history = _rows(
        runtime.db, "SELECT agent_version_id, score, top_at, replaced_at FROM topagenthistory ORDER BY id"
    )
    assert completed, "the small world has completed races"
    first_race = _aware(completed[0][2])

    # replay: before the first completed race, the first eligible version is crowned and a later one
    # takes over only if it beats the incumbent by more than the threshold (the rule of
    # services.leaderboard.recompute_top_agent); from then on each race's winner reigns
    # (services.races.crown: a winner that already reigns keeps its reign with its new race score)
    expected: list[list[Any]] = []
    best_score, best_id = -1.0, None
    for version_id, score, at in eligible:
        if _aware(at) > first_race:
            break
        if score > best_score:
            best_score, best_id = score, version_id
        if not expected or (best_id != expected[-1][0] and best_score > expected[-1][1] + threshold):
            expected.append([best_id, best_score, _aware(at)])
    for winner, score, at in completed:
        if winner is None:
            continue
        if expected and str(expected[-1][0]) == str(winner):
            expected[-1][1] = score
        else:
            expected.append([winner, score, _aware(at)])
    assert [(str(r[0]), r[1], _aware(r[2])) for r in history] == [(str(v), s, t) for v, s, t in expected]
    assert [r[3] is None for r in history] == [False] * (len(history) - 1) + [True]
    for earlier, later in zip(history, history[1:], strict=False):
        assert _aware(earlier[3]) == _aware(later[2])  # replaced when the successor was crowned


def test_board_events_follow_the_simulated_clock(runtime: Runtime) -> None:
    _generate(runtime)

    events = _rows(runtime.db, "SELECT agent_version_id, created_at FROM event WHERE kind = 'TOP_CHANGED'")
    reigns = {
        (str(v), _aware(at))
        for v, at in _rows(runtime.db, "SELECT agent_version_id, top_at FROM topagenthistory")
    }
    assert events and {(str(v), _aware(at)) for v, at in events} == reigns


def _validator_stats(db: Database) -> dict[str, reliability.Reliability]:
    hotkeys = [h for (h,) in _rows(db, "SELECT ss58 FROM hotkey WHERE role = 'validator'")]
    with db.session() as session:
        return reliability.validator_reliability(session, hotkeys)


def test_planted_faults_show_in_the_data(runtime: Runtime) -> None:
    manifest = demo.generate(runtime.db, runtime.settings, **FAULTY)
    faults = {entry["fault"]: entry for entry in manifest.validators}
    stats = _validator_stats(runtime.db)

    assert sorted(faults) == ["biased", "slow", "stale"]
    assert faults["biased"]["score_offset"] == demo.BIASED_SCORE_OFFSET == 0.05
    assert faults["stale"]["stale_rate"] == demo.STALE_LEASE_RATE == 0.20
    assert faults["slow"]["duration_factor"] == demo.SLOW_DURATION_FACTOR
    planted = {entry["hotkey"] for entry in manifest.validators}
    healthy = [r for h, r in stats.items() if h not in planted]

    # biased: about +0.05 above its peers on the versions they both scored (the ORO variance view)
    biased = stats[faults["biased"]["hotkey"]]
    assert biased.mean_delta == pytest.approx(0.05, abs=0.015)
    assert all(abs(r.mean_delta or 0) < 0.025 for r in healthy)

    # stale: about 20% of its leases lapse; healthy validators stay low
    stale = stats[faults["stale"]["hotkey"]]
    assert stale.stale_rate == pytest.approx(0.20, abs=0.06)
    assert max(r.stale_rate or 0 for r in healthy) < 0.08

    # slow: longer runs and more timeouts than any healthy validator
    slow = stats[faults["slow"]["hotkey"]]
    assert slow.rate("TIMED_OUT") > 0.12
    assert slow.rate("TIMED_OUT") > 2 * max(r.rate("TIMED_OUT") or 0 for r in healthy)
    assert slow.duration_p50 > 1.4 * statistics.median(r.duration_p50 for r in healthy)


def test_manifest_describes_the_world(runtime: Runtime, tmp_path: Path) -> None:
    manifest = _generate(runtime)
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


def test_progress_reports_up_to_its_total(runtime: Runtime) -> None:
    calls: list[tuple[int, int]] = []

    _generate(runtime, progress=lambda step, total: calls.append((step, total)))

    totals = {total for _, total in calls}
    assert len(totals) == 1 and sum(step for step, _ in calls) == totals.pop()
    assert all(step > 0 for step, _ in calls)


def test_code_of_every_version_is_in_the_artifact_store(runtime: Runtime) -> None:
    _generate(runtime, runs=100)
    keys = _rows(runtime.db, "SELECT code_key, code_sha256 FROM agentversion")

    import hashlib

    for key, digest in keys:
        assert hashlib.sha256(runtime.storage.get(key)).hexdigest() == digest


def test_refuses_a_database_with_agent_versions(runtime: Runtime) -> None:
    # given: a world made through the services
    world = make_world(runtime)
    submit(runtime, world.miners[0], "hand-made")

    with pytest.raises(demo.DatabaseNotEmpty, match="already has agent versions"):
        _generate(runtime)
    assert not demo.is_empty(runtime.db)


def test_refuses_to_run_twice(runtime: Runtime) -> None:
    assert demo.is_empty(runtime.db)
    _generate(runtime)
    versions = _scalar(runtime.db, "SELECT count(*) FROM agentversion")

    with pytest.raises(demo.DatabaseNotEmpty):
        _generate(runtime)
    assert _scalar(runtime.db, "SELECT count(*) FROM agentversion") == versions


def test_rejects_too_few_validators(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed, match="at least 4 validators"):
        _generate(runtime, validators=3)


def test_settings_shape_the_world(runtime: Runtime) -> None:
    settings: Settings = runtime.settings.model_copy(update={"required_successes": 3})
    demo.generate(runtime.db, settings, **SMALL)

    qualifying = "FROM workitem WHERE race_id IS NULL"
    assert _scalar(runtime.db, f"SELECT min(required_successes) {qualifying}") == 3
    assert _scalar(runtime.db, f"SELECT max(included_successes) {qualifying}") == 3


# --- races -------------------------------------------------------------------------------------------


def test_world_runs_races_with_incumbents_pins_and_non_finishers(runtime: Runtime) -> None:
    manifest = _generate(runtime)
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


def test_races_follow_the_services_rules(runtime: Runtime) -> None:
    _generate(runtime)
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
