"""Score and validator-reliability metrics over tidy ORO frames.

Pure pandas/numpy/scipy: no I/O, no wall clock, and every random draw comes from
``numpy.random.default_rng(seed)``. Inputs are the long frames of ``oro_graph.analytics``:

- runs: run_id, agent_version_id, validator_hotkey, suite_id, status, claimed_at, completed_at,
  last_heartbeat_at, lease_expires_at, validator_score, is_included
- results (one row per problem of a run): run_id, agent_version_id, validator_hotkey, problem_id,
  category, difficulty, status, score, execution_time
- leaderboard: agent_version_id, agent_name, miner_hotkey, rank, final_score, eligible_at

Each function names the columns it needs and raises ``ValueError`` listing any that are missing.
An empty input gives an empty frame that still has every output column. Statuses may be strings
or categoricals; they are compared by upper-case name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from oro_graph.stats import paired_bootstrap

RUN_STATUSES: Final = ("CLAIMED", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "STALE", "CANCELLED")
RESULT_STATUSES: Final = ("PENDING", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED")
OPEN_STATUSES: Final = ("CLAIMED", "RUNNING", "PENDING")
FINISHED_RUN_STATUSES: Final = ("SUCCESS", "FAILED", "TIMED_OUT")
FLAG_COLUMNS: Final = ("hotkey", "flag", "metric", "value")

_RUN_OUTCOMES: Final = ("SUCCESS", "FAILED", "TIMED_OUT", "STALE", "CANCELLED")
_ID_COLUMNS: Final = frozenset(
    {
        "agent_version_id",
        "validator_hotkey",
        "problem_id",
        "category",
        "difficulty",
        "run_id",
        "suite_id",
        "hotkey",
        "flag",
        "metric",
        "top",
        "runner_up",
        "status",
        "verdict",
        "bucket",
        "last_activity",
    }
)

Frame = pd.DataFrame
FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------------- helpers
def _require(frame: Frame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing} (has {list(frame.columns)})")


def _empty(columns: Sequence[str]) -> Frame:
    return pd.DataFrame({c: pd.Series(dtype=object if c in _ID_COLUMNS else "float64") for c in columns})


def _status(s: pd.Series) -> pd.Series:
    return s.astype(str).str.upper()


def _float(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _ids(s: pd.Series) -> pd.Series:
    # Categorical ids would make every groupby a cartesian product of categories.
    return s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s


def _as_list(by: str | Sequence[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _add_wilson(frame: Frame, k: str, n: str, prefix: str, confidence: float) -> Frame:
    lower, upper = wilson_interval(frame[k].to_numpy(), frame[n].to_numpy(), confidence=confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame[f"{prefix}_rate"] = np.where(frame[n] > 0, frame[k] / frame[n].where(frame[n] > 0), np.nan)
    frame[f"{prefix}_lower"] = lower
    frame[f"{prefix}_upper"] = upper
    return frame


def _finished(frame: Frame) -> Frame:
    """Rows whose status is final (not CLAIMED, RUNNING or PENDING); all rows without a status."""
    if "status" not in frame.columns:
        return frame
    return frame[~_status(frame["status"]).isin(OPEN_STATUSES)]


def _suite_rows(frame: Frame) -> Frame:
    """Leave out race runs (a ``race_id`` column, when there is one): they evaluate a race's drawn
    problems, not the suite, and the server keeps them out of final scores and validator variance."""
    return frame[frame["race_id"].isna()] if "race_id" in frame.columns else frame


def _problem_matrix(results: Frame, missing_as_zero: bool) -> Frame:
    """Versions x problems matrix of mean per-problem scores over finished results of suite runs."""
    df = _finished(_suite_rows(results))
    score = _float(df["score"])
    if missing_as_zero:
        score = score.fillna(0.0)
    tidy = pd.DataFrame(
        {
            "agent_version_id": _ids(df["agent_version_id"]),
            "problem_id": _ids(df["problem_id"]),
            "score": score,
        }
    ).dropna(subset=["score"])
    return tidy.groupby(["agent_version_id", "problem_id"])["score"].mean().unstack("problem_id")


def _colwise_corr(x: FloatArray, y: FloatArray, min_n: int = 3) -> FloatArray:
    """Pearson r of each column of x with the same column of y, on rows where both are present."""
    mask = ~np.isnan(x) & ~np.isnan(y)
    n = mask.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = np.where(mask, x, 0.0).sum(axis=0) / n
        my = np.where(mask, y, 0.0).sum(axis=0) / n
        dx = np.where(mask, x - mx, 0.0)
        dy = np.where(mask, y - my, 0.0)
        sxx, syy = (dx * dx).sum(axis=0), (dy * dy).sum(axis=0)
        r = (dx * dy).sum(axis=0) / np.sqrt(sxx * syy)
    return np.where((n >= min_n) & (sxx > 1e-12) & (syy > 1e-12), r, np.nan)


# --------------------------------------------------------------------------------------------- intervals
def wilson_interval(
    successes: ArrayLike, n: ArrayLike, *, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a binomial proportion k/n.

    Returns ``(lower, upper)`` arrays broadcast from the inputs (0-d for scalars); NaN where n == 0.
    """
    k = np.asarray(successes, dtype=float)
    total = np.asarray(n, dtype=float)
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / total
        denom = 1 + z * z / total
        centre = (p + z * z / (2 * total)) / denom
        half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    ok = total > 0
    lower = np.where(ok, np.clip(centre - half, 0.0, 1.0), np.nan)
    upper = np.where(ok, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lower, upper


# --------------------------------------------------------------------------------------------- scores
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


# --------------------------------------------------------------------------------------------- statuses
def status_mix(
    frame: Frame, *, by: str | Sequence[str] = "validator_hotkey", statuses: Sequence[str] | None = None
) -> Frame:
    """Count and share of each status per group, zeros included.

    Needs columns status and ``by``; works for runs and for results. ``statuses`` defaults to the
    categories of a categorical status column, else the known run/result statuses that occur.
    Output: by..., status (ordered categorical), n, share (n / group total).
    """
    keys = _as_list(by)
    _require(frame, [*keys, "status"], "status_mix")
    columns = [*keys, "status", "n", "share"]
    status = _status(frame["status"])
    if statuses is None:
        if isinstance(frame["status"].dtype, pd.CategoricalDtype):
            statuses = [str(c).upper() for c in frame["status"].cat.categories]
        else:
            known = list(dict.fromkeys(RUN_STATUSES + RESULT_STATUSES))
            seen = set(status)
            statuses = [s for s in known if s in seen] + sorted(seen - set(known))
    if frame.empty:
        return _empty(columns)
    tidy = pd.DataFrame({k: _ids(frame[k]) for k in keys} | {"status": status})
    wide = tidy.groupby([*keys, "status"]).size().unstack("status", fill_value=0)
    wide = wide.reindex(columns=list(statuses), fill_value=0)
    wide.columns.name = None
    long = wide.reset_index().melt(id_vars=keys, var_name="status", value_name="n")
    long["status"] = pd.Categorical(long["status"], categories=list(statuses), ordered=True)
    long["share"] = long["n"] / long.groupby(keys)["n"].transform("sum")
    return long.sort_values([*keys, "status"]).reset_index(drop=True)[columns]


def timeout_loss(
    results: Frame, *, by: str | Sequence[str] = "agent_version_id", confidence: float = 0.95
) -> Frame:
    """Share of finished problem results that TIMED_OUT per group, with a Wilson interval.

    Needs results columns status, score and ``by``. score_lost estimates the run-score points the
    timeouts cost: timeout_rate x mean score of the group's other finished results. Output: by...,
    n_results, n_timed_out, timeout_rate, timeout_lower, timeout_upper, score_lost.
    """
    keys = _as_list(by)
    _require(results, [*keys, "status", "score"], "timeout_loss")
    columns = [
        *keys,
        "n_results",
        "n_timed_out",
        "timeout_rate",
        "timeout_lower",
        "timeout_upper",
        "score_lost",
    ]
    df = _finished(results)
    if df.empty:
        return _empty(columns)
    timed_out = _status(df["status"]).eq("TIMED_OUT")
    tidy = pd.DataFrame(
        {k: _ids(df[k]) for k in keys}
        | {"timed_out": timed_out, "other_score": _float(df["score"]).fillna(0.0).where(~timed_out)}
    )
    out = (
        tidy.groupby(keys)
        .agg(
            n_results=("timed_out", "size"),
            n_timed_out=("timed_out", "sum"),
            other_mean=("other_score", "mean"),
        )
        .reset_index()
    )
    out = _add_wilson(out, "n_timed_out", "n_results", "timeout", confidence)
    out["score_lost"] = out["timeout_rate"] * out["other_mean"].fillna(0.0)
    return out[columns]


def _run_counts(runs: Frame) -> Frame:
    counts = (
        pd.DataFrame({"validator_hotkey": _ids(runs["validator_hotkey"]), "status": _status(runs["status"])})
        .groupby(["validator_hotkey", "status"])
        .size()
        .unstack("status", fill_value=0)
        .reindex(columns=list(RUN_STATUSES), fill_value=0)
    )
    counts.columns.name = None
    return counts


def run_outcomes(runs: Frame, *, confidence: float = 0.95) -> Frame:
    """Run outcome counts and rates per validator, with Wilson intervals.

    Needs runs columns validator_hotkey, status. Rates are over closed runs (every status except
    CLAIMED and RUNNING). Output: validator_hotkey, n_runs, n_open, n_closed, then for each outcome
    o in success, failed, timed_out, stale, cancelled: n_o, o_rate, o_lower, o_upper.
    """
    _require(runs, ["validator_hotkey", "status"], "run_outcomes")
    names = [s.lower() for s in _RUN_OUTCOMES]
    columns = ["validator_hotkey", "n_runs", "n_open", "n_closed"] + [
        c for o in names for c in (f"n_{o}", f"{o}_rate", f"{o}_lower", f"{o}_upper")
    ]
    if runs.empty:
        return _empty(columns)
    counts = _run_counts(runs)
    out = pd.DataFrame({"n_runs": counts.sum(axis=1), "n_open": counts["CLAIMED"] + counts["RUNNING"]})
    out["n_closed"] = out["n_runs"] - out["n_open"]
    for status, name in zip(_RUN_OUTCOMES, names, strict=True):
        out[f"n_{name}"] = counts[status]
        out = _add_wilson(out, f"n_{name}", "n_closed", name, confidence)
    return out.reset_index()[columns]


def lease_health(runs: Frame, *, confidence: float = 0.95) -> Frame:
    """Stale rate and heartbeat coverage per validator.

    Needs runs columns validator_hotkey, status, last_heartbeat_at. stale_rate = STALE runs / closed
    runs (not CLAIMED or RUNNING), with a Wilson interval; heartbeat_coverage = share of all runs
    with a last_heartbeat_at. Output: validator_hotkey, n_runs, n_closed, n_stale, stale_rate,
    stale_lower, stale_upper, n_heartbeat, heartbeat_coverage.
    """
    _require(runs, ["validator_hotkey", "status", "last_heartbeat_at"], "lease_health")
    columns = [
        "validator_hotkey",
        "n_runs",
        "n_closed",
        "n_stale",
        "stale_rate",
        "stale_lower",
        "stale_upper",
        "n_heartbeat",
        "heartbeat_coverage",
    ]
    if runs.empty:
        return _empty(columns)
    status = _status(runs["status"])
    tidy = pd.DataFrame(
        {
            "validator_hotkey": _ids(runs["validator_hotkey"]),
            "closed": ~status.isin(OPEN_STATUSES),
            "stale": status.eq("STALE"),
            "heartbeat": runs["last_heartbeat_at"].notna(),
        }
    )
    out = (
        tidy.groupby("validator_hotkey")
        .agg(
            n_runs=("closed", "size"),
            n_closed=("closed", "sum"),
            n_stale=("stale", "sum"),
            n_heartbeat=("heartbeat", "sum"),
        )
        .reset_index()
    )
    out = _add_wilson(out, "n_stale", "n_closed", "stale", confidence)
    out["heartbeat_coverage"] = out["n_heartbeat"] / out["n_runs"]
    return out[columns]


def duration_stats(runs: Frame) -> Frame:
    """Run duration (completed_at - claimed_at, seconds) of finished runs per validator.

    Needs runs columns validator_hotkey, status, claimed_at, completed_at. Finished means SUCCESS,
    FAILED or TIMED_OUT with both timestamps. Output: validator_hotkey, n_finished, p50, p95, mean.
    """
    _require(runs, ["validator_hotkey", "status", "claimed_at", "completed_at"], "duration_stats")
    columns = ["validator_hotkey", "n_finished", "p50", "p95", "mean"]
    seconds = (
        pd.to_datetime(runs["completed_at"], utc=True) - pd.to_datetime(runs["claimed_at"], utc=True)
    ).dt.total_seconds()
    keep = _status(runs["status"]).isin(FINISHED_RUN_STATUSES) & seconds.notna()
    tidy = pd.DataFrame({"validator_hotkey": _ids(runs["validator_hotkey"]), "seconds": seconds})[keep]
    if tidy.empty:
        return _empty(columns)
    grouped = tidy.groupby("validator_hotkey")["seconds"]
    out = pd.DataFrame(
        {
            "n_finished": grouped.size(),
            "p50": grouped.quantile(0.5),
            "p95": grouped.quantile(0.95),
            "mean": grouped.mean(),
        }
    )
    return out.reset_index()[columns]


def excess_timeouts(frame: Frame, *, unit: str = "agent_version_id") -> Frame:
    """Each validator's timeout rate against its peers' on the same versions.

    Needs columns validator_hotkey, status and ``unit`` (runs or results; open rows are dropped).
    For each version, peer_rate is the TIMED_OUT share of the *other* validators' rows; a
    validator's expected timeouts are sum(n_version x peer_rate_version) over versions that have
    peers. Output: validator_hotkey, n_versions, n, n_timed_out, timeout_rate, peer_rate
    (expected / n), excess (timeout_rate - peer_rate), ratio (timeout_rate / peer_rate).
    """
    _require(frame, ["validator_hotkey", "status", unit], "excess_timeouts")
    columns = [
        "validator_hotkey",
        "n_versions",
        "n",
        "n_timed_out",
        "timeout_rate",
        "peer_rate",
        "excess",
        "ratio",
    ]
    df = _finished(frame)
    if df.empty:
        return _empty(columns)
    tidy = pd.DataFrame(
        {
            "unit": _ids(df[unit]),
            "validator_hotkey": _ids(df["validator_hotkey"]),
            "t": _status(df["status"]).eq("TIMED_OUT"),
        }
    )
    cell = tidy.groupby(["unit", "validator_hotkey"])["t"].agg(n="size", t="sum").reset_index()
    totals = cell.groupby("unit")[["n", "t"]].transform("sum")
    peer_n, peer_t = totals["n"] - cell["n"], totals["t"] - cell["t"]
    cell = cell[peer_n > 0].assign(expected=(cell["n"] * peer_t / peer_n)[peer_n > 0])
    if cell.empty:
        return _empty(columns)
    out = (
        cell.groupby("validator_hotkey")
        .agg(
            n_versions=("unit", "size"),
            n=("n", "sum"),
            n_timed_out=("t", "sum"),
            expected=("expected", "sum"),
        )
        .reset_index()
    )
    out["timeout_rate"] = out["n_timed_out"] / out["n"]
    out["peer_rate"] = out["expected"] / out["n"]
    out["excess"] = out["timeout_rate"] - out["peer_rate"]
    out["ratio"] = out["timeout_rate"] / out["peer_rate"].where(out["peer_rate"] > 0)
    return out[columns]


# ----------------------------------------------------------------------------------- validator variance
def validator_scores(runs: Frame, *, min_validators: int = 2) -> Frame:
    """Each validator's score per version, the input of the ORO validator-variance metrics.

    Needs runs columns agent_version_id, validator_hotkey, status, validator_score, is_included.
    Keeps successful included runs with a score, averages repeated runs of one validator on one
    version, and keeps versions scored by at least ``min_validators`` validators; race runs are left
    out (``_suite_rows``). Output: agent_version_id, validator_hotkey, score, n_runs, n_validators.
    """
    _require(
        runs,
        ["agent_version_id", "validator_hotkey", "status", "validator_score", "is_included"],
        "validator_scores",
    )
    columns = ["agent_version_id", "validator_hotkey", "score", "n_runs", "n_validators"]
    runs = _suite_rows(runs)
    score = _float(runs["validator_score"])
    keep = (
        _status(runs["status"]).eq("SUCCESS") & runs["is_included"].fillna(False).astype(bool) & score.notna()
    )
    tidy = pd.DataFrame(
        {
            "agent_version_id": _ids(runs["agent_version_id"]),
            "validator_hotkey": _ids(runs["validator_hotkey"]),
            "score": score,
        }
    )[keep]
    if tidy.empty:
        return _empty(columns)
    out = (
        tidy.groupby(["agent_version_id", "validator_hotkey"])["score"]
        .agg(score="mean", n_runs="size")
        .reset_index()
    )
    out["n_validators"] = out.groupby("agent_version_id")["validator_hotkey"].transform("size")
    out = out[out["n_validators"] >= min_validators]
    return out.reset_index(drop=True)[columns] if not out.empty else _empty(columns)


def pair_spread(runs: Frame, *, thresholds: Sequence[float] = (0.01, 0.02, 0.05, 0.10)) -> Frame:
    """Spread of validators' scores per version (ORO validator variance).

    Among successful included runs, for versions scored by 2+ validators: spread = max - min of the
    validators' scores (see ``validator_scores``), bucketed at ``thresholds`` (left-closed, e.g.
    "<0.01", "0.01-0.02", ..., ">=0.1"). Output: agent_version_id, n_validators, n_pairs, min_score,
    max_score, spread, bucket (ordered categorical).
    """
    columns = ["agent_version_id", "n_validators", "n_pairs", "min_score", "max_score", "spread", "bucket"]
    scores = validator_scores(runs)
    if scores.empty:
        return _empty(columns)
    out = scores.groupby("agent_version_id")["score"].agg(
        n_validators="size", min_score="min", max_score="max"
    )
    out = out.reset_index()
    out["n_pairs"] = out["n_validators"] * (out["n_validators"] - 1) // 2
    out["spread"] = out["max_score"] - out["min_score"]
    edges = sorted(thresholds)
    labels = (
        [f"<{edges[0]:g}"]
        + [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:], strict=False)]
        + [f">={edges[-1]:g}"]
    )
    # A tiny tolerance so a spread of exactly 0.05 - 0.02 (0.0299999...) lands where a reader expects.
    out["bucket"] = pd.cut(out["spread"] + 1e-12, [-np.inf, *edges, np.inf], labels=labels, right=False)
    return out[columns]


