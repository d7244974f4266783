"""Scores: bootstrap intervals, the top margin, category profiles and item analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from oro_graph.analytics.metrics.common import (
    Frame,
    _colwise_corr,
    _empty,
    _finished,
    _float,
    _ids,
    _problem_matrix,
    _require,
)
from oro_graph.stats import paired_bootstrap


def bootstrap_scores(
    results: Frame,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    missing_as_zero: bool = True,
) -> Frame:
    """Paired problem bootstrap of version scores.

    Needs results columns agent_version_id, problem_id, score (status optional: open rows dropped).
    A version's score is the mean over problems of its mean per-problem score (null scores count
    as 0 unless ``missing_as_zero=False``). Each replicate resamples the problems with replacement,
    the same draw for every version. Output, one row per version sorted by rank: agent_version_id,
    n_problems, mean, lower, upper (percentile interval), rank (1 = best, ties share the best
    rank), rank_lower, rank_upper (percentile interval of bootstrap ranks), rank_ub (1 + number of
    versions whose lower bound exceeds this version's upper bound, as in Chatbot Arena) and p_top
    (share of replicates in which the version is best, ties split evenly). Memory grows as
    n_boot x versions, so bootstrap a leaderboard's versions rather than every version ever.
    """
    _require(results, ["agent_version_id", "problem_id", "score"], "bootstrap_scores")
    columns = [
        "agent_version_id",
        "n_problems",
        "mean",
        "lower",
        "upper",
        "rank",
        "rank_lower",
        "rank_upper",
        "rank_ub",
        "p_top",
    ]
    matrix = _problem_matrix(results, missing_as_zero)
    if matrix.empty:
        return _empty(columns)
    x = matrix.to_numpy(dtype=float)
    drawn = paired_bootstrap(x, n_boot=n_boot, confidence=confidence, seed=seed)
    seen, boot, mean, lower, upper = drawn.seen, drawn.draws, drawn.mean, drawn.lower, drawn.upper
    tail = (1 - confidence) / 2
    filled = np.where(np.isnan(boot), -np.inf, boot)
    ranks = stats.rankdata(-filled, axis=1, method="min")
    best = filled == filled.max(axis=1, keepdims=True)
    out = pd.DataFrame(
        {
            "agent_version_id": matrix.index.to_numpy(),
            "n_problems": seen.sum(axis=1),
            "mean": mean,
            "lower": lower,
            "upper": upper,
            "rank": stats.rankdata(-mean, method="min").astype(int),
            "rank_lower": np.quantile(ranks, tail, axis=0, method="lower").astype(int),
            "rank_upper": np.quantile(ranks, 1 - tail, axis=0, method="higher").astype(int),
            "rank_ub": 1 + (lower[None, :] > upper[:, None]).sum(axis=1),
            "p_top": (best / best.sum(axis=1, keepdims=True)).mean(axis=0),
        }
    )
    return out.sort_values(["rank", "agent_version_id"], kind="stable").reset_index(drop=True)[columns]


def top_margin(
    results: Frame,
    *,
    threshold: float = 0.0,
    top: object | None = None,
    runner_up: object | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    missing_as_zero: bool = True,
) -> Frame:
    """Lead of the top version over the runner-up on the problems both have, against a threshold.

    Needs results columns agent_version_id, problem_id, score. ``top``/``runner_up`` default to the
    two best versions by mean per-problem score (as in ``bootstrap_scores``). margin = mean over
    shared problems of (top - runner-up); its interval is a paired percentile bootstrap over those
    problems. One-row output: top, runner_up, n_problems, top_mean, runner_up_mean, margin, lower,
    upper, threshold, p_above (share of replicates with margin > threshold) and verdict: "above"
    (lower > threshold), "below" (upper < threshold) or "uncertain".
    """
    _require(results, ["agent_version_id", "problem_id", "score"], "top_margin")
    columns = [
        "top",
        "runner_up",
        "n_problems",
        "top_mean",
        "runner_up_mean",
        "margin",
        "lower",
        "upper",
        "threshold",
        "p_above",
        "verdict",
    ]
    matrix = _problem_matrix(results, missing_as_zero)
    order = matrix.mean(axis=1).sort_values(ascending=False, kind="stable").index.tolist()
    top = order[0] if top is None and order else top
    if runner_up is None:
        others = [v for v in order if v != top]
        runner_up = others[0] if others else None
    if top is None or runner_up is None or top not in matrix.index or runner_up not in matrix.index:
        return _empty(columns)
    shared = matrix.loc[[top, runner_up]].dropna(axis=1)
    diff = (shared.loc[top] - shared.loc[runner_up]).to_numpy(dtype=float)
    n = diff.size
    row: dict[str, object] = {"top": top, "runner_up": runner_up, "n_problems": n, "threshold": threshold}
    if n == 0:
        row |= dict.fromkeys(["top_mean", "runner_up_mean", "margin", "lower", "upper", "p_above"], np.nan)
        row["verdict"] = "uncertain"
        return pd.DataFrame([row])[columns]
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    lower, upper = np.quantile(boot, [tail, 1 - tail])
    row |= {
        "top_mean": float(shared.loc[top].mean()),
        "runner_up_mean": float(shared.loc[runner_up].mean()),
        "margin": float(diff.mean()),
        "lower": float(lower),
        "upper": float(upper),
        "p_above": float((boot > threshold).mean()),
        "verdict": "above" if lower > threshold else "below" if upper < threshold else "uncertain",
    }
    return pd.DataFrame([row])[columns]


def category_profile(results: Frame, *, by_version: bool = False, missing_as_zero: bool = True) -> Frame:
    """Mean score per category x difficulty cell (optionally per version).

    Needs results columns category, difficulty, problem_id, agent_version_id, score. mean_score is
    the mean over the cell's finished results (null scores count as 0 unless told otherwise); n is
    the number of those results. Output: [agent_version_id,] category, difficulty, n, n_problems,
    n_versions, mean_score.
    """
    _require(
        results, ["agent_version_id", "problem_id", "category", "difficulty", "score"], "category_profile"
    )
    keys = (["agent_version_id"] if by_version else []) + ["category", "difficulty"]
    columns = [*keys, "n", "n_problems", "n_versions", "mean_score"]
    df = _finished(results)
    if df.empty:
        return _empty(columns)
    score = _float(df["score"])
    tidy = pd.DataFrame(
        {k: df[k] for k in keys}
        | {
            "problem_id": _ids(df["problem_id"]),
            "version": _ids(df["agent_version_id"]),
            "score": score.fillna(0.0) if missing_as_zero else score,
        }
    )
    out = tidy.groupby(keys, observed=True).agg(
        n=("score", "count"),
        n_problems=("problem_id", "nunique"),
        n_versions=("version", "nunique"),
        mean_score=("score", "mean"),
    )
    return out.reset_index()[columns]


def item_analysis(results: Frame, *, missing_as_zero: bool = True) -> Frame:
    """Item difficulty and discrimination of each problem across versions.

    Needs results columns agent_version_id, problem_id, score (category and difficulty are carried
    when present). From the versions x problems matrix of mean scores: mean_score is the item
    difficulty (classical p-value), item_total_r the Pearson correlation across versions between
    the item and the version's mean over all items (the point-biserial for 0/1 items), corrected_r
    the same against the mean over the *other* items (corrected item-total correlation; NaN with
    fewer than 3 versions or no variance). dead is True when every version scored 0, or every
    version scored 1, on the problem. Output: problem_id, [category, difficulty,] n_versions,
    mean_score, sd_score, item_total_r, corrected_r, dead.
    """
    _require(results, ["agent_version_id", "problem_id", "score"], "item_analysis")
    labels = [c for c in ("category", "difficulty") if c in results.columns]
    columns = [
        "problem_id",
        *labels,
        "n_versions",
        "mean_score",
        "sd_score",
        "item_total_r",
        "corrected_r",
        "dead",
    ]
    matrix = _problem_matrix(results, missing_as_zero)
    if matrix.empty:
        return _empty(columns)
    x = matrix.to_numpy(dtype=float)
    seen = ~np.isnan(x)
    count = seen.sum(axis=1, keepdims=True).astype(float)
    total = np.nansum(x, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_all = np.broadcast_to(total / count, x.shape)
        rest = np.where(seen & (count > 1), (total - np.where(seen, x, 0.0)) / (count - 1), np.nan)
    out = pd.DataFrame(
        {
            "problem_id": matrix.columns.to_numpy(),
            "n_versions": seen.sum(axis=0),
            "mean_score": matrix.mean(axis=0).to_numpy(),
            "sd_score": matrix.std(axis=0, ddof=1).to_numpy(),
            "item_total_r": _colwise_corr(x, np.where(seen, mean_all, np.nan)),
            "corrected_r": _colwise_corr(x, rest),
            "dead": ((matrix.max(axis=0) <= 0.0) | (matrix.min(axis=0) >= 1.0)).to_numpy(),
        }
    )
    if labels:
        first = results.assign(problem_id=_ids(results["problem_id"])).groupby("problem_id")[labels].first()
        out = out.join(first, on="problem_id")
    return out[columns]
