"""Figures for the ORO notebooks, drawn on matplotlib axes.

Every function takes ``ax=None`` (a new figure is made when None) and returns the axes, with a
title, labelled axes and n in the title or legend. Statuses always get the same colour-blind-safe
colours (Okabe-Ito palette), so a status reads the same in every figure. pyplot is imported only
when a function has to create a figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes

STATUS_COLORS: Final[dict[str, str]] = {
    "SUCCESS": "#009E73",  # bluish green
    "FAILED": "#D55E00",  # vermillion
    "TIMED_OUT": "#E69F00",  # orange
    "STALE": "#CC79A7",  # reddish purple
    "CANCELLED": "#000000",  # black
    "CLAIMED": "#0072B2",  # blue
    "RUNNING": "#56B4E9",  # sky blue
    "PENDING": "#F0E442",  # yellow
    "SKIPPED": "#999999",  # grey
}
OTHER_COLOR: Final = "#BBBBBB"
POINT_COLOR: Final = "#0072B2"
LINE_COLOR: Final = "#D55E00"


def status_color(status: object) -> str:
    """The fixed colour of a run or result status (grey for an unknown one)."""
    return STATUS_COLORS.get(str(status).upper(), OTHER_COLOR)


def _axes(ax: Axes | None, figsize: tuple[float, float] = (8.0, 5.0)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=figsize)
    return new


def _titled(text: str, n: int) -> str:
    return f"{text} (n={n:,})"


def _utc_naive(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.tz_convert("UTC").dt.tz_localize(None)


def forest_plot(
    frame: pd.DataFrame,
    *,
    label: str = "agent_version_id",
    estimate: str = "mean",
    lower: str = "lower",
    upper: str = "upper",
    reference: float | None = None,
    title: str = "Score with 95% interval",
    xlabel: str = "score",
    ax: Axes | None = None,
) -> Axes:
    """Point estimates with horizontal interval bars, first row at the top.

    ``frame`` has one row per item with columns ``label``, ``estimate``, ``lower`` and ``upper``
    (e.g. ``metrics.bootstrap_scores``). ``reference`` draws a dashed vertical line (a threshold).
    """
    ax = _axes(ax, (8.0, max(2.5, 0.3 * len(frame) + 1.5)))
    y = np.arange(len(frame))[::-1]
    x = frame[estimate].to_numpy(dtype=float)
    err = np.vstack([x - frame[lower].to_numpy(dtype=float), frame[upper].to_numpy(dtype=float) - x])
    ax.errorbar(
        x,
        y,
        xerr=err,
        fmt="o",
        color=POINT_COLOR,
        ecolor=POINT_COLOR,
        capsize=3,
        label=f"{estimate} and interval",
    )
    if reference is not None:
        ax.axvline(reference, color=LINE_COLOR, linestyle="--", label=f"reference {reference:g}")
    ax.set_yticks(y, [str(v) for v in frame[label]])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(label)
    ax.set_title(_titled(title, len(frame)))
    # Beside the axes, never on the intervals (the leaders sit at the top, where "best" often put it).
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return ax


def status_bars(
    mix: pd.DataFrame,
    *,
    by: str = "validator_hotkey",
    value: str = "share",
    title: str = "Status mix",
    ax: Axes | None = None,
) -> Axes:
    """Stacked horizontal bars of statuses per group, one colour per status (``STATUS_COLORS``).

    ``mix`` is ``metrics.status_mix`` output (by, status, n, share); ``value`` is "share" or "n".
    Statuses that never occur are left out of the bars and the legend; n in the title is the
    number of rows counted.
    """
    ax = _axes(ax)
    wide = mix.pivot_table(
        index=by, columns="status", values=value, aggfunc="sum", fill_value=0, observed=True
    )
    counts = mix.groupby("status", observed=True)["n"].sum()
    statuses = [s for s in wide.columns if counts.get(s, 0) > 0]
    labels = [str(v) for v in wide.index]
    left = np.zeros(len(wide))
    for status in statuses:
        widths = wide[status].to_numpy(dtype=float)
        ax.barh(
            labels,
            widths,
            left=left,
            color=status_color(status),
            label=str(status),
            edgecolor="white",
            linewidth=0.5,
        )
        left += widths
    ax.invert_yaxis()
    ax.set_xlabel("share" if value == "share" else "count")
    ax.set_ylabel(by)
    ax.set_title(_titled(title, int(mix["n"].sum())))
    if statuses:
        ax.legend(title="status", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return ax


HIGHLIGHT_COLORS: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MAX_LEGEND: Final = len(HIGHLIGHT_COLORS)


def ecdf(
    frame: pd.DataFrame,
    column: str,
    *,
    by: str | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    highlight: Sequence[object] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Empirical CDF of ``column``, one step line per ``by`` group (label carries its n).

    Missing values are dropped; each line rises by 1/n at every observed value. With at most
    ``MAX_LEGEND`` groups every line gets its own colour and legend entry. With more, only the groups in
    ``highlight`` (default: the ``MAX_LEGEND - 1`` with the slowest 95th percentile) are coloured and
    named; the others are drawn thin and grey under one "others" entry, so no colour repeats and the
    legend, beside the axes, stays short.
    """
    ax = _axes(ax)
    data = frame[[column] + ([by] if by else [])].dropna(subset=[column])
    groups = list(data.groupby(by, observed=True)[column]) if by else [(column, data[column])]
    named = [name for name, _ in groups]
    if len(groups) > MAX_LEGEND:
        if highlight is None:
            tails = {name: float(np.quantile(values.to_numpy(dtype=float), 0.95)) for name, values in groups}
            highlight = sorted(tails, key=lambda name: -tails[name])[: MAX_LEGEND - 1]
        named = [name for name in named if name in set(highlight)][:MAX_LEGEND]
    colors = dict(zip(named, HIGHLIGHT_COLORS, strict=False))
    rest = [(name, values) for name, values in groups if name not in colors]
    for name, values in [*rest, *((n, v) for n, v in groups if n in colors)]:  # grey first, underneath
        x = np.sort(values.to_numpy(dtype=float))
        y = np.arange(1, x.size + 1) / x.size
        if name in colors:
            ax.step(x, y, where="post", color=colors[name], linewidth=1.8, label=f"{name} (n={x.size:,})")
        else:
            ax.step(x, y, where="post", color=OTHER_COLOR, linewidth=0.8, label="_others")
    handles, labels = ax.get_legend_handles_labels()
    if rest:  # one entry for every grey line, last
        grey = next(line for line in ax.lines if line.get_label() == "_others")
        handles, labels = [*handles, grey], [*labels, f"{len(rest)} others"]
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel or column)
    ax.set_ylabel("cumulative share")
    ax.set_title(_titled(title or f"ECDF of {column}", len(data)))
    if len(data):
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return ax


