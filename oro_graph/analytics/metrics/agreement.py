"""Agreement between validators: Krippendorff alpha, ICC(2,1) and consensus agreement."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from oro_graph.analytics.metrics.common import Frame, _empty


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
