"""The typed frames against a live server (uvicorn on loopback) over a small seeded demo world, on
SQLite and PostgreSQL: what they return agrees with the database rows, typed and paged as promised.

The world and its server are built once per database for the module (every test here only reads
them); the tests that need a database of their own are in test_frames_fresh.py."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func
from sqlmodel import select

from oro_graph import demo
from oro_graph.analytics import frames, metrics
from oro_graph.analytics.client import Client
from oro_graph.graphql.pagination import MAX_PAGE_SIZE
from oro_graph.models import AgentVersion, EvaluationRun, Problem, ProblemResult, Suite, TopAgentHistory
from oro_graph.runtime import Runtime
from oro_graph.services import agents, races, reliability
from tests.analytics.conftest import serve_graph

WORLD = {"seed": 5, "miners": 12, "validators": 5, "runs": 160}
SCHEMA = Path(__file__).resolve().parents[2] / "schema.graphql"


@pytest.fixture(scope="module")
def graph_url(module_runtime: Runtime) -> Iterator[str]:
    with serve_graph(module_runtime) as url:
        yield url


@pytest.fixture
def runtime(module_runtime: Runtime) -> Runtime:
    """This module's tests read one world: the module's database (tests/conftest.py)."""
    return module_runtime


class Recorder(httpx.HTTPTransport):
    """A real transport that remembers the variables of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(json.loads(request.content))
        return super().handle_request(request)


@pytest.fixture(scope="module")
def world(module_runtime: Runtime) -> demo.Manifest:
    """Built once per database: every test here only reads it (test_frames_fresh.py has the others)."""
    return demo.generate(module_runtime.db, module_runtime.settings, **WORLD)


def _all(runtime: Runtime, model: Any, *where: Any) -> list[Any]:
    with runtime.db.session() as session:
        return list(session.exec(select(model).where(*where)).all())


def _count(runtime: Runtime, model: Any, *where: Any) -> int:
    with runtime.db.session() as session:
        return int(session.exec(select(func.count()).select_from(model).where(*where)).one())


# --------------------------------------------------------------------------------------------- tables
def test_runs_agree_with_the_database(runtime: Runtime, world: demo.Manifest, client: Client) -> None:
    # when
    runs = frames.runs(client, suite_id=1)

    # then: every run, once, with the stored values
    rows = {str(r.id): r for r in _all(runtime, EvaluationRun)}
    assert len(runs) == len(rows) == world.counts["runs"]
    assert set(runs["run_id"]) == set(rows)
    assert runs["claimed_at"].is_monotonic_increasing
    assert dict(Counter(runs["status"].astype(str))) == world.counts["runs_by_status"]
    for _, run in runs.sample(10, random_state=1).iterrows():
        row = rows[run["run_id"]]
        assert run["validator_hotkey"] == row.validator_hotkey
        assert run["agent_version_id"] == str(row.agent_version_id)
        assert run["status"] == str(row.status)
        assert run["claimed_at"] == pd.Timestamp(row.claimed_at)
        assert (pd.isna(run["completed_at"]) and row.completed_at is None) or run[
            "completed_at"
        ] == pd.Timestamp(row.completed_at)
        assert (pd.isna(run["validator_score"]) and row.validator_score is None) or run[
            "validator_score"
        ] == pytest.approx(row.validator_score, abs=1e-12)
        assert bool(run["is_included"]) == row.is_included


def test_run_filters_match_the_same_sql(runtime: Runtime, world: demo.Manifest, client: Client) -> None:
    # given: a window in the middle of the world
    start = demo.BASE_TIME + timedelta(days=10)
    end = start + timedelta(days=7)
    in_window = (EvaluationRun.claimed_at >= start, EvaluationRun.claimed_at < end)  # type: ignore[operator]

    # when
    window = frames.runs(client, suite_id=1, since=start, until=end.isoformat())
    failing = frames.runs(client, since=start, until=end, status=["failed", "TIMED_OUT"])
    nothing = frames.runs(client, suite_id=999)

    # then
    assert len(window) == _count(runtime, EvaluationRun, *in_window) > 0
    assert window["claimed_at"].min() >= pd.Timestamp(start) and window["claimed_at"].max() < pd.Timestamp(
        end
    )
    expected = _count(runtime, EvaluationRun, *in_window, EvaluationRun.status.in_(["FAILED", "TIMED_OUT"]))  # type: ignore[attr-defined]
    assert len(failing) == expected
    assert set(failing["status"].astype(str)) <= {"FAILED", "TIMED_OUT"}
    assert nothing.empty and list(nothing.columns) == list(frames.RUN_COLUMNS)
    with pytest.raises(ValueError, match="unknown run status"):
        frames.runs(client, status="DONE")


