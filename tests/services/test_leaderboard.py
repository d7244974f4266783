from datetime import timedelta

import pytest

from oro_graph.errors import SuiteNotFound
from oro_graph.models import utcnow
from oro_graph.services import agents, leaderboard
from tests.factories import make_eligible, make_world, register


def _world_with_board(rt):
    world = make_world(rt)
    t0 = utcnow() - timedelta(days=3)
    carol = register(rt, "Ferdie")
    world.miners.append(carol)
    ids = {}
    ids["low"] = make_eligible(rt, world, world.miners[0], "low", [0.2, 0.4], now=t0)
    ids["high"] = make_eligible(rt, world, world.miners[1], "high", [0.8, 0.9], now=t0 + timedelta(hours=1))
    ids["tie"] = make_eligible(rt, world, carol, "tie", [0.2, 0.4], now=t0 + timedelta(hours=2))
    return world, t0, ids


def test_leaderboard_ranks_by_score_then_eligibility(runtime):
    # given
    world, _, ids = _world_with_board(runtime)
    # when
    page = runtime.db.call(leaderboard.leaderboard_page)
    # then
    assert [r.version.id for r in page.rows] == [ids["high"], ids["low"], ids["tie"]]
    assert [r.rank for r in page.rows] == [1, 2, 3]
    assert page.total == 3 and page.unique_miners == 3
    assert page.rows[0].version.final_score == pytest.approx(0.85)


def test_leaderboard_search_keeps_global_rank(runtime):
    world, _, ids = _world_with_board(runtime)
    page = runtime.db.call(leaderboard.leaderboard_page, q="TIE")
    assert [(r.rank, r.version.id) for r in page.rows] == [(3, ids["tie"])]
    assert page.total == 1
    by_hotkey = runtime.db.call(leaderboard.leaderboard_page, q=world.miners[1][:12])
    assert [r.version.id for r in by_hotkey.rows] == [ids["high"]]


def test_leaderboard_search_takes_wildcards_literally(runtime):
    # given names that LIKE's wildcards would confuse: "lo_w" matches "lo_w" and, unescaped, "low"
    world = make_world(runtime)
    t0 = utcnow() - timedelta(days=3)
    ids = {
        "lo_w": make_eligible(runtime, world, world.miners[0], "lo_w", [0.5, 0.5], now=t0),
        "low": make_eligible(runtime, world, world.miners[1], "low", [0.6, 0.6], now=t0 + timedelta(hours=1)),
    }

    def found(q: str) -> list:
        return [r.version.id for r in runtime.db.call(leaderboard.leaderboard_page, q=q).rows]

    # then %, _ and the escape character stand for themselves
    assert found("%") == [] and found("%%") == [] and found("\\") == [] and found("\\%") == []
    assert found("_") == [ids["lo_w"]]
    assert found("lo_w") == [ids["lo_w"]]
    assert found("o_") == [ids["lo_w"]]
    assert found("lo%") == []
    assert found("lo") == [ids["low"], ids["lo_w"]]  # an ordinary search still matches both, by rank


def test_leaderboard_paging_and_unknown_suite(runtime):
    _, _, ids = _world_with_board(runtime)
    page = runtime.db.call(leaderboard.leaderboard_page, limit=1, offset=1)
    assert [r.version.id for r in page.rows] == [ids["low"]] and page.total == 3
    with pytest.raises(SuiteNotFound):
        runtime.db.call(leaderboard.leaderboard_page, suite_id=999)


def test_agents_submitted_24h_counts_recent_versions_only(runtime):
    world, t0, _ = _world_with_board(runtime)
    page = runtime.db.call(leaderboard.leaderboard_page, now=t0 + timedelta(hours=12))
    assert page.agents_submitted_24h == 3
    page = runtime.db.call(leaderboard.leaderboard_page, now=t0 + timedelta(hours=25, minutes=30))
    assert page.agents_submitted_24h == 1


def test_top_agent_follows_best_and_keeps_history(runtime):
    world, t0, ids = _world_with_board(runtime)
    top = runtime.db.call(leaderboard.top_agent, settings=runtime.settings)
    assert top.version.id == ids["high"]
    history = runtime.db.call(leaderboard.top_history)
    assert [h.agent_version_id for h in history] == [ids["low"], ids["high"]]
    assert history[0].replaced_at == history[1].top_at
    page = runtime.db.call(leaderboard.leaderboard_page)
    flags = {r.version.id: (r.is_current_top, r.was_top) for r in page.rows}
    assert flags == {ids["high"]: (True, True), ids["low"]: (False, True), ids["tie"]: (False, False)}


def test_challenger_must_beat_incumbent_by_threshold(runtime):
    runtime.settings = replace_settings(runtime.settings, challenge_threshold=0.1)
    world = make_world(runtime)
    t0 = utcnow() - timedelta(days=1)
    first = make_eligible(runtime, world, world.miners[0], "first", [0.5, 0.5], now=t0)
    make_eligible(runtime, world, world.miners[1], "close", [0.55, 0.55], now=t0 + timedelta(hours=1))
    top = runtime.db.call(leaderboard.top_agent, settings=runtime.settings)
    assert top.version.id == first  # 0.55 does not beat 0.5 by more than 0.1
    board = runtime.db.call(leaderboard.leaderboard_page)
    assert board.rows[0].version.final_score == pytest.approx(0.55)  # the board still ranks it first
    carol = register(runtime, "Ferdie")
    winner = make_eligible(runtime, world, carol, "winner", [0.7, 0.7], now=t0 + timedelta(hours=2))
    assert runtime.db.call(leaderboard.top_agent, settings=runtime.settings).version.id == winner


def test_time_travel_answers_as_the_board_stood(runtime):
    world, t0, ids = _world_with_board(runtime)
    between = t0 + timedelta(minutes=30)
    page = runtime.db.call(leaderboard.leaderboard_page, as_of=between)
    assert [r.version.id for r in page.rows] == [ids["low"]]
    assert page.rows[0].is_current_top
    top = runtime.db.call(leaderboard.top_agent, settings=runtime.settings, as_of=between)
    assert top.version.id == ids["low"]
    before = runtime.db.call(leaderboard.top_agent, settings=runtime.settings, as_of=t0 - timedelta(days=1))
    assert top.reign is not None and before.reign is None


def test_code_release_waits_for_eligibility_and_delay(runtime):
    world = make_world(runtime)
    t0 = utcnow()
    vid = make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.5], now=t0)
    version = runtime.db.call(agents.get_version, vid)
    delayed = replace_settings(runtime.settings, code_release_delay_seconds=3600)
    assert agents.is_released(version, runtime.settings, now=t0)
    assert not agents.is_released(version, delayed, now=t0 + timedelta(minutes=59))
    assert agents.is_released(version, delayed, now=t0 + timedelta(minutes=61))
    assert agents.code_available_at(version, delayed) == t0 + timedelta(hours=1)


def replace_settings(settings, **changes):
    return settings.model_copy(update=changes)
