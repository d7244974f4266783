"""metrics: hand-computed tiny frames, cross-checks against krippendorff and pingouin, and the flag rules
on a simulated validator population."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
import pingouin
import pytest
from scipy import stats

from oro_graph.analytics import metrics
from tests.analytics.conftest import Population, simulate_population

T0 = pd.Timestamp("2025-03-01 10:00", tz="UTC")


def make_results(scores: dict[str, list[float | None]], **extra: Any) -> pd.DataFrame:
    """One finished result per (version, problem index) from {version: [score per problem]}."""
    rows = [
        {
            "run_id": f"r-{v}",
            "agent_version_id": v,
            "validator_hotkey": "hk",
            "problem_id": f"p{i}",
            "status": "SUCCESS",
            "score": s,
        }
        for v, values in scores.items()
        for i, s in enumerate(values)
    ]
    frame = pd.DataFrame(rows)
    frame["score"] = frame["score"].astype("Float64")
    return frame.assign(**extra)


def make_runs(rows: list[tuple[str, str, str, float | None, bool]]) -> pd.DataFrame:
    """Runs from (version, validator, status, validator_score, is_included) tuples."""
    frame = pd.DataFrame(
        rows, columns=["agent_version_id", "validator_hotkey", "status", "validator_score", "is_included"]
    )
    n = len(frame)
    return frame.assign(
        run_id=range(n),
        suite_id=1,
        validator_score=frame["validator_score"].astype("Float64"),
        claimed_at=T0,
        completed_at=T0 + pd.Timedelta(minutes=10),
        last_heartbeat_at=T0 + pd.Timedelta(minutes=9),
        lease_expires_at=T0 + pd.Timedelta(minutes=20),
    )


@pytest.fixture(scope="module")
def world() -> Population:
    return simulate_population(0, n_versions=200)


# --------------------------------------------------------------------------------------------- Wilson
def test_wilson_interval_matches_hand_values() -> None:
    # given / when
    lower, upper = metrics.wilson_interval([5, 0, 3], [10, 10, 0])
    # then: p=0.5, n=10 -> 0.2366..0.7634; k=0 -> [0, z^2 / (n + z^2)]; n=0 -> undefined
    z2 = 1.959963984540054**2
    assert lower[:2] == pytest.approx([0.236593, 0.0], abs=1e-6)
    assert upper[:2] == pytest.approx([0.763407, z2 / (10 + z2)], abs=1e-6)
    assert np.isnan(lower[2]) and np.isnan(upper[2])


def test_wilson_interval_scalar_and_confidence() -> None:
    lower95, upper95 = metrics.wilson_interval(30, 100)
    lower80, upper80 = metrics.wilson_interval(30, 100, confidence=0.80)
    assert lower95 < lower80 < 0.3 < upper80 < upper95
    assert np.ndim(lower95) == 0


# --------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_scores_separated_versions() -> None:
    results = make_results({"a": [1.0, 1.0, 1.0], "b": [0.0, 0.0, 0.0]})
    out = metrics.bootstrap_scores(results, n_boot=200)
    a, b = out.set_index("agent_version_id").loc["a"], out.set_index("agent_version_id").loc["b"]
    assert list(out["agent_version_id"]) == ["a", "b"]
    assert (a["mean"], a["lower"], a["upper"], a["rank"], a["rank_lower"], a["rank_upper"]) == (
        1,
        1,
        1,
        1,
        1,
        1,
    )
    assert (a["rank_ub"], a["p_top"]) == (1, 1.0)
    assert (b["rank"], b["rank_ub"], b["p_top"], b["n_problems"]) == (2, 2, 0.0, 3)


def test_bootstrap_scores_resamples_problems_jointly() -> None:
    # given: "a" is "b" + 0.1 on every problem, while problem difficulty varies a lot
    base = [0.1, 0.5, 0.9, 0.2, 0.7]
    results = make_results({"a": [s + 0.1 for s in base], "b": base})
    # when
    out = metrics.bootstrap_scores(results, n_boot=500, seed=3).set_index("agent_version_id")
    # then: intervals overlap (so Rank(UB) ties them) but a paired resample always puts a first
    assert out.loc["a", "lower"] < out.loc["b", "upper"]
    assert out.loc["a", "p_top"] == 1.0 and out.loc["a", "rank_upper"] == 1
    assert out.loc["a", "rank_ub"] == 1 and out.loc["b", "rank_ub"] == 1


def test_bootstrap_scores_two_problem_interval_and_ties() -> None:
    # with two problems a 95% percentile interval spans both problem scores
    out = metrics.bootstrap_scores(make_results({"a": [0.2, 0.6], "b": [0.2, 0.6]}), n_boot=2000, seed=1)
    assert out["mean"].tolist() == pytest.approx([0.4, 0.4])
    assert out["lower"].tolist() == pytest.approx([0.2, 0.2])
    assert out["upper"].tolist() == pytest.approx([0.6, 0.6])
    assert out["p_top"].tolist() == pytest.approx([0.5, 0.5])
    assert out["rank"].tolist() == [1, 1]


def test_bootstrap_scores_seeded_and_missing_scores() -> None:
    results = make_results({"a": [0.9, None, 0.3, 0.5], "b": [0.4, 0.4, 0.8, 0.1]})
    pending = make_results({"a": [0.0]}).assign(problem_id="p9", status="PENDING", score=pd.NA)
    results = pd.concat([results, pending.astype(results.dtypes.to_dict())], ignore_index=True)
    first = metrics.bootstrap_scores(results, n_boot=300, seed=7)
    assert first.equals(metrics.bootstrap_scores(results, n_boot=300, seed=7))
    assert not first.equals(metrics.bootstrap_scores(results, n_boot=300, seed=8))
    means = first.set_index("agent_version_id")["mean"]
    assert means["a"] == pytest.approx((0.9 + 0 + 0.3 + 0.5) / 4)  # null counts 0, PENDING row ignored
    dropped = metrics.bootstrap_scores(results, n_boot=50, missing_as_zero=False).set_index(
        "agent_version_id"
    )
    assert dropped.loc["a", "mean"] == pytest.approx(1.7 / 3) and dropped.loc["a", "n_problems"] == 3


# --------------------------------------------------------------------------------------------- top margin
def test_top_margin_against_threshold() -> None:
    results = make_results(
        {"a": [0.9, 0.8, 0.7, 1.0], "b": [0.7, 0.6, 0.5, None], "c": [0.1, 0.1, 0.1, 0.1]},
    )
    results = results[~((results["agent_version_id"] == "b") & (results["problem_id"] == "p3"))]
    above = metrics.top_margin(results, threshold=0.1, n_boot=300).iloc[0]
    assert (above["top"], above["runner_up"], above["n_problems"]) == ("a", "b", 3)
    assert above["margin"] == pytest.approx(0.2) and above["top_mean"] == pytest.approx(0.8)
    assert above["lower"] == pytest.approx(0.2) and above["upper"] == pytest.approx(0.2)
    assert (above["verdict"], above["p_above"]) == ("above", 1.0)
    below = metrics.top_margin(results, threshold=0.3, n_boot=300).iloc[0]
    assert (below["verdict"], below["p_above"]) == ("below", 0.0)


def test_top_margin_explicit_pair_and_uncertain() -> None:
    results = make_results({"a": [0.9, 0.1, 0.5], "b": [0.5, 0.5, 0.4]})
    out = metrics.top_margin(results, top="b", runner_up="a", threshold=0.0, n_boot=500).iloc[0]
    assert out["margin"] == pytest.approx((-0.4 + 0.4 - 0.1) / 3)
    assert out["verdict"] == "uncertain" and out["lower"] < 0 < out["upper"]
    assert metrics.top_margin(make_results({"a": [1.0]})).empty


# ------------------------------------------------------------------------------------ profile and items
def test_category_profile_cells() -> None:
    results = make_results({"a": [1.0, 0.5, None, 0.0], "b": [0.0, 0.5, 1.0, 1.0]})
    results["category"] = results["problem_id"].map(
        {"p0": "Shop", "p1": "Shop", "p2": "Voucher", "p3": "Voucher"}
    )
    results["difficulty"] = results["problem_id"].map(
        {"p0": "easy", "p1": "medium", "p2": "easy", "p3": "easy"}
    )
    out = metrics.category_profile(results).set_index(["category", "difficulty"])
    assert out.loc[("Shop", "easy")].tolist() == [2, 1, 2, 0.5]
    assert out.loc[("Voucher", "easy")].tolist() == [4, 2, 2, 0.5]  # the null counts 0: (0 + 0 + 1 + 1) / 4
    per_version = metrics.category_profile(results, by_version=True)
    assert per_version.columns[0] == "agent_version_id" and len(per_version) == 6


def test_item_analysis_difficulty_discrimination_dead() -> None:
    # given: 4 versions x 4 problems; p2 everyone 0, p3 everyone 1
    scores = {
        "a": [1.0, 0.8, 0.0, 1.0],
        "b": [0.6, 0.9, 0.0, 1.0],
        "c": [0.4, 0.2, 0.0, 1.0],
        "d": [0.0, 0.1, 0.0, 1.0],
    }
    out = metrics.item_analysis(make_results(scores)).set_index("problem_id")
    # then
    x = np.array(list(scores.values()))
    rest = (x.sum(axis=1) - x[:, 0]) / 3
    assert out.loc["p0", "mean_score"] == pytest.approx(0.5)
    assert out.loc["p0", "corrected_r"] == pytest.approx(np.corrcoef(x[:, 0], rest)[0, 1])
    assert out.loc["p0", "item_total_r"] == pytest.approx(np.corrcoef(x[:, 0], x.mean(axis=1))[0, 1])
    assert out["dead"].tolist() == [False, False, True, True]
    assert np.isnan(out.loc["p2", "corrected_r"]) and out.loc["p0", "n_versions"] == 4


# --------------------------------------------------------------------------------------------- statuses
def test_status_mix_includes_zero_statuses() -> None:
    frame = pd.DataFrame(
        {
            "validator_hotkey": ["x", "x", "x", "y"],
            "status": pd.Categorical(
                ["SUCCESS", "SUCCESS", "STALE", "FAILED"], categories=metrics.RUN_STATUSES
            ),
        }
    )
    out = metrics.status_mix(frame)
    assert len(out) == 2 * len(metrics.RUN_STATUSES)
    x = out[out["validator_hotkey"] == "x"].set_index("status")
    assert (x.loc["SUCCESS", "n"], x.loc["STALE", "share"], x.loc["RUNNING", "n"]) == (
        2,
        pytest.approx(1 / 3),
        0,
    )
    assert out.groupby("validator_hotkey")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    plain = metrics.status_mix(frame.assign(status=frame["status"].astype(str)))
    assert list(plain["status"].cat.categories) == ["SUCCESS", "FAILED", "STALE"]


def test_timeout_loss() -> None:
    results = make_results({"a": [None, 0.5, 1.0, None], "b": [0.2, 0.4]})
    results["status"] = ["TIMED_OUT", "SUCCESS", "SUCCESS", "PENDING", "SUCCESS", "SUCCESS"]
    out = metrics.timeout_loss(results).set_index("agent_version_id")
    assert (out.loc["a", "n_results"], out.loc["a", "n_timed_out"]) == (3, 1)
    assert out.loc["a", "timeout_rate"] == pytest.approx(1 / 3)
    assert out.loc["a", "score_lost"] == pytest.approx(1 / 3 * 0.75)
    low, high = metrics.wilson_interval(1, 3)
    assert (out.loc["a", "timeout_lower"], out.loc["a", "timeout_upper"]) == (
        pytest.approx(low),
        pytest.approx(high),
    )
    assert out.loc["b", "score_lost"] == 0.0
    by_validator = metrics.timeout_loss(results, by=["validator_hotkey"])
    assert by_validator["n_results"].tolist() == [5]


def test_run_outcomes_and_lease_health() -> None:
    runs = make_runs(
        [("v", "x", "SUCCESS", 0.5, True)] * 3
        + [
            ("v", "x", "STALE", None, False),
            ("v", "x", "RUNNING", None, False),
            ("v", "y", "FAILED", None, False),
        ]
    )
    runs.loc[3, "last_heartbeat_at"] = pd.NaT
    out = metrics.run_outcomes(runs).set_index("validator_hotkey")
    assert out.loc["x", ["n_runs", "n_open", "n_closed", "n_success", "n_stale"]].tolist() == [5, 1, 4, 3, 1]
    assert (out.loc["x", "success_rate"], out.loc["x", "stale_rate"], out.loc["y", "failed_rate"]) == (
        0.75,
        0.25,
        1.0,
    )
    assert out.loc["x", "success_lower"] == pytest.approx(float(metrics.wilson_interval(3, 4)[0]))
    lease = metrics.lease_health(runs).set_index("validator_hotkey")
    assert lease.loc["x", ["n_runs", "n_closed", "n_stale", "n_heartbeat"]].tolist() == [5, 4, 1, 4]
    assert (lease.loc["x", "stale_rate"], lease.loc["x", "heartbeat_coverage"]) == (0.25, 0.8)


def test_duration_stats_finished_runs_only() -> None:
    runs = make_runs(
        [("v", "x", "SUCCESS", 0.5, True)] * 3
        + [("v", "x", "STALE", None, False), ("v", "x", "SUCCESS", 0.5, True)]
    )
    runs["completed_at"] = [T0 + pd.Timedelta(seconds=s) for s in (60, 120, 180)] + [
        T0 + pd.Timedelta(hours=5),
        pd.NaT,
    ]
    out = metrics.duration_stats(runs).iloc[0]
    assert (out["n_finished"], out["p50"], out["p95"], out["mean"]) == (3, 120, pytest.approx(174), 120)


def test_excess_timeouts_vs_peers_on_same_versions() -> None:
    # given: v1 A 5/10, B 1/10, C 1/10 timed out; v2 A 2/10, B 0/10; v3 only A (no peers, ignored)
    cells = [
        ("v1", "A", 10, 5),
        ("v1", "B", 10, 1),
        ("v1", "C", 10, 1),
        ("v2", "A", 10, 2),
        ("v2", "B", 10, 0),
        ("v3", "A", 10, 10),
    ]
    frame = pd.DataFrame(
        [(v, h, "TIMED_OUT" if i < t else "SUCCESS") for v, h, n, t in cells for i in range(n)],
        columns=["agent_version_id", "validator_hotkey", "status"],
    )
    out = metrics.excess_timeouts(frame).set_index("validator_hotkey")
    # then: A expected 10*2/20 + 10*0/10 = 1 of 20; B expected 10*6/20 + 10*2/10 = 5 of 20
    assert out.loc["A", ["n_versions", "n", "n_timed_out"]].tolist() == [2, 20, 7]
    assert (out.loc["A", "timeout_rate"], out.loc["A", "peer_rate"]) == (0.35, 0.05)
    assert (out.loc["A", "excess"], out.loc["A", "ratio"]) == (pytest.approx(0.30), pytest.approx(7.0))
    assert (out.loc["B", "peer_rate"], out.loc["B", "excess"]) == (0.25, pytest.approx(-0.20))


# ----------------------------------------------------------------------------------- validator variance
@pytest.fixture
def variance_runs() -> pd.DataFrame:
    return make_runs(
        [
            ("v1", "A", "SUCCESS", 0.50, True),
            ("v1", "B", "SUCCESS", 0.60, True),
            ("v1", "C", "SUCCESS", 0.70, True),
            ("v2", "A", "SUCCESS", 0.40, True),
            ("v2", "A", "SUCCESS", 0.50, True),
            ("v2", "B", "SUCCESS", 0.42, True),
            ("v3", "A", "SUCCESS", 0.90, True),  # one validator only: not a pair
            ("v1", "C", "FAILED", 0.10, False),
            ("v1", "B", "SUCCESS", 0.00, False),
            ("v2", "C", "SUCCESS", None, True),
        ]
    )


def test_pair_spread_oro_definition(variance_runs: pd.DataFrame) -> None:
    out = metrics.pair_spread(variance_runs).set_index("agent_version_id")
    assert list(out.index) == ["v1", "v2"]
    assert out.loc["v1", ["n_validators", "n_pairs"]].tolist() == [3, 3]
    assert out["spread"].tolist() == pytest.approx([0.2, 0.03])
    assert out["bucket"].astype(str).tolist() == [">=0.1", "0.02-0.05"]
    assert list(out["bucket"].cat.categories) == ["<0.01", "0.01-0.02", "0.02-0.05", "0.05-0.1", ">=0.1"]


def test_peer_and_validator_deltas(variance_runs: pd.DataFrame) -> None:
    deltas = metrics.peer_deltas(variance_runs).set_index(["agent_version_id", "validator_hotkey"])["delta"]
    assert deltas.to_dict() == pytest.approx(
        {("v1", "A"): -0.15, ("v1", "B"): 0.0, ("v1", "C"): 0.15, ("v2", "A"): 0.03, ("v2", "B"): -0.03}
    )
    out = metrics.validator_deltas(variance_runs).set_index("validator_hotkey")
    assert out.loc["A", "n_versions"] == 2
    assert out.loc["A", ["mean_delta", "sd_delta", "mean_abs_delta"]].tolist() == pytest.approx(
        [-0.06, 0.18 / np.sqrt(2), 0.09]
    )
    assert out.loc["C", "mean_delta"] == pytest.approx(0.15) and np.isnan(out.loc["C", "sd_delta"])


def test_consensus_trust_clips_at_median(variance_runs: pd.DataFrame) -> None:
    out = metrics.consensus_trust(variance_runs).set_index("validator_hotkey")["trust"]
    # medians: v1 0.60, v2 (0.45 + 0.42) / 2 = 0.435
    assert out.to_dict() == pytest.approx({"A": (0.5 + 0.435) / 0.95, "B": 1.0, "C": 0.6 / 0.7})


def test_score_matrix(variance_runs: pd.DataFrame) -> None:
    matrix = metrics.score_matrix(variance_runs)
    assert matrix.shape == (2, 3) and np.isnan(matrix.loc["v2", "C"])
    assert matrix.loc["v2", "A"] == pytest.approx(0.45)
    assert metrics.score_matrix(variance_runs, min_validators=1).shape == (3, 3)


# --------------------------------------------------------------------------------------------- agreement
def _random_matrix(seed: int, units: int = 40, raters: int = 6, missing: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1, (units, 1))
    x = truth + rng.normal(0, 0.1, (units, raters)) + rng.normal(0, 0.05, (1, raters))
    x[rng.random(x.shape) < missing] = np.nan
    return pd.DataFrame(x, columns=[f"hk{j}" for j in range(raters)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_krippendorff_alpha_matches_package(seed: int) -> None:
    matrix = _random_matrix(seed)
    expected = krippendorff.alpha(reliability_data=matrix.to_numpy().T, level_of_measurement="interval")
    assert metrics.krippendorff_alpha(matrix) == pytest.approx(expected, abs=1e-10)


def test_krippendorff_alpha_edge_cases() -> None:
    assert metrics.krippendorff_alpha(pd.DataFrame({"a": [0.1, 0.5, 0.9], "b": [0.1, 0.5, 0.9]})) == 1.0
    assert np.isnan(metrics.krippendorff_alpha(pd.DataFrame({"a": [0.1, np.nan], "b": [np.nan, 0.3]})))
    assert np.isnan(metrics.krippendorff_alpha(np.empty((0, 0))))


def test_leave_one_out_alpha_matches_package() -> None:
    matrix = _random_matrix(4)
    matrix["hk5"] = matrix["hk5"] + 0.3  # a biased rater lowers agreement
    out = metrics.leave_one_out_alpha(matrix).set_index("validator_hotkey")
    for hotkey in matrix.columns:
        rest = matrix.drop(columns=hotkey).to_numpy().T
        assert out.loc[hotkey, "alpha_without"] == pytest.approx(
            krippendorff.alpha(reliability_data=rest, level_of_measurement="interval"), abs=1e-10
        )
    assert out["alpha_change"].idxmax() == "hk5"


def test_icc2_1_matches_pingouin() -> None:
    # given: 12 complete versions x 4 validators, plus a row with a gap that must be dropped
    matrix = _random_matrix(5, units=12, raters=4, missing=0.0)
    long = (
        matrix.rename_axis("target")
        .reset_index()
        .melt(id_vars="target", var_name="rater", value_name="rating")
    )
    expected = pingouin.intraclass_corr(data=long, targets="target", raters="rater", ratings="rating")
    icc2 = expected[expected["Type"].isin(["ICC2", "ICC(A,1)"])].iloc[0]
    gapped = pd.concat([matrix, pd.DataFrame([[0.5, np.nan, 0.4, 0.3]], columns=matrix.columns)])
    # when
    out = metrics.icc2_1(gapped, target=0.9).iloc[0]
    # then
    assert (out["n_targets"], out["k_raters"]) == (12, 4)
    assert out["icc"] == pytest.approx(icc2["ICC"], abs=1e-10)
    assert [out["lower"], out["upper"]] == pytest.approx(
        list(icc2["CI95"]), abs=0.006
    )  # pingouin rounds to 2 dp
    assert out["validators_needed"] == metrics.validators_needed(out["icc"], 0.9)


def test_icc2_1_too_little_data() -> None:
    out = metrics.icc2_1(pd.DataFrame({"a": [0.1], "b": [0.2]}))
    assert out["n_targets"].tolist() == [1] and np.isnan(out["icc"].iloc[0])
    assert metrics.icc2_1(pd.DataFrame()).empty


@pytest.mark.parametrize(
    ("icc", "target", "needed"),
    [(0.5, 0.9, 9), (0.9, 0.9, 1), (0.6, 0.8, 3), (1.0, 0.9, 1), (0.0, 0.9, None), (float("nan"), 0.9, None)],
)
def test_validators_needed_spearman_brown(icc: float, target: float, needed: int | None) -> None:
    assert metrics.validators_needed(icc, target) == needed


def test_consensus_agreement_with_mean_of_others() -> None:
    matrix = pd.DataFrame(
        {"A": [0.1, 0.2, 0.3, 0.4, 0.5], "B": [0.2, 0.3, 0.4, 0.5, np.nan], "C": [0.4, 0.1, 0.2, 0.3, 0.9]},
        index=[f"v{i}" for i in range(5)],
    )
    out = metrics.consensus_agreement(matrix).set_index("validator_hotkey")
    others_a = matrix[["B", "C"]].mean(axis=1)
    assert out.loc["A", "n_versions"] == 5
    assert out.loc["A", "spearman"] == pytest.approx(stats.spearmanr(matrix["A"], others_a).statistic)
    assert out.loc["B", "n_versions"] == 4
    assert np.isnan(metrics.consensus_agreement(matrix, min_versions=6)["spearman"]).all()
    assert metrics.pairwise_agreement(matrix).loc["A", "B"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------- activity
def test_freshness_uses_given_now() -> None:
    runs = make_runs(
        [
            ("v", "A", "SUCCESS", 0.5, True),
            ("v", "A", "FAILED", None, False),
            ("v", "B", "STALE", None, False),
        ]
    )
    runs.loc[1, "claimed_at"] = T0 - pd.Timedelta(days=1)
    runs.loc[1, "completed_at"] = T0 - pd.Timedelta(days=1)
    runs.loc[1, "last_heartbeat_at"] = T0 - pd.Timedelta(days=1)
    runs.loc[2, ["claimed_at", "completed_at", "last_heartbeat_at"]] = [
        T0 - pd.Timedelta(hours=1),
        T0,  # the server's sweep stamped the STALE run: not the validator's activity
        T0 - pd.Timedelta(minutes=50),
    ]
    out = metrics.freshness(runs, now=pd.Timestamp("2025-03-01 12:00")).set_index("validator_hotkey")
    assert out.loc["A", "hours_since_last"] == pytest.approx(1 + 50 / 60)  # completed 10:10
    assert out.loc["B", "hours_since_last"] == pytest.approx(2 + 50 / 60)  # heartbeat 09:10
    assert (out.loc["A", "work_share"], out.loc["A", "success_share"], out.loc["B", "success_share"]) == (
        pytest.approx(2 / 3),
        1.0,
        0.0,
    )


# --------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_validator_flags_find_exactly_the_planted_validators(seed: int) -> None:
    # given: 17 normal validators and one biased, one stale and one slow one
    world = simulate_population(seed)
    # when
    flags = metrics.validator_flags(world.runs, world.results)
    # then
    assert list(flags.columns) == ["hotkey", "flag", "metric", "value"]
    assert set(zip(flags["hotkey"], flags["flag"], strict=True)) == set(world.planted.items())


def test_validator_flags_on_runs_only() -> None:
    world = simulate_population(11)
    flags = metrics.validator_flags(world.runs)
    assert set(zip(flags["hotkey"], flags["flag"], strict=True)) == set(world.planted.items())
    slow = flags[flags["flag"] == "slow"]
    assert slow["metric"].tolist() == ["excess_run_timeout_rate", "p95_duration_ratio"]
    assert slow["value"].iloc[1] > 2.0


@pytest.mark.parametrize("seed", [5, 6])
def test_validator_flags_catch_a_mildly_slow_validator_by_its_run_timeouts(seed: int) -> None:
    # given: the slow validator is only 1.8x slower and its problems time out like everyone's,
    # but 15% of its runs time out (against 1% for its peers)
    world = simulate_population(seed, slow_duration=1.8, slow_problem_timeout=0.05)
    # when
    flags = metrics.validator_flags(world.runs, world.results)
    # then
    assert set(zip(flags["hotkey"], flags["flag"], strict=True)) == set(world.planted.items())
    assert flags.loc[flags["flag"] == "slow", "metric"].tolist() == ["excess_run_timeout_rate"]


def test_validator_flags_thresholds_are_parameters(world: Population) -> None:
    # given: the bias is +0.05 and the stale validator loses ~20% of its leases
    flags = metrics.validator_flags(
        world.runs,
        world.results,
        bias_threshold=0.08,
        stale_threshold=0.5,
        timeout_margin=None,
        duration_multiple=None,
    )
    assert flags.empty and list(flags.columns) == list(metrics.FLAG_COLUMNS)
    strict = metrics.validator_flags(
        world.runs, world.results, min_versions=10_000, min_runs=10_000, min_timeout_n=10**9
    )
    assert strict.empty


def test_validator_flags_values(world: Population) -> None:
    flags = metrics.validator_flags(world.runs, world.results).set_index(["flag", "metric"])
    assert flags.loc[("biased", "mean_delta_vs_peers"), "value"] == pytest.approx(0.05, abs=0.01)
    assert flags.loc[("slow", "excess_problem_timeout_rate"), "value"] == pytest.approx(0.20, abs=0.04)


# --------------------------------------------------------------------------------------------- contracts
RUNS_FUNCTIONS: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame]]] = [
    ("run_outcomes", metrics.run_outcomes),
    ("lease_health", metrics.lease_health),
    ("duration_stats", metrics.duration_stats),
    ("excess_timeouts", metrics.excess_timeouts),
    ("status_mix", metrics.status_mix),
    ("validator_scores", metrics.validator_scores),
    ("pair_spread", metrics.pair_spread),
    ("peer_deltas", metrics.peer_deltas),
    ("validator_deltas", metrics.validator_deltas),
    ("consensus_trust", metrics.consensus_trust),
    ("freshness", lambda runs: metrics.freshness(runs, now=T0)),
    ("validator_flags", metrics.validator_flags),
    ("loo_alpha", lambda runs: metrics.leave_one_out_alpha(metrics.score_matrix(runs))),
    ("consensus_agreement", lambda runs: metrics.consensus_agreement(metrics.score_matrix(runs))),
    ("icc2_1", lambda runs: metrics.icc2_1(metrics.score_matrix(runs).iloc[:, :3])),
]
RESULTS_FUNCTIONS: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame]]] = [
    ("bootstrap_scores", lambda results: metrics.bootstrap_scores(results, n_boot=50)),
    ("top_margin", lambda results: metrics.top_margin(results, n_boot=50)),
    ("category_profile", metrics.category_profile),
    ("item_analysis", metrics.item_analysis),
    ("timeout_loss", metrics.timeout_loss),
    ("status_mix_results", lambda results: metrics.status_mix(results, by="agent_version_id")),
    ("excess_timeouts_results", metrics.excess_timeouts),
]
RUNS_NAMES = {name for name, _ in RUNS_FUNCTIONS}


@pytest.mark.parametrize(
    ("name", "fn"), RUNS_FUNCTIONS + RESULTS_FUNCTIONS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_empty_input_keeps_every_output_column(
    name: str, fn: Callable[[pd.DataFrame], pd.DataFrame], world: Population
) -> None:
    frame = world.runs if name in RUNS_NAMES else world.results
    full = fn(frame)
    empty = fn(frame.head(0))
    assert len(full) > 0, name
    assert empty.empty and list(empty.columns) == list(full.columns), name


@pytest.mark.parametrize(
    ("name", "fn"), RUNS_FUNCTIONS[:-3] + RESULTS_FUNCTIONS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_missing_columns_raise_naming_them(
    name: str, fn: Callable[[pd.DataFrame], pd.DataFrame], world: Population
) -> None:
    frame = world.runs if name in RUNS_NAMES else world.results
    with pytest.raises(ValueError, match="status|validator_hotkey|agent_version_id"):
        fn(frame.drop(columns=["status", "validator_hotkey", "agent_version_id"], errors="ignore"))


def test_missing_column_message_lists_the_column() -> None:
    with pytest.raises(ValueError, match=r"lease_health: missing column\(s\) \['last_heartbeat_at'\]"):
        metrics.lease_health(pd.DataFrame({"validator_hotkey": [], "status": []}))


def test_categorical_ids_do_not_explode_groups(world: Population) -> None:
    runs = world.runs.astype({"validator_hotkey": "category", "agent_version_id": "category"})
    assert metrics.validator_deltas(runs).equals(metrics.validator_deltas(world.runs))
    assert len(metrics.run_outcomes(runs)) == world.runs["validator_hotkey"].nunique()
