"""Shared by the metrics: the status vocabularies, column checks, problem matrices and Wilson intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

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