def bland_altman(
    measured: ArrayLike,
    reference: ArrayLike,
    *,
    title: str = "Bland-Altman",
    xlabel: str = "mean of the two scores",
    ylabel: str = "difference (measured - reference)",
    ax: Axes | None = None,
) -> Axes:
    """Difference against mean of paired scores, with the mean bias and 95% limits of agreement.

    Typical use: a validator's scores vs its peers' mean (``metrics.peer_deltas``: score and
    peer_mean). Lines: bias = mean difference (solid) and bias +/- 1.96 SD (dashed). Pairs with a
    missing value are dropped.
    """
    ax = _axes(ax)
    a, b = np.asarray(measured, dtype=float), np.asarray(reference, dtype=float)
    keep = ~np.isnan(a) & ~np.isnan(b)
    a, b = a[keep], b[keep]
    mean, diff = (a + b) / 2, a - b
    ax.scatter(mean, diff, s=12, color=POINT_COLOR, alpha=0.7, label="pair")
    if diff.size:
        bias = float(diff.mean())
        sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
        ax.axhline(bias, color=LINE_COLOR, linestyle="-", label=f"bias {bias:+.3f}")
        ax.axhline(
            bias + 1.96 * sd, color=LINE_COLOR, linestyle="--", label=f"+1.96 SD {bias + 1.96 * sd:+.3f}"
        )
        ax.axhline(
            bias - 1.96 * sd, color=LINE_COLOR, linestyle="--", label=f"-1.96 SD {bias - 1.96 * sd:+.3f}"
        )
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(_titled(title, int(diff.size)))
    return ax


