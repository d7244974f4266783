"""oro_graph.analytics.races on small frames: the weight rule against the server's, the field's
prediction and stability figures, bootstrap leads and the summary."""

from __future__ import annotations

import random
import uuid

import numpy as np
import pandas as pd
import pytest

from oro_graph.analytics import races
from oro_graph.services import races as server_races


def _field(race_number: int, scores: dict[str, float | None], qualifying: dict[str, float]) -> pd.DataFrame:
    ranked = sorted((s, m) for m, s in scores.items() if s is not None)[::-1]
    rank = {m: i for i, (_, m) in enumerate(ranked, 1)}
    return pd.DataFrame(
        [
            {
                "race_id": f"r{race_number}",
                "race_number": race_number,
                "agent_version_id": f"v-{m}-{race_number}",
                "miner_hotkey": m,
                "agent_name": f"agent-{m}",
                "qualification_type": "SCORED",
                "qualifying_score": qualifying[m],
                "race_score": s,
                "race_rank": rank.get(m),
                "did_not_finish": s is None,
            }
            for m, s in scores.items()
        ]
    )


def test_validator_weights_follow_the_rule() -> None:
    # one finisher: K = 0 burns everything
    assert races.validator_weights([("a", "v1", 0.9)]) == [(None, None, None, 65535)]
    # two: K = 1, the winner gets t_top / t_burn of the burn slot
    assert races.validator_weights([("a", "v1", 0.5), ("b", "v2", 0.9)]) == [
        (None, None, None, 65535),
        ("b", "v2", 1, round(0.25 * 65535 / 0.75)),
    ]
    # five: K = 2, rank 2 gets one unit; a tie goes to the smaller version id
    five = [("a", "v5", 0.9), ("b", "v4", 0.9), ("c", "v3", 0.5), ("d", "v2", 0.4), ("e", "v1", 0.1)]
    assert races.validator_weights(five) == [
        (None, None, None, 65535),
        ("b", "v4", 1, round(0.25 * (65535 + 1) / 0.75)),
        ("a", "v5", 2, 1),
    ]


@pytest.mark.parametrize("n", [1, 2, 3, 6, 11, 20])
def test_validator_weights_agree_with_the_servers_rule(n: int) -> None:
    rng = random.Random(n)
    finishers = [(f"m{i}", uuid.UUID(int=rng.getrandbits(128)), round(rng.random(), 2)) for i in range(n)]
    for t_top, t_burn in ((0.25, 0.75), (0.5, 0.5), (0.8, 0.3)):
        mine = races.validator_weights(finishers, t_top=t_top, t_burn=t_burn)
        theirs = server_races.race_weights(finishers, t_top=t_top, t_burn=t_burn)
        assert [(h, v, r, u) for h, v, r, u in mine] == [
            (w.miner_hotkey, str(w.agent_version_id) if w.agent_version_id else None, w.race_rank, w.units)
            for w in theirs
        ]


def test_recompute_weights_and_shares_per_miner() -> None:
    field = pd.concat(
        [
            _field(1, {"a": 0.9, "b": 0.5, "c": 0.4, "d": None}, dict(a=0.8, b=0.7, c=0.6, d=0.5)),
            _field(2, {"a": 0.3, "b": 0.8}, dict(a=0.8, b=0.7)),
        ]
    )
    weights = races.recompute_weights(field)
    assert weights.groupby("race_number")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    by_miner = races.weights_by_miner(weights)
    assert list(by_miner.index) == [1, 2]
    assert by_miner.loc[1, "a"] > 0 and by_miner.loc[1, "b"] == 0.0  # K = 1 of three finishers
    assert by_miner.loc[2, "b"] == pytest.approx(21845 / (65535 + 21845)) and by_miner.loc[2, "a"] == 0.0
    assert by_miner[races.BURN].tolist() == pytest.approx([65535 / (65535 + 21845)] * 2)


