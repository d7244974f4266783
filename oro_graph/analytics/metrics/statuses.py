"""Run and problem statuses: mixes, timeouts, lease health and durations."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from oro_graph.analytics.metrics.common import (
    _RUN_OUTCOMES,
    FINISHED_RUN_STATUSES,
    OPEN_STATUSES,
    RESULT_STATUSES,
    RUN_STATUSES,
    Frame,
    _add_wilson,
    _as_list,
    _empty,
    _finished,
    _float,
    _ids,
    _require,
    _status,
)


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