def peer_deltas(runs: Frame) -> Frame:
    """Each validator's score minus the mean of the other validators on the same version.

    Same filtering as ``validator_scores`` (successful included runs, versions with 2+ validators).
    Output: agent_version_id, validator_hotkey, score, peer_mean, delta, n_peers.
    """
    columns = ["agent_version_id", "validator_hotkey", "score", "peer_mean", "delta", "n_peers"]
    scores = validator_scores(runs)
    if scores.empty:
        return _empty(columns)
    total = scores.groupby("agent_version_id")["score"].transform("sum")
    scores["n_peers"] = scores["n_validators"] - 1
    scores["peer_mean"] = (total - scores["score"]) / scores["n_peers"]
    scores["delta"] = scores["score"] - scores["peer_mean"]
    return scores[columns]


def validator_deltas(runs: Frame) -> Frame:
    """Per-validator mean delta vs peers (ORO validator variance), its SD and number of versions.

    See ``peer_deltas`` for the delta. Output: validator_hotkey, n_versions, mean_delta, sd_delta
    (ddof=1), mean_abs_delta.
    """
    columns = ["validator_hotkey", "n_versions", "mean_delta", "sd_delta", "mean_abs_delta"]
    deltas = peer_deltas(runs)
    if deltas.empty:
        return _empty(columns)
    deltas["abs_delta"] = deltas["delta"].abs()
    out = deltas.groupby("validator_hotkey").agg(
        n_versions=("delta", "size"),
        mean_delta=("delta", "mean"),
        sd_delta=("delta", "std"),
        mean_abs_delta=("abs_delta", "mean"),
    )
    return out.reset_index()[columns]


