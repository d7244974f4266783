"""Validator activity: how fresh each validator is."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from oro_graph.analytics.metrics.common import Frame, _empty, _ids, _require, _status


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
