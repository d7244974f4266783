"""The demo world: deterministic, complete (every state and status), consistent with the lifecycle
rules, and carrying the planted validator faults that the manifest documents."""

from __future__ import annotations

import json
import math
import statistics
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import SQLModel

from oro_graph import demo
from oro_graph.db import Database
from oro_graph.errors import ValidationFailed
from oro_graph.models import totals as cells
from oro_graph.runtime import Runtime
from oro_graph.services import reliability
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


def check_top_agent_history(db: Database, threshold: float) -> None:
    """The reigns of a generated world follow the challenge rule (with ``threshold``), then the races."""
    eligible = _rows(
        db,
        "SELECT id, final_score, eligible_at FROM agentversion WHERE state = 'ELIGIBLE' "
        "ORDER BY eligible_at, id",
    )
    completed = _rows(
        db,
        "SELECT winner_agent_version_id, winner_score, race_completed_at FROM race "
        "WHERE status = 'RACE_COMPLETE' ORDER BY race_completed_at",
    )
    history = _rows(
        db, "SELECT agent_version_id, score, top_at, replaced_at FROM topagenthistory ORDER BY id"
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


def test_top_agent_history_follows_a_challenge_threshold(runtime: Runtime) -> None:
    # the default threshold (0) on the module world of tests/test_demo_world.py
    settings = runtime.settings.model_copy(update={"challenge_threshold": 0.02})
    demo.generate(runtime.db, settings, **SMALL)
    check_top_agent_history(runtime.db, 0.02)


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


def test_refuses_a_database_with_agent_versions(runtime: Runtime) -> None:
    # given: a world made through the services
    world = make_world(runtime)
    submit(runtime, world.miners[0], "hand-made")

    with pytest.raises(demo.DatabaseNotEmpty, match="already has agent versions"):
        _generate(runtime)
    assert not demo.is_empty(runtime.db)


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
