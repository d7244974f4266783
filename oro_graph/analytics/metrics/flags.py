"""Validator flags: the rules that mark a validator for a closer look."""

from __future__ import annotations

import pandas as pd

from oro_graph.analytics.metrics.common import FLAG_COLUMNS, Frame, _empty, _require, wilson_interval
from oro_graph.analytics.metrics.statuses import duration_stats, excess_timeouts, lease_health
from oro_graph.analytics.metrics.variance import validator_deltas


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