def consensus_trust(runs: Frame) -> Frame:
    """Yuma-style consensus trust: share of a validator's score mass kept after clipping at consensus.

    On versions scored by 2+ validators (``validator_scores``), each score is clipped at the
    version's median of validators' scores (unweighted); trust = sum(clipped) / sum(scores).
    A validator that scores above consensus loses mass. Output: validator_hotkey, n_versions,
    score_mass, clipped_mass, trust.
    """
    columns = ["validator_hotkey", "n_versions", "score_mass", "clipped_mass", "trust"]
    scores = validator_scores(runs)
    if scores.empty:
        return _empty(columns)
    median = scores.groupby("agent_version_id")["score"].transform("median")
    scores["clipped"] = np.minimum(scores["score"], median)
    out = (
        scores.groupby("validator_hotkey")
        .agg(n_versions=("score", "size"), score_mass=("score", "sum"), clipped_mass=("clipped", "sum"))
        .reset_index()
    )
    out["trust"] = out["clipped_mass"] / out["score_mass"].where(out["score_mass"] > 0)
    return out[columns]


def score_matrix(runs: Frame, *, min_validators: int = 2) -> Frame:
    """Versions x validators matrix of validator scores (NaN where a validator did not score).

    Same filtering as ``validator_scores``; index agent_version_id, columns validator_hotkey.
    """
    scores = validator_scores(runs, min_validators=min_validators)
    matrix = scores.pivot(index="agent_version_id", columns="validator_hotkey", values="score")
    return matrix.astype(float)