def test_problem_results_are_one_row_per_problem(
    runtime: Runtime, world: demo.Manifest, client: Client
) -> None:
    # when
    results = frames.problem_results(client, suite_id=1)

    # then: as many rows as stored results, scalar columns only, the problems' labels joined in
    stored = _all(runtime, ProblemResult)
    assert len(results) == len(stored) == world.counts["problem_results"]
    assert not any(results[c].map(lambda v: isinstance(v, list | dict)).any() for c in results.columns)
    # every problem for a qualifying run, the race's drawn problems for a race run
    per_run = results.groupby("run_id").size()
    race_of = results.drop_duplicates("run_id").set_index("run_id")["race_id"]
    assert per_run[race_of.isna()].eq(world.counts["problems"]).all()
    assert (per_run[race_of.notna()] < world.counts["problems"]).all() and race_of.notna().any()
    assert dict(Counter(results["status"].astype(str))) == dict(Counter(str(r.status) for r in stored))
    assert results["score"].sum() == pytest.approx(sum(r.score or 0.0 for r in stored), abs=1e-6)
    assert results["category"].notna().all() and list(results["category"].cat.categories) == [
        "Product",
        "Shop",
        "Voucher",
    ]
    assert list(results["difficulty"].cat.categories) == ["easy", "medium"]
    assert (results.groupby("run_id")["position"].apply(lambda p: p.is_monotonic_increasing)).all()
    # a run's own fields come along
    runs = {str(r.id): r for r in _all(runtime, EvaluationRun)}
    sample = results.drop_duplicates("run_id").sample(5, random_state=2)
    for _, row in sample.iterrows():
        run = runs[row["run_id"]]
        assert row["validator_hotkey"] == run.validator_hotkey and row["run_status"] == str(run.status)
        assert bool(row["run_is_included"]) == run.is_included


def test_problem_results_filtered_like_runs(runtime: Runtime, world: demo.Manifest, client: Client) -> None:
    # given
    runs = frames.runs(client, status="SUCCESS")
    version = runs["agent_version_id"].value_counts().index[0]

    # when
    results = frames.problem_results(client, status="SUCCESS", agent_version_id=version)

    # then
    mine = runs[runs["agent_version_id"] == version]
    assert set(results["run_id"]) == set(mine["run_id"])
    per_run = [
        world.counts["problems"] if pd.isna(r) else runtime.settings.race_problems for r in mine["race_id"]
    ]
    assert len(results) == sum(per_run)
    # the run score is the mean of its problem scores (missing ones count as 0)
    by_run = results.assign(score=results["score"].fillna(0)).groupby("run_id")["score"].mean()
    assert by_run.to_dict() == pytest.approx(
        mine.set_index("run_id")["validator_score"].astype(float).to_dict(), abs=1e-6
    )


def test_catalogue_tables(runtime: Runtime, world: demo.Manifest, client: Client) -> None:
    # when
    suite_table = frames.suites(client)
    problems = frames.problems(client)
    versions = frames.agent_versions(client, suite_id=1)

    # then
    assert suite_table["suite_id"].tolist() == [s.id for s in _all(runtime, Suite)]
    assert suite_table["is_active"].tolist() == [True]
    assert str(suite_table["execution_kind"].iloc[0]) == "LEGACY_SHOPPINGBENCH"
    stored = sorted(_all(runtime, Problem), key=lambda p: p.position)
    assert problems["problem_id"].tolist() == [str(p.id) for p in stored]
    assert problems["category"].astype(str).tolist() == [p.category for p in stored]
    # the graph is public: it lists released versions only (services.agents.discloses)
    released = [v for v in _all(runtime, AgentVersion) if agents.is_released(v, runtime.settings)]
    assert 0 < len(released) < world.counts["agent_versions"]
    assert sorted(versions["agent_version_id"]) == sorted(str(v.id) for v in released)
    assert dict(Counter(versions["state"].astype(str))) == dict(Counter(str(v.state) for v in released))
    rows = {str(v.id): v for v in released}
    for _, v in versions.sample(5, random_state=3).iterrows():
        row = rows[v["agent_version_id"]]
        assert v["version_number"] == row.version_number and v["code_sha256"] == row.code_sha256
        assert (pd.isna(v["final_score"]) and row.final_score is None) or v["final_score"] == pytest.approx(
            row.final_score
        )
    assert versions["agent_name"].notna().all() and versions["miner_hotkey"].str.len().gt(40).all()


