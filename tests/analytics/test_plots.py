"""plots: check the artists (bars, lines, texts, labels, colours), never pixels."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer

from oro_graph.analytics import metrics, plots
from tests.analytics.conftest import simulate_population

T0 = pd.Timestamp("2025-03-01 10:00", tz="UTC")


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _legend_labels(ax: plt.Axes) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_status_colors_are_fixed_distinct_and_complete() -> None:
    statuses = set(metrics.RUN_STATUSES) | set(metrics.RESULT_STATUSES)
    assert statuses <= set(plots.STATUS_COLORS)
    assert len(set(plots.STATUS_COLORS.values())) == len(plots.STATUS_COLORS)
    assert plots.status_color("timed_out") == plots.STATUS_COLORS["TIMED_OUT"]
    assert plots.status_color("SOMETHING_ELSE") == plots.OTHER_COLOR


def test_forest_plot_rows_intervals_and_reference() -> None:
    # given
    frame = pd.DataFrame(
        {
            "agent_version_id": ["a", "b", "c"],
            "mean": [0.8, 0.6, 0.5],
            "lower": [0.7, 0.5, 0.45],
            "upper": [0.9, 0.65, 0.6],
        }
    )
    _, given_ax = plt.subplots()
    # when
    ax = plots.forest_plot(frame, reference=0.55, ax=given_ax)
    # then
    assert ax is given_ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert list(ax.get_yticks()) == [2, 1, 0]  # first row on top
    container = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = container.lines[2][0].get_segments()
    assert [(s[0][0], s[1][0]) for s in segments] == pytest.approx([(0.7, 0.9), (0.5, 0.65), (0.45, 0.6)])
    assert any(list(line.get_xdata()) == [0.55, 0.55] for line in ax.lines)
    assert ax.get_title() == "Score with 95% interval (n=3)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("score", "agent_version_id")


def test_plot_without_ax_creates_a_figure() -> None:
    frame = pd.DataFrame({"agent_version_id": ["a"], "mean": [0.5], "lower": [0.4], "upper": [0.6]})
    before = len(plt.get_fignums())
    ax = plots.forest_plot(frame)
    assert len(plt.get_fignums()) == before + 1 and ax.figure.number in plt.get_fignums()


def test_status_bars_stack_with_fixed_colours() -> None:
    # given: x has 3 SUCCESS and 1 STALE, y has 1 SUCCESS; every other status is zero
    runs = pd.DataFrame(
        {
            "validator_hotkey": ["x", "x", "x", "x", "y"],
            "status": ["SUCCESS", "SUCCESS", "SUCCESS", "STALE", "SUCCESS"],
        }
    )
    mix = metrics.status_mix(runs, statuses=metrics.RUN_STATUSES)
    # when
    ax = plots.status_bars(mix)
    # then: one bar per (validator, status that occurs), stacked left to right
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == ["SUCCESS", "STALE"]
    assert _legend_labels(ax) == ["SUCCESS", "STALE"]
    assert len(ax.patches) == 4
    for container in bars:
        assert {to_hex(p.get_facecolor()) for p in container} == {
            plots.STATUS_COLORS[container.get_label()].lower()
        }
    stale_x = bars[1].patches[0]
    assert (stale_x.get_x(), stale_x.get_width()) == pytest.approx((0.75, 0.25))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
    assert ax.get_title() == "Status mix (n=5)" and ax.get_xlabel() == "share"


def test_ecdf_one_step_line_per_group() -> None:
    frame = pd.DataFrame(
        {"seconds": [3.0, 1.0, 2.0, 10.0, np.nan], "validator_hotkey": ["a", "a", "a", "b", "b"]}
    )
    ax = plots.ecdf(frame, "seconds", by="validator_hotkey", xlabel="duration (s)")
    assert len(ax.lines) == 2
    a_line = ax.lines[0]
    assert list(a_line.get_xdata()) == [1.0, 2.0, 3.0]
    assert list(a_line.get_ydata()) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert _legend_labels(ax) == ["a (n=3)", "b (n=1)"]
    assert ax.get_title() == "ECDF of seconds (n=4)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("duration (s)", "cumulative share")


def test_bland_altman_points_bias_and_limits() -> None:
    measured = np.array([0.55, 0.62, 0.41, 0.80, np.nan])
    reference = np.array([0.50, 0.60, 0.40, 0.70, 0.30])
    ax = plots.bland_altman(measured, reference)
    diff = measured[:4] - reference[:4]
    bias, sd = diff.mean(), diff.std(ddof=1)
    assert len(ax.collections[0].get_offsets()) == 4
    levels = sorted(line.get_ydata()[0] for line in ax.lines)
    assert levels == pytest.approx([bias - 1.96 * sd, bias, bias + 1.96 * sd])
    assert ax.get_title() == "Bland-Altman (n=4)"
    assert _legend_labels(ax)[1] == f"bias {bias:+.3f}"


def test_heatmap_annotates_filled_cells() -> None:
    matrix = pd.DataFrame(
        [[0.5, 0.25, np.nan], [1.0, 0.0, 0.75]],
        index=pd.Index(["Product", "Shop"], name="category"),
        columns=pd.Index(["easy", "medium", "hard"], name="difficulty"),
    )
    ax = plots.heatmap(matrix, title="Mean score", n=120)
    assert sorted(t.get_text() for t in ax.texts) == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["easy", "medium", "hard"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Product", "Shop"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "difficulty",
        "category",
        "Mean score (n=120)",
    )
    assert len(ax.figure.axes) == 2  # the colour bar
    text_colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert (
        text_colours["0.00"] == "white" and text_colours["1.00"] == "black"
    )  # viridis: dark low, light high


def test_swimlane_one_bar_per_run_coloured_by_status() -> None:
    # given
    runs = pd.DataFrame(
        {
            "validator_hotkey": ["b", "a", "a", "c", "b"],
            "status": ["SUCCESS", "STALE", "SUCCESS", "TIMED_OUT", "RUNNING"],
            "claimed_at": [T0, T0, T0 + pd.Timedelta(hours=1), T0, T0 + pd.Timedelta(hours=2)],
            "completed_at": [
                T0 + pd.Timedelta(minutes=30),
                pd.NaT,
                T0 + pd.Timedelta(hours=2),
                T0 + pd.Timedelta(hours=3),
                pd.NaT,
            ],
            "last_heartbeat_at": [pd.NaT, T0 + pd.Timedelta(minutes=12), pd.NaT, pd.NaT, pd.NaT],
            "lease_expires_at": [pd.NaT, T0 + pd.Timedelta(minutes=22), pd.NaT, pd.NaT, pd.NaT],
        }
    )
    # when
    ax = plots.swimlane(runs, now=pd.Timestamp("2025-03-01 13:00"))
    # then
    assert len(ax.patches) == 5
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    assert list(bars) == ["SUCCESS", "TIMED_OUT", "STALE", "RUNNING"]  # STATUS_COLORS order
    for status, container in bars.items():
        assert {to_hex(p.get_facecolor()) for p in container} == {plots.STATUS_COLORS[status].lower()}
    stale = bars["STALE"].patches[0]
    assert stale.get_width() * 24 * 60 == pytest.approx(12)  # ends at its last heartbeat
    assert stale.get_y() + stale.get_height() / 2 == pytest.approx(0)  # lane "a"
    running = bars["RUNNING"].patches[0]
    assert running.get_width() * 24 == pytest.approx(1)  # open run ends at the given now
    assert ax.get_title() == "Runs per validator (n=5)" and ax.get_xlabel() == "time (UTC)"
    assert _legend_labels(ax) == ["SUCCESS", "TIMED_OUT", "STALE", "RUNNING"]


def test_plots_accept_empty_inputs() -> None:
    world = simulate_population(0, n_versions=20)
    assert plots.forest_plot(metrics.bootstrap_scores(world.results.head(0))).get_title().endswith("(n=0)")
    assert plots.status_bars(metrics.status_mix(world.runs.head(0))).get_title().endswith("(n=0)")
    assert plots.swimlane(world.runs.head(0)).get_title().endswith("(n=0)")
    assert plots.ecdf(world.runs.head(0).assign(x=[]), "x").get_title().endswith("(n=0)")
    assert plots.bland_altman([], []).get_title().endswith("(n=0)")


def test_plots_on_a_simulated_population() -> None:
    world = simulate_population(1, n_versions=60)
    deltas = metrics.peer_deltas(world.runs)
    one = deltas[deltas["validator_hotkey"] == deltas["validator_hotkey"].iloc[0]]
    fig, axes = plt.subplots(2, 3)
    plots.forest_plot(metrics.bootstrap_scores(world.results, n_boot=100).head(10), ax=axes[0, 0])
    plots.status_bars(metrics.status_mix(world.results), ax=axes[0, 1])
    plots.ecdf(
        world.runs.assign(
            minutes=(world.runs["completed_at"] - world.runs["claimed_at"]).dt.total_seconds() / 60
        ),
        "minutes",
        by="validator_hotkey",
        ax=axes[0, 2],
    )
    plots.bland_altman(one["score"], one["peer_mean"], ax=axes[1, 0])
    profile = metrics.category_profile(world.results)
    plots.heatmap(
        profile.pivot(index="category", columns="difficulty", values="mean_score"),
        n=int(profile["n"].sum()),
        ax=axes[1, 1],
    )
    plots.swimlane(world.runs, ax=axes[1, 2])
    assert len(axes[1, 2].patches) == len(world.runs)
    assert len(axes[0, 2].lines) == world.runs["validator_hotkey"].nunique()


def test_large_heatmaps_are_not_annotated_and_clusters_sit_together() -> None:
    rng = np.random.default_rng(1)
    names = [f"v{i:02d}" for i in range(20)]
    group = np.array([i % 2 for i in range(20)])  # two interleaved groups that agree within themselves
    corr = np.where(group[:, None] == group[None, :], 0.9, -0.2) + rng.normal(0, 0.01, (20, 20))
    corr = (corr + corr.T) / 2
    np.fill_diagonal(corr, 1.0)
    matrix = pd.DataFrame(corr, index=names, columns=names)
    ax = plots.heatmap(matrix, vmin=-1, vmax=1, cluster=True)
    assert len(ax.texts) == 0  # 400 numbers would overlap; the colour bar carries them
    order = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(order) == names and [t.get_text() for t in ax.get_xticklabels()] == order
    groups = [int(name[1:]) % 2 for name in order]
    assert groups == sorted(groups) or groups == sorted(groups, reverse=True)  # one block per group
    small = plots.heatmap(matrix.iloc[:3, :3])
    assert len(small.texts) == 9
    assert len(plots.heatmap(matrix, annotate=True).texts) == 400


def test_ecdf_with_many_groups_names_only_the_slowest_in_distinct_colours() -> None:
    frame = pd.DataFrame(
        {
            "minutes": np.concatenate([np.arange(1, 11) * (1 + g / 4) for g in range(12)]),
            "validator": np.repeat([f"val{g:02d}" for g in range(12)], 10),
        }
    )
    ax = plots.ecdf(frame, "minutes", by="validator")
    labels = _legend_labels(ax)
    assert len(labels) == plots.MAX_LEGEND
    slowest = [f"val{g:02d} (n=10)" for g in range(11, 11 - (plots.MAX_LEGEND - 1), -1)]
    assert sorted(labels[:-1]) == sorted(slowest) and labels[-1] == f"{12 - len(slowest)} others"
    coloured = [line.get_color() for line in ax.lines if line.get_color() != plots.OTHER_COLOR]
    assert len(coloured) == len(set(coloured)) == plots.MAX_LEGEND - 1
    chosen = plots.ecdf(frame, "minutes", by="validator", highlight=["val00"])
    assert _legend_labels(chosen) == ["val00 (n=10)", "11 others"]