# --------------------------------------------------------------------------------------------- agreement
def krippendorff_alpha(matrix: Frame | ArrayLike) -> float:
    """Krippendorff's alpha, interval metric, on a units x raters matrix (NaN = missing).

    alpha = 1 - D_o / D_e over pairable units (2+ ratings): D_o = sum_u sum_{i!=j} (v_i - v_j)^2
    / (m_u - 1) / n and D_e = sum over all ordered pairs of pairable values (v_c - v_k)^2 / (n (n-1)),
    with n the number of pairable values. NaN when fewer than 2 pairable units' values or D_e == 0.
    """
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2 or x.size == 0:
        return float("nan")
    seen = ~np.isnan(x)
    m = seen.sum(axis=1)
    pairable = m >= 2
    x, seen, m = x[pairable], seen[pairable], m[pairable]
    n = m.sum()
    if n < 2:
        return float("nan")
    v = np.where(seen, x, 0.0)
    s1, s2 = v.sum(axis=1), (v * v).sum(axis=1)
    within = (2 * m * s2 - 2 * s1 * s1) / (m - 1)  # sum over ordered pairs inside each unit
    d_o = within.sum() / n
    total1, total2 = s1.sum(), s2.sum()
    d_e = (2 * n * total2 - 2 * total1 * total1) / (n * (n - 1))
    return float(1 - d_o / d_e) if d_e > 1e-15 else float("nan")