def test_board_tables(runtime: Runtime, world: demo.Manifest, client: Client) -> None:
    # when
    board = frames.leaderboard(client)
    top = frames.top_agent(client, suite_id=1)
    history = frames.top_history(client)

    # then: every eligible version, best first, and the reigns as stored
    eligible = _all(runtime, AgentVersion, AgentVersion.state == "ELIGIBLE")
    assert len(board) == len(eligible) == world.counts["eligible_versions"]
    assert board["rank"].tolist() == sorted(board["rank"].tolist()) and board["rank"].iloc[0] == 1
    assert board["final_score"].is_monotonic_decreasing
    assert board["suite_id"].eq(1).all()
    # the top agent is the latest completed race's winner, with its race score (CONTRACTS section 5)
    latest = runtime.db.call(races.latest_completed, 1)
    assert latest is not None and len(top) == 1
    assert top["top_agent_version_id"].iloc[0] == str(latest.winner_agent_version_id)
    assert top["top_score"].iloc[0] == pytest.approx(latest.winner_score)
    reigns = sorted(_all(runtime, TopAgentHistory), key=lambda r: r.top_at)
    assert len(history) == len(reigns) == world.counts["top_agent_reigns"]
    assert history["agent_version_id"].tolist() == [str(r.agent_version_id) for r in reigns]
    assert history["replaced_at"].isna().sum() == 1


def test_validators_and_the_graphs_own_figures(
    runtime: Runtime, world: demo.Manifest, client: Client
) -> None:
    # when
    validators = frames.validators(client)
    graph = frames.validator_reliability(client)
    variance = frames.validator_variance(client, 1)
    board = frames.leaderboard(client)
    intervals = frames.score_intervals(
        client, board["agent_version_id"].head(3).tolist() + ["00000000-0000-0000-0000-000000000000"]
    )

    # then
    assert len(validators) == world.counts["validators"]
    with runtime.db.session() as session:
        sql = reliability.validator_reliability(session, validators["hotkey"].tolist())
        one = reliability.score_interval(session, uuid.UUID(board["agent_version_id"].iloc[0]))
    for _, row in graph.iterrows():
        expected = sql[row["hotkey"]]
        assert row["runs"] == expected.runs
        assert row[[f"n_{s.lower()}" for s in frames.RUN_STATUSES]].sum() == expected.runs
        assert row["n_stale"] == expected.counts.get("STALE", 0)
    assert graph["runs"].sum() == world.counts["runs"]
    assert (
        variance.summary["versions"].iloc[0] > 0
        and variance.buckets["versions"].sum() == variance.summary["versions"].iloc[0]
    )
    assert set(variance.validators["hotkey"]) <= set(validators["hotkey"])
    assert len(intervals) == 4 and intervals["mean"].isna().tolist() == [False, False, False, True]
    assert one is not None and intervals["lower"].iloc[0] == pytest.approx(one.lower)
    assert frames.has_fields(client, "Validator", "hotkey", "reliability")
    assert not frames.has_fields(client, "Validator", "noSuchField")
    assert not frames.has_fields(client, "NoSuchType", "x")
    assert frames.newest_claim(client, suite_id=1) == frames.runs(client)["claimed_at"].max()


