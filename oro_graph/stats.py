"""The paired problem bootstrap, with numpy only: the server's ``scoreInterval`` and the analysis kit's
``metrics.bootstrap_scores`` both draw through :func:`paired_bootstrap`, so their numbers are the same.

The server computes what it serves with SQL and numpy; pandas, scipy and matplotlib belong to the
``analysis`` extra (``oro_graph.analytics``) and are never imported from here.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
OPEN_STATUSES = frozenset({"CLAIMED", "RUNNING", "PENDING"})


@dataclass(frozen=True)
class Bootstrap:
    """Per version (row of the matrix): the mean over problems, the percentile interval, and the draws."""

    mean: FloatArray
    lower: FloatArray
    upper: FloatArray
    draws: FloatArray  # n_boot x versions; NaN where a replicate drew none of a version's problems
    seen: NDArray[np.bool_]  # versions x problems: which cells hold a score


def paired_bootstrap(x: FloatArray, *, n_boot: int, confidence: float, seed: int) -> Bootstrap:
    """Resample the problems (columns of ``x``, versions x problems, NaN = not scored) with replacement,
    the same draw for every version; a version's replicate is the mean of its drawn, scored problems."""
    seen = ~np.isnan(x)
    n_problems = x.shape[1]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_problems, size=(n_boot, n_problems))
    flat = (draws + n_problems * np.arange(n_boot)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_problems).reshape(n_boot, n_problems).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = (counts @ np.where(seen, x, 0.0).T) / (counts @ seen.T.astype(float))
    tail = (1 - confidence) / 2
    return Bootstrap(
        mean=np.nanmean(x, axis=1),
        lower=np.nanquantile(boot, tail, axis=0),
        upper=np.nanquantile(boot, 1 - tail, axis=0),
        draws=boot,
        seen=seen,
    )


def problem_means(
    rows: Iterable[tuple[Hashable, str | None, float | None]], *, missing_as_zero: bool = True
) -> FloatArray:
    """One version's (problem, status, score) results as a 1 x problems row of mean scores.

    Open results (CLAIMED, RUNNING, PENDING) are left out; a missing score counts as 0 unless
    ``missing_as_zero=False``, when it is left out. Problems are in sorted order, as the analysis kit's
    problem matrix has them.
    """
    scores: dict[Hashable, list[float]] = {}
    for problem, status, score in rows:
        if status is not None and str(status).upper() in OPEN_STATUSES:
            continue
        value = _number(score)
        if value is None:
            if not missing_as_zero:
                continue
            value = 0.0
        scores.setdefault(problem, []).append(value)
    # fsum: the correctly rounded sum, which pandas' compensated group mean also reaches on a few values.
    means = [math.fsum(scores[p]) / len(scores[p]) for p in sorted(scores)]  # type: ignore[type-var]
    return np.asarray([means], dtype=float).reshape(1, len(means))


def _number(value: object) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
