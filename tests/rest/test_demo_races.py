"""The demo world's races read through oro-sdk 7.0.2 alone, as a validator operator or a dashboard would:
the history newest first, every race's detail, the weight vector the public validator computes from it,
the top agent and the race board naming the latest winner, and the draw reproducible from the secret."""

from __future__ import annotations

from oro_sdk.api.public import (
    get_current_race,
    get_leaderboard,
    get_race_detail,
    get_race_history,
    get_race_validator_variance,
    get_top_agent,
)
from oro_sdk.models import (
    LeaderboardResponse,
    RaceCurrentResponse,
    RaceDetailResponse,
    RaceHistoryResponse,
    RaceValidatorVarianceResponse,
    TopAgentResponse,
)

from oro_graph import demo
from oro_graph.services import races, suites
from tests.rest.live import LiveServer

SMALL = {"seed": 11, "miners": 25, "validators": 8, "runs": 500}


def test_demo_races_through_the_official_client(serve) -> None:
    # given: a served demo world
    server: LiveServer = serve()
    rt = server.runtime
    demo.generate(rt.db, rt.settings, **SMALL)
    public = server.public()

    # when: the history, newest first, and each race's detail
    history = get_race_history.sync(client=public, limit=5)
    assert isinstance(history, RaceHistoryResponse) and len(history.races) == 5
    numbers = [r.race_number for r in history.races]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == 5
    details = [get_race_detail.sync(r.race_id, client=public) for r in history.races]
    assert all(isinstance(d, RaceDetailResponse) for d in details)
    assert [d.race.race_id for d in details] == [r.race_id for r in history.races]

    problems = [p.id for p in rt.db.call(suites.problems_for_suite, details[0].race.suite_id)]
    settings = rt.settings
    for detail in details:
        race, qualifiers = detail.race, detail.qualifiers
        if race.status != "RACE_COMPLETE":
            continue
        # then: ranks follow race scores, the winner is rank 1 and has a miner hotkey
        finishers = [q for q in qualifiers if q.race_score is not None]
        ranked = sorted(finishers, key=lambda q: races.finisher_order(q.race_score, q.agent_version_id))
        assert [q.race_rank for q in ranked] == list(range(1, len(ranked) + 1))
        assert all(q.miner_hotkey for q in qualifiers)
        if ranked:
            assert race.winner_agent_version_id == ranked[0].agent_version_id
        # and the weight vector from the detail by the validator's rule is the server's
        from_detail = races.race_weights(
            [(q.miner_hotkey, q.agent_version_id, q.race_score) for q in finishers],
            t_top=settings.weight_top_share,
            t_burn=settings.weight_burn_share,
        )
        served = races.weights_of(rt.db.call(races.race_view, race.race_id), settings)
        assert [(w.miner_hotkey, w.units) for w in from_detail] == [(w.miner_hotkey, w.units) for w in served]
        # and the revealed secret reproduces the commitment and the draw
        extra = race.additional_properties
        assert races.commitment_of(extra["revealed_secret"]) == extra["seed_commitment"]
        seed = races.draw_seed(extra["revealed_secret"], [q.agent_version_id for q in qualifiers])
        assert races.draw_problems(seed, problems, len(extra["problem_ids"])) == extra["problem_ids"]
        variance = get_race_validator_variance.sync(race.race_id, client=public)
        assert isinstance(variance, RaceValidatorVarianceResponse)

    # and the top agent, the board's current top and the race board's rank 1 are the latest winner
    latest = next(d for d in details if d.race.status == "RACE_COMPLETE")
    winner = latest.race.winner_agent_version_id
    top = get_top_agent.sync(client=public)
    assert isinstance(top, TopAgentResponse) and top.top_agent_version_id == winner
    board = get_leaderboard.sync(client=public, limit=500)
    assert isinstance(board, LeaderboardResponse)
    assert [e.agent_version_id for e in board.entries if e.is_current_top] == [winner]
    race_board = get_leaderboard.sync(client=public, score_type="race")
    assert race_board.entries[0].agent_version_id == winner
    current = get_current_race.sync(client=public)
    assert isinstance(current, RaceCurrentResponse) and current.race is not None