def leave_one_out_alpha(matrix: Frame) -> Frame:
    """Krippendorff's alpha with each validator (column) left out in turn.

    Output: validator_hotkey, alpha_without, alpha_change (alpha_without - alpha with everyone;
    positive means that validator lowers agreement).
    """
    columns = ["validator_hotkey", "alpha_without", "alpha_change"]
    if matrix.shape[1] == 0:
        return _empty(columns)
    overall = krippendorff_alpha(matrix)
    without = [krippendorff_alpha(matrix.drop(columns=c)) for c in matrix.columns]
    out = pd.DataFrame({"validator_hotkey": matrix.columns.to_numpy(), "alpha_without": without})
    out["alpha_change"] = out["alpha_without"] - overall
    return out[columns]


def validators_needed(icc: float, target: float = 0.9) -> int | None:
    """Spearman-Brown: validators to average so the mean score reaches reliability ``target``.

    m = target (1 - icc) / (icc (1 - target)), rounded up; None when icc <= 0 or undefined.
    """
    if not np.isfinite(icc) or icc <= 0 or not 0 < target < 1:
        return None
    if icc >= 1:
        return 1
    return max(1, math.ceil(target * (1 - icc) / (icc * (1 - target)) - 1e-9))


def icc2_1(matrix: Frame | ArrayLike, *, target: float = 0.9, confidence: float = 0.95) -> Frame:
    """ICC(2,1): two-way random effects, absolute agreement, single rater (Shrout & Fleiss).

    Uses the complete block: rows (versions) with any missing rating are dropped, so pass the
    validators whose shared versions you want. ICC = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE)
    / n), with the McGraw & Wong F-based interval. One-row output: n_targets, k_raters, icc, lower,
    upper, target, validators_needed (Spearman-Brown, see ``validators_needed``); NaN values with
    fewer than 2 complete rows, and an empty frame for an empty matrix.
    """
    columns = ["n_targets", "k_raters", "icc", "lower", "upper", "target", "validators_needed"]
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2 or x.size == 0:
        return _empty(columns)
    x = x[~np.isnan(x).any(axis=1)]
    n, k = x.shape
    row: dict[str, object] = {"n_targets": n, "k_raters": k, "target": target}
    if n < 2 or k < 2:
        return pd.DataFrame(
            [row | {"icc": np.nan, "lower": np.nan, "upper": np.nan, "validators_needed": None}]
        )[columns]
    grand = x.mean()
    ss_r = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_c = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_e = ((x - grand) ** 2).sum() - ss_r - ss_c
    msr, msc, mse = ss_r / (n - 1), ss_c / (k - 1), ss_e / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    icc = float((msr - mse) / denom) if denom > 0 else float("nan")
    lower = upper = float("nan")
    if np.isfinite(icc) and mse > 0:
        fj = msc / mse
        base = n * (1 + (k - 1) * icc) - k * icc
        v = (k - 1) * (n - 1) * (k * icc * fj + base) ** 2 / ((n - 1) * k**2 * icc**2 * fj**2 + base**2)
        tail = (1 - confidence) / 2
        f_u = stats.f.ppf(1 - tail, n - 1, v)
        f_l = stats.f.ppf(1 - tail, v, n - 1)
        lower = float(n * (msr - f_u * mse) / (f_u * (k * msc + (k * n - k - n) * mse) + n * msr))
        upper = float(n * (f_l * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_l * msr))
    row |= {"icc": icc, "lower": lower, "upper": upper, "validators_needed": validators_needed(icc, target)}
    return pd.DataFrame([row])[columns]


