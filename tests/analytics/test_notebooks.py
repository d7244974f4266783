"""The notebooks, executed with papermill against a real server process on a seeded demo world.

The server is ``python -m oro_graph serve`` over a SQLite file filled by ``demo-data --seed 7``; the
notebooks get only GRAPHQL_URL and OUTPUT_DIR. The validator-flags CSV is compared with the demo's
manifest here, outside the notebook (nothing in the notebooks or the analytics package reads it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nbformat
import pandas as pd
import pytest

from tests.support.ports import start_serve

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# Small enough for each notebook to run in a few seconds, large enough for the flags to separate the faults.
WORLD = ["--seed", "7", "--miners", "40", "--validators", "8", "--runs", "1200"]


@dataclass(frozen=True)
class DemoServer:
    url: str
    manifest: dict
    env: dict[str, str]


def _graphql(url: str, document: str) -> dict:
    response = httpx.post(url, json={"query": document}, timeout=60)
    response.raise_for_status()
    return response.json()["data"]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    root = tmp_path_factory.mktemp("notebooks")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORO_")}
    env |= {
        "ORO_DATABASE_URL": f"sqlite:///{root / 'demo.db'}",
        "ORO_DATA_DIR": str(root / "state"),
        "ORO_RATE_LIMIT_PER_MINUTE": "100000",
        "ORO_LEASE_SWEEP_SECONDS": "0.5",  # settle the world's in-flight leases before the notebooks read
        "ORO_RACE_SCHEDULER": "false",  # the world stays as generated, as under `serve --demo`
        "ORO_GRAPHQL_TIME_BUDGET_SECONDS": "300",  # a loaded machine must not refuse the notebooks' reads
        "MPLBACKEND": "Agg",
    }
    manifest = root / "manifest.json"
    subprocess.run(
        [sys.executable, "-m", "oro_graph", "demo-data", *WORLD, "--manifest", str(manifest)],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,  # a few seconds on an idle machine
    )
    log = (root / "serve.log").open("w")
    server, port = start_serve(env, stdout=log)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 180  # a loaded machine: settling is slow, never wrong
        while True:
            try:
                # The world ended in the past: the lease sweep turns its in-flight runs STALE, then the data
                # holds still while the notebooks read it twice (runs, then the graph's own figures).
                if (
                    _graphql(url, "{ runningEvaluations { totalCount } }")["runningEvaluations"]["totalCount"]
                    == 0
                ):
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not settle: {(root / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield DemoServer(url=url, manifest=json.loads(manifest.read_text()), env=env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _execute(name: str, server: DemoServer, out: Path) -> float:
    """Run notebooks/<name> with papermill (its time is a benchmark matter, not asserted here)."""
    import papermill

    started = time.monotonic()
    saved = {k: os.environ.get(k) for k in ("MPLBACKEND",)}
    os.environ["MPLBACKEND"] = "Agg"  # the kernel inherits this process's environment
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / name),
            str(out / name),
            parameters={"GRAPHQL_URL": server.url, "OUTPUT_DIR": str(out / "csv")},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(out),
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return time.monotonic() - started


def test_validator_reliability_flags_exactly_the_planted_faults(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # when
    _execute("validator_reliability.ipynb", demo_server, tmp_path)

    # then: one flag per planted fault, nothing on the healthy validators
    flags = pd.read_csv(tmp_path / "csv" / "validator_flags.csv")
    assert list(flags.columns) == ["hotkey", "flag", "metric", "value"]
    planted = {(v["hotkey"], v["fault"]) for v in demo_server.manifest["validators"]}
    assert set(zip(flags["hotkey"], flags["flag"], strict=True)) == planted, flags
    assert len(planted) == 3
    by_flag = flags.set_index("flag")
    assert by_flag.loc["biased", "value"] > 0.03 and by_flag.loc["stale", "value"] > 0.10
    # the other exports
    scorecard = pd.read_csv(tmp_path / "csv" / "scorecard.csv")
    assert len(scorecard) == demo_server.manifest["counts"]["validators"]
    assert scorecard["n_runs"].sum() == demo_server.manifest["counts"]["runs"]
    for name in ("lease_health", "excess_timeouts", "spread_buckets", "validator_deltas", "agreement"):
        assert not pd.read_csv(tmp_path / "csv" / f"{name}.csv").empty, name
    # the closing summary names each flagged validator, in words
    summary = (tmp_path / "csv" / "validator_reliability_summary.md").read_text()
    assert summary.count("Needs attention") == 3
    for fault in demo_server.manifest["validators"]:
        assert f"({fault['hotkey'][:6]})" in summary and fault["fault"] in summary
    assert f"{demo_server.manifest['counts']['runs']:,} runs" in summary


def test_scores_notebook_reconciles_with_the_server(demo_server: DemoServer, tmp_path: Path) -> None:
    # when
    _execute("scores.ipynb", demo_server, tmp_path)

    # then
    csv = tmp_path / "csv"
    intervals = pd.read_csv(csv / "leaderboard_intervals.csv")
    assert len(intervals) == 15 and intervals["rank"].iloc[0] == 1
    assert ((intervals["lower"] <= intervals["mean"]) & (intervals["mean"] <= intervals["upper"])).all()
    assert intervals["p_top"].sum() == pytest.approx(1.0)
    reconciliation = pd.read_csv(csv / "reconciliation.csv")
    assert reconciliation["final_score_diff"].max() < 1e-9
    assert reconciliation[["lower_diff", "upper_diff"]].max().max() < 1e-9  # the server's scoreInterval
    profile = pd.read_csv(csv / "category_profile.csv")
    assert set(profile["category"]) == {"Product", "Shop", "Voucher"} and set(profile["difficulty"]) == {
        "easy",
        "medium",
    }
    items = pd.read_csv(csv / "item_analysis.csv")
    assert len(items) == demo_server.manifest["counts"]["problems"]
    assert items["near_dead"].sum() >= 2  # the demo suite has two problems nobody solves and one giveaway
    # corrected_r is the server's Problem.stats discrimination, equal to the notebook's own item analysis
    both = items["local_corrected_r"].notna()
    assert both.sum() > 0 and items.loc[~both, "corrected_r"].isna().all()
    assert (items.loc[both, "corrected_r"] - items.loc[both, "local_corrected_r"]).abs().max() < 1e-9
    margin = pd.read_csv(csv / "top_margin.csv").iloc[0]
    assert margin["verdict"] in {"above", "below", "uncertain"}
    # the closing summary is written from the same tables
    summary = (csv / "scores_summary.md").read_text()
    leader = intervals.iloc[0]
    assert f"The leader is {leader['version']} with {leader['mean']:.3f}" in summary
    assert f"{int(items['near_dead'].sum())} of {len(items)} problems are (nearly) dead" in summary
    assert "uncertain the threshold" not in summary and "challenge threshold" in summary


def test_races_notebook_reconciles_with_the_graph(demo_server: DemoServer, tmp_path: Path) -> None:
    # when (the notebook's own checks compare weights, ranks, race scores and draws with the graph)
    _execute("races.ipynb", demo_server, tmp_path)

    # then
    csv = tmp_path / "csv"
    counts = demo_server.manifest["counts"]
    race_table = pd.read_csv(csv / "races.csv")
    assert len(race_table) == counts["races"]
    assert race_table["entries"].sum() == counts["race_qualifiers"]
    completed = race_table[race_table["status"] == "RACE_COMPLETE"]
    weights = pd.read_csv(csv / "weights.csv")
    assert set(weights["race_number"]) == set(completed["race_number"])
    assert weights.groupby("race_number")["share"].sum().sub(1).abs().max() < 1e-9
    margins = pd.read_csv(csv / "winner_margins.csv")
    assert set(margins["race_number"]) <= set(completed["race_number"]) and len(margins) > 0
    assert ((margins["lower"] <= margins["lead"]) & (margins["lead"] <= margins["upper"])).all()
    stability = pd.read_csv(csv / "rank_stability.csv")
    assert len(stability) == len(completed) - 1
    assert not pd.read_csv(csv / "validator_variance.csv").empty
    # the planted biased validator scores race runs above its peers too (few pairs: noisy, but above)
    bias = pd.read_csv(csv / "validator_bias.csv").set_index("validator_hotkey")
    biased = next(v["hotkey"] for v in demo_server.manifest["validators"] if v["fault"] == "biased")
    assert (
        bias.loc[biased, "mean_delta_vs_peers"] > 0
        and len(bias) == demo_server.manifest["counts"]["validators"]
    )
    # the closing summary is written from the same tables
    summary = (csv / "races_summary.md").read_text()
    assert f"{counts['races']} races, {len(completed)} completed" in summary
    assert f"beyond noise in {int(margins['beyond_noise'].sum())} of {len(margins)} races" in summary


@pytest.mark.parametrize("name", ["scores.ipynb", "validator_reliability.ipynb", "races.ipynb"])
def test_committed_notebooks_have_no_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "strip outputs before committing"
    # nbstripout, as a git filter would run it, changes nothing
    verify = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", str(NOTEBOOKS / name)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # the shape every notebook keeps: questions first, then the papermill parameters
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    for variable in ("GRAPHQL_URL", "SUITE_ID", "WINDOW_DAYS", "SEED", "OUTPUT_DIR"):
        assert f"\n{variable} = " in "\n" + parameters[0].source, variable
    assert 'os.environ.get("ORO_GRAPHQL_URL"' in parameters[0].source
    assert "manifest" not in "".join(c.source for c in nb.cells).lower()
    # the asserts, then a summary printed from the results (so it cannot drift from the numbers)
    assert code[-2].source.lstrip().startswith("# Checks") and "assert " in code[-2].source
    assert code[-1].source.lstrip().startswith("# Summary") and "print(text)" in code[-1].source