def heatmap(
    matrix: pd.DataFrame,
    *,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str = "Heatmap",
    xlabel: str | None = None,
    ylabel: str | None = None,
    n: int | None = None,
    colorbar: bool = True,
    annotate: bool | None = None,
    cluster: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """Heatmap of a matrix (rows = index, columns = columns); NaN cells stay blank.

    Each non-missing cell gets its value as text (``fmt``), dark text on light cells and light on
    dark, when the numbers are readable: ``annotate=None`` annotates at most ``MAX_ANNOTATED`` rows and
    columns (the colour bar carries larger matrices). ``cluster=True`` reorders a square, symmetric
    matrix of similarities in [-1, 1] (correlations) so that similar rows sit together (average linkage
    on 1 - value; a missing value counts as 0). ``n`` goes in the title; it defaults to the number of
    non-missing cells.
    """
    if cluster and matrix.shape[0] == matrix.shape[1] and matrix.shape[0] > 2:
        order = cluster_order(matrix)
        matrix = matrix.iloc[order, order]
    ax = _axes(ax)
    values = matrix.to_numpy(dtype=float)
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    if annotate is None:
        annotate = max(values.shape, default=0) <= MAX_ANNOTATED
    filled = np.nonzero(~np.isnan(values)) if annotate else (np.array([], dtype=int),) * 2
    for i, j in zip(*filled, strict=True):  # one text per filled cell
        r, g, b, _ = image.cmap(image.norm(values[i, j]))
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(
            j,
            i,
            fmt.format(values[i, j]),
            ha="center",
            va="center",
            fontsize="small",
            color="white" if dark else "black",
        )
    ax.set_xticks(np.arange(values.shape[1]), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(np.arange(values.shape[0]), [str(r) for r in matrix.index])
    ax.set_xlabel(xlabel if xlabel is not None else str(matrix.columns.name or ""))
    ax.set_ylabel(ylabel if ylabel is not None else str(matrix.index.name or ""))
    ax.set_title(_titled(title, int(np.count_nonzero(~np.isnan(values))) if n is None else n))
    if colorbar and values.size:
        ax.figure.colorbar(image, ax=ax)
    return ax


MAX_ANNOTATED: Final = 10


def cluster_order(matrix: pd.DataFrame) -> list[int]:
    """Positions of a square similarity matrix's rows in average-linkage leaf order (1 - value as the
    distance, missing values as no similarity)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    similarity = np.nan_to_num(matrix.to_numpy(dtype=float), nan=0.0)
    distance = np.clip(1.0 - (similarity + similarity.T) / 2, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    return [int(i) for i in leaves_list(linkage(squareform(distance, checks=False), method="average"))]


def swimlane(
    runs: pd.DataFrame,
    *,
    now: datetime | pd.Timestamp | None = None,
    title: str = "Runs per validator",
    order: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Run timeline: one lane per validator, one bar per run from claimed_at to its end, coloured by status.

    Needs runs columns validator_hotkey, status, claimed_at, completed_at, last_heartbeat_at,
    lease_expires_at. A run ends at completed_at, else its last heartbeat, else its lease expiry,
    else ``now`` (when given), else it is drawn as a sliver at claimed_at. Lanes are sorted by
    hotkey unless ``order`` is given.
    """
    ax = _axes(ax, (10.0, max(3.0, 0.3 * runs["validator_hotkey"].nunique() + 1.5)))
    start = _utc_naive(runs["claimed_at"])
    end = _utc_naive(runs["completed_at"])
    for fallback in ("last_heartbeat_at", "lease_expires_at"):
        end = end.fillna(_utc_naive(runs[fallback]))
    if now is not None:
        stamp = pd.Timestamp(now)
        stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
        end = end.fillna(stamp)
    end = end.fillna(start)
    from matplotlib import dates

    start_days = pd.Series(dates.date2num(start.to_numpy()), index=runs.index)
    width = ((end - start).dt.total_seconds() / 86400).clip(lower=0)
    span = float(width.max()) if len(width) else 0.0
    width = width.clip(lower=span * 0.002)
    lanes = list(order) if order is not None else sorted(runs["validator_hotkey"].astype(str).unique())
    lane = runs["validator_hotkey"].astype(str).map({h: i for i, h in enumerate(lanes)})
    status = runs["status"].astype(str).str.upper()
    for name in [s for s in STATUS_COLORS if (status == s).any()] + sorted(set(status) - set(STATUS_COLORS)):
        sel = status == name
        ax.barh(
            lane[sel],
            width[sel],
            left=start_days[sel],
            height=0.7,
            color=status_color(name),
            label=name,
            alpha=0.85,
        )
    ax.set_yticks(np.arange(len(lanes)), lanes)
    if lanes:
        ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.xaxis_date()
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("validator_hotkey")
    ax.set_title(_titled(title, len(runs)))
    if len(runs):
        ax.legend(title="status", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return ax