def consensus_agreement(matrix: Frame, *, min_versions: int = 3) -> Frame:
    """Spearman correlation of each validator's scores with the consensus (mean of the others).

    ``matrix`` is versions x validators (``score_matrix``). For validator c, consensus on a version
    is the mean of the other validators' scores there; rho uses versions where both exist (NaN
    below ``min_versions``). Output: validator_hotkey, n_versions, spearman.
    """
    columns = ["validator_hotkey", "n_versions", "spearman"]
    if matrix.shape[1] == 0:
        return _empty(columns)
    rows = []
    for hotkey in matrix.columns:  # one pass per validator, not per row
        # A direct mean (not total minus own score) keeps exact ties tied for the ranks.
        pair = pd.DataFrame(
            {"own": matrix[hotkey], "others": matrix.drop(columns=hotkey).mean(axis=1)}
        ).dropna()
        rho = pair["own"].corr(pair["others"], method="spearman") if len(pair) >= min_versions else np.nan
        rows.append((hotkey, len(pair), rho))
    return pd.DataFrame(rows, columns=columns)


def pairwise_agreement(
    matrix: Frame, *, method: Literal["pearson", "spearman", "kendall"] = "spearman", min_versions: int = 3
) -> Frame:
    """Validators x validators correlation of scores on shared versions (NaN below min_versions)."""
    return matrix.corr(method=method, min_periods=min_versions)