def test_problem_stats_are_the_notebooks_numbers(world: demo.Manifest, client: Client) -> None:
    # given every problem result of the demo world since day 20, downloaded as the notebooks do
    since = demo.BASE_TIME + timedelta(days=20)
    results = frames.problem_results(client, suite_id=1, since=since)
    results = results[results["race_id"].isna()]  # the suite's own runs: race runs see drawn problems only
    included = results[results["run_is_included"].fillna(False)]

    # when the server computes the same figures
    stats = frames.problem_stats(client, 1, since=since).set_index("problem_id")
    items = frames.problem_stats(client, 1, since=since, included_only=True).set_index("problem_id")

    # then they equal what metrics computes from the raw rows
    loss = metrics.timeout_loss(results, by="problem_id").set_index("problem_id")
    analysis = metrics.item_analysis(included).set_index("problem_id")
    assert (
        list(stats.columns) == list(frames.PROBLEM_STATS_COLUMNS)[1:]
        and len(stats) == world.counts["problems"]
    )
    assert (stats.loc[loss.index, "attempts"] == loss["n_results"]).all()
    assert np.allclose(stats.loc[loss.index, "timeout_rate"].astype(float), loss["timeout_rate"], atol=1e-12)
    both = analysis["corrected_r"].notna()
    assert both.sum() > 0
    assert np.allclose(
        items.loc[analysis.index[both], "discrimination"].astype(float), analysis.loc[both, "corrected_r"]
    )
    assert items.loc[analysis.index[~both], "discrimination"].isna().all()


# ------------------------------------------------------------------------------------- typing and paging
def test_loaded_frames_are_typed(runtime: Runtime, world: demo.Manifest, client: Client) -> None:
    since = demo.BASE_TIME + timedelta(days=20)
    for df, columns in [
        (frames.runs(client, since=since), frames.RUN_COLUMNS),
        (frames.problem_results(client, since=since), frames.PROBLEM_RESULT_COLUMNS),
        (frames.agent_versions(client), frames.AGENT_VERSION_COLUMNS),
        (frames.leaderboard(client), frames.LEADERBOARD_COLUMNS),
        (frames.top_agent(client), frames.TOP_AGENT_COLUMNS),
        (frames.validators(client), frames.VALIDATOR_COLUMNS),
    ]:
        assert not df.empty and list(df.columns) == list(columns)
        _assert_typed(df, columns)
    runs = frames.runs(client, since=since)
    assert str(runs["claimed_at"].dt.tz) == "UTC" and runs["claimed_at"].min() >= pd.Timestamp(since)


def _assert_typed(df: pd.DataFrame, columns: dict[str, str]) -> None:
    expected = {
        "int": "Int64",
        "float": "Float64",
        "bool": "boolean",
        "str": "string",
        "datetime": "datetime64[ns, UTC]",
    }
    for name, kind in columns.items():
        dtype = df[name].dtype
        if kind == "category":
            assert isinstance(dtype, pd.CategoricalDtype), (name, dtype)
        else:
            assert str(dtype).startswith(expected[kind].split("[")[0]) and (
                kind != "datetime" or str(dtype.tz) == "UTC"
            ), (name, dtype)


def test_connections_are_paged_at_the_largest_page(world: demo.Manifest, graph_url: str) -> None:
    # given: a client that records what it sends
    recorder = Recorder()
    with Client(graph_url, transport=recorder) as client:
        # when
        runs = frames.runs(client)

    # then: ceil(n / 100) pages, each asking for the maximum
    pages = [s["variables"] for s in recorder.sent]
    assert frames.PAGE_SIZE == MAX_PAGE_SIZE
    assert (
        len(pages) == math.ceil(len(runs) / MAX_PAGE_SIZE) == math.ceil(world.counts["runs"] / MAX_PAGE_SIZE)
    )
    assert all(p["first"] == MAX_PAGE_SIZE for p in pages)
    assert pages[0]["after"] is None and all(p["after"] for p in pages[1:])