def test_qualifying_predicts_race_score_and_ranks_are_stable() -> None:
    # given: race score = 2 x qualifying - 0.5 exactly, the same order twice
    qualifying = {m: q for m, q in zip("abcde", (0.5, 0.55, 0.6, 0.65, 0.7), strict=True)}
    scores = {m: 2 * q - 0.5 for m, q in qualifying.items()}
    fields = pd.concat([_field(1, scores, qualifying), _field(2, scores, qualifying)])

    prediction = races.qualifying_vs_race(fields)
    stability = races.rank_stability(fields)

    assert prediction["pearson"] == pytest.approx(1.0) and prediction["spearman"] == pytest.approx(1.0)
    assert prediction["slope"] == pytest.approx(2.0) and prediction["intercept"] == pytest.approx(-0.5)
    assert prediction["n"] == 10
    row = stability.iloc[0]
    assert (row["race_number"], row["previous_race"], row["common_miners"]) == (2, 1, 5)
    assert row["rank_spearman"] == pytest.approx(1.0) and row["mean_abs_rank_change"] == 0.0
    assert bool(row["winner_repeated"])
    # a reversed order reads as -1
    reversed_scores = {m: 1 - s for m, s in scores.items()}
    flipped = races.rank_stability(
        pd.concat([_field(1, scores, qualifying), _field(2, reversed_scores, qualifying)])
    )
    assert flipped["rank_spearman"].iloc[0] == pytest.approx(-1.0) and not flipped["winner_repeated"].iloc[0]


def test_bootstrap_lead_separates_a_clear_win_from_noise() -> None:
    clear = races.bootstrap_lead([0.9, 0.92, 0.91], [0.5, 0.52, 0.49], n_boot=500, seed=1)
    noisy = races.bootstrap_lead([0.9, 0.4, 0.7], [0.8, 0.5, 0.6], n_boot=500, seed=1)

    assert clear[0] == pytest.approx(np.mean([0.9, 0.92, 0.91]) - np.mean([0.5, 0.52, 0.49]))
    assert 0 < clear[1] <= clear[0] <= clear[2]
    assert noisy[1] < 0 < noisy[2]
    assert races.bootstrap_lead([0.9, 0.4, 0.7], [0.8, 0.5, 0.6], n_boot=500, seed=1) == noisy


def test_winner_margins_and_summary() -> None:
    fields = _field(1, {"a": 0.91, "b": 0.5, "c": None}, dict(a=0.8, b=0.7, c=0.6))
    runs = pd.DataFrame(
        [
            {"race_number": 1, "agent_version_id": "v-a-1", "validator_score": s, "is_included": True}
            for s in (0.9, 0.92)
        ]
        + [
            {"race_number": 1, "agent_version_id": "v-b-1", "validator_score": s, "is_included": True}
            for s in (0.49, 0.51)
        ]
        + [{"race_number": 1, "agent_version_id": "v-c-1", "validator_score": None, "is_included": False}]
    )

    margins = races.winner_margins(runs, fields, n_boot=300, seed=0)

    row = margins.iloc[0]
    assert (row["winner"], row["runner_up"]) == ("agent-a", "agent-b")
    assert row["lead"] == pytest.approx(0.41) and bool(row["beyond_noise"])
    race_table = pd.DataFrame(
        [{"race_number": 1, "status": "RACE_COMPLETE"}, {"race_number": 2, "status": "RACE_RUNNING"}]
    )
    text = races.summary(
        race_table,
        fields,
        races.qualifying_vs_race(fields),
        races.rank_stability(fields),
        margins,
        pd.DataFrame([{"mean_spread": 2.0}]),
        races.recompute_weights(fields),
    )
    assert "2 races, 1 completed; race 2 is RACE_RUNNING." in text
    assert "1 of 3 entries in completed races did not finish" in text
    assert "beyond noise in 1 of 1 races" in text and "2.0 points apart" in text


def test_the_draw_is_recomputed_as_the_server_draws() -> None:
    rng = random.Random(5)
    secret = f"{rng.getrandbits(256):064x}"
    qualifiers = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(7)]
    problems = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(30)]

    seed = races.draw_seed(secret, [str(q) for q in reversed(qualifiers)])

    assert races.commitment(secret) == server_races.commitment_of(secret)
    assert seed == server_races.draw_seed(secret, qualifiers)
    assert races.draw_problems(seed, [str(p) for p in problems], 10) == server_races.draw_problems(
        seed, problems, 10
    )
    assert races.draw_seed(secret, [str(q) for q in qualifiers[1:]]) != seed  # another field, another draw