# --------------------------------------------------------------------------------------------- activity
def freshness(runs: Frame, *, now: datetime | pd.Timestamp) -> Frame:
    """Time since each validator's last activity, and its share of the work.

    Needs runs columns validator_hotkey, status, claimed_at, completed_at, last_heartbeat_at. Last
    activity is the latest of those timestamps, except a STALE run's completed_at: the server's sweep
    stamps it, the validator did nothing then. ``now`` is given by the caller (naive = UTC), never
    the clock. Output: validator_hotkey, n_runs, n_success, last_activity, hours_since_last,
    work_share (n_runs / all runs), success_share (n_success / all successful runs).
    """
    _require(
        runs, ["validator_hotkey", "status", "claimed_at", "completed_at", "last_heartbeat_at"], "freshness"
    )
    columns = [
        "validator_hotkey",
        "n_runs",
        "n_success",
        "last_activity",
        "hours_since_last",
        "work_share",
        "success_share",
    ]
    if runs.empty:
        return _empty(columns)
    stamp = pd.Timestamp(now)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    times = pd.concat(
        [pd.to_datetime(runs[c], utc=True) for c in ("claimed_at", "completed_at", "last_heartbeat_at")],
        axis=1,
    )
    times.loc[_status(runs["status"]).eq("STALE").to_numpy(), "completed_at"] = pd.NaT
    tidy = pd.DataFrame(
        {
            "validator_hotkey": _ids(runs["validator_hotkey"]),
            "last": times.max(axis=1),
            "success": _status(runs["status"]).eq("SUCCESS"),
        }
    )
    out = (
        tidy.groupby("validator_hotkey")
        .agg(n_runs=("success", "size"), n_success=("success", "sum"), last_activity=("last", "max"))
        .reset_index()
    )
    out["hours_since_last"] = (stamp - out["last_activity"]).dt.total_seconds() / 3600
    out["work_share"] = out["n_runs"] / out["n_runs"].sum()
    total_success = out["n_success"].sum()
    out["success_share"] = out["n_success"] / total_success if total_success else np.nan
    return out[columns]