def test_a_run_with_more_results_than_a_page_is_read_to_the_end() -> None:
    # given: a graph (mocked) whose one run has 3 results on two inner pages
    def result(i: int) -> dict[str, Any]:
        return {
            "problemId": f"p{i}",
            "status": "SUCCESS",
            "score": i / 10,
            "reasoningScore": None,
            "executionTime": 1.0,
            "inferenceFailureCount": 0,
            "inferenceTotal": 3,
            "updatedAt": "2026-10-01T00:00:00Z",
        }

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "ProblemResults" in body["query"]:
            run = {
                "evalRunId": "r1",
                "agentVersionId": "v1",
                "validatorHotkey": "h",
                "suiteId": 1,
                "status": "SUCCESS",
                "isIncluded": True,
                "problemResults": {
                    "pageInfo": {"hasNextPage": True, "endCursor": "c2"},
                    "edges": [{"node": result(0)}, {"node": result(1)}],
                },
            }
            return httpx.Response(
                200,
                json={
                    "data": {
                        "evaluationRuns": {
                            "pageInfo": {"hasNextPage": False, "endCursor": "x"},
                            "edges": [{"node": run}],
                        }
                    }
                },
            )
        assert "RunResults" in body["query"] and body["variables"]["run"] == "r1"
        return httpx.Response(
            200,
            json={
                "data": {
                    "evaluationRun": {
                        "problemResults": {
                            "pageInfo": {"hasNextPage": False, "endCursor": "c3"},
                            "edges": [{"node": result(i)} for i in range(3)],
                        }
                    }
                }
            },
        )

    problems = pd.DataFrame(
        {
            "problem_id": ["p0", "p1", "p2"],
            "position": [0, 1, 2],
            "category": pd.Categorical(["A", "B", "A"]),
            "difficulty": pd.Categorical(["easy"] * 3),
        }
    )
    client = Client("http://graph.test/graphql", transport=httpx.MockTransport(handler), retries=0)

    # when
    results = frames.problem_results(client, problem_table=problems)

    # then
    assert results["problem_id"].tolist() == ["p0", "p1", "p2"]
    assert results["score"].tolist() == [0.0, 0.1, 0.2]
    assert results["category"].astype(str).tolist() == ["A", "B", "A"]


def test_enum_categories_are_the_schemas() -> None:
    enums = dict(re.findall(r"^enum (\w+) \{(.*?)^\}", SCHEMA.read_text(), flags=re.S | re.M))

    def values(name: str) -> tuple[str, ...]:
        body = re.sub(r'"""[\s\S]*?"""', "", enums[name])
        return tuple(line.strip() for line in body.splitlines() if line.strip())

    assert frames.RUN_STATUSES == values("RunStatus")
    assert frames.PROBLEM_STATUSES == values("ProblemStatus")
    assert frames.VERSION_STATES == values("AgentVersionState")
    assert frames.RELEASE_STATES == values("ReleaseState")
    assert frames.EXECUTION_KINDS == values("ExecutionKind")
    assert frames.VALIDATOR_STATUSES == values("ValidatorStatus")
    assert frames.RACE_STATUSES == values("RaceStatus")
    assert frames.QUALIFICATION_TYPES == values("RaceQualificationType")


def test_times_are_sent_as_utc() -> None:
    assert frames.iso("2026-10-01") == "2026-10-01T00:00:00+00:00"
    assert frames.iso(pd.Timestamp("2026-10-01 02:00", tz="Europe/Berlin")) == "2026-10-01T00:00:00+00:00"
    assert frames.iso(None) is None


def test_documents_are_valid_against_the_committed_schema() -> None:
    from graphql import build_schema, parse, validate

    schema = build_schema(SCHEMA.read_text())
    documents = {k: v for k, v in vars(frames).items() if k.endswith("_QUERY") and isinstance(v, str)}
    documents["score intervals"] = (
        f"query($v0: ID!) {{ v0: agentVersion(id: $v0) {{ {frames.SCORE_INTERVAL_FIELDS} }} }}"
    )
    assert len(documents) >= 14
    for name, document in documents.items():
        assert validate(schema, parse(document)) == [], name


FLAGGED = """
query ($flags: [ValidatorFlag!]) {
  validators(first: 100, filter: {flags: $flags}) { totalCount edges { node { hotkey } } }
}
"""


def test_validator_flag_filters_agree_with_the_notebooks_rules(world: demo.Manifest, client: Client) -> None:
    # given the notebooks' flags from every run of the demo world
    runs = frames.runs(client)
    flags = metrics.validator_flags(runs)

    # when the graph filters validators by each flag
    def flagged(flag: str) -> set[str]:
        found = client.query(FLAGGED, {"flags": [flag.upper()]})["validators"]
        assert found["totalCount"] == len(found["edges"])
        return {e["node"]["hotkey"] for e in found["edges"]}

    # then biased and stale are exactly the notebooks'; slow (the durations rule only) within theirs
    notebook = {flag: set(flags.loc[flags["flag"] == flag, "hotkey"]) for flag in ("biased", "stale", "slow")}
    assert flagged("biased") == notebook["biased"] and flagged("stale") == notebook["stale"]
    assert flagged("slow") <= notebook["slow"]
    assert notebook["biased"] or notebook["stale"]  # not vacuous on this world
    both = client.query(FLAGGED, {"flags": ["BIASED", "STALE"]})["validators"]["totalCount"]
    assert both == len(notebook["biased"] | notebook["stale"])