# --------------------------------------------------------------------------------------------- flags
def validator_flags(
    runs: Frame,
    results: Frame | None = None,
    *,
    bias_threshold: float = 0.03,
    min_versions: int = 10,
    stale_threshold: float = 0.10,
    min_runs: int = 30,
    timeout_margin: float | None = 0.05,
    min_timeout_n: int = 100,
    duration_multiple: float | None = 2.0,
) -> Frame:
    """Rule-based "needs attention" flags per validator.

    Rules (each threshold a keyword, default in brackets):
    - biased: |mean delta vs peers| (``validator_deltas``) > bias_threshold [0.03] on at least
      min_versions [10] versions; metric mean_delta_vs_peers.
    - stale: stale rate (``lease_health``) > stale_threshold [0.10] over at least min_runs [30]
      closed runs; metric stale_rate.
    - slow, on timeouts: a validator's TIMED_OUT share exceeds its peers' on the same versions
      (``excess_timeouts``) by more than timeout_margin [0.05] and the Wilson lower bound of its
      share is above the peers' rate (so a few unlucky runs do not count). Checked on runs (at
      least min_runs runs; metric excess_run_timeout_rate) and, when ``results`` is given, on
      problem results (at least min_timeout_n [100] results; metric excess_problem_timeout_rate).
    - slow, on durations: p95 duration (``duration_stats``, validators with at least min_runs
      finished runs) more than duration_multiple [2.0] x the median validator's p95; metric
      p95_duration_ratio.
    Any rule flags; set timeout_margin or duration_multiple to None to turn that rule off.
    Output: hotkey, flag, metric, value; one row per triggered rule, sorted by flag and hotkey.
    """
    _require(
        runs,
        [
            "agent_version_id",
            "validator_hotkey",
            "status",
            "validator_score",
            "is_included",
            "claimed_at",
            "completed_at",
            "last_heartbeat_at",
        ],
        "validator_flags",
    )
    parts: list[Frame] = []

    def emit(frame: Frame, keep: pd.Series, flag: str, metric: str, value: str) -> None:
        hit = frame[keep.fillna(False).astype(bool)]
        parts.append(
            pd.DataFrame(
                {
                    "hotkey": hit["validator_hotkey"].to_numpy(),
                    "flag": flag,
                    "metric": metric,
                    "value": hit[value].to_numpy(dtype=float),
                }
            )
        )

    deltas = validator_deltas(runs)
    emit(
        deltas,
        (deltas["mean_delta"].abs() > bias_threshold) & (deltas["n_versions"] >= min_versions),
        "biased",
        "mean_delta_vs_peers",
        "mean_delta",
    )
    lease = lease_health(runs)
    emit(
        lease,
        (lease["stale_rate"] > stale_threshold) & (lease["n_closed"] >= min_runs),
        "stale",
        "stale_rate",
        "stale_rate",
    )
    if timeout_margin is not None:
        checks = [(runs, min_runs, "excess_run_timeout_rate")]
        if results is not None:
            checks.append((results, min_timeout_n, "excess_problem_timeout_rate"))
        for frame, min_n, metric in checks:
            excess = excess_timeouts(frame)
            lower, _ = wilson_interval(excess["n_timed_out"].to_numpy(), excess["n"].to_numpy())
            clear = (excess["excess"] > timeout_margin) & (lower > excess["peer_rate"])
            emit(excess, clear & (excess["n"] >= min_n), "slow", metric, "excess")
    if duration_multiple is not None:
        durations = duration_stats(runs)
        durations = durations[durations["n_finished"] >= min_runs]
        durations = durations.assign(ratio=durations["p95"] / durations["p95"].median())
        emit(durations, durations["ratio"] > duration_multiple, "slow", "p95_duration_ratio", "ratio")
    out = (
        pd.concat([p for p in parts if not p.empty], ignore_index=True)
        if any(not p.empty for p in parts)
        else None
    )
    if out is None:
        return _empty(FLAG_COLUMNS)
    return out.sort_values(["flag", "hotkey", "metric"]).reset_index(drop=True)[list(FLAG_COLUMNS)]
