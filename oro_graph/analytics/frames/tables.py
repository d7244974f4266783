"""The graph's tables as frames: suites, problems, versions, runs, problem results, boards, validators."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from oro_graph.analytics.client import Client
from oro_graph.analytics.frames.columns import (
    AGENT_VERSION_COLUMNS,
    LEADERBOARD_COLUMNS,
    PROBLEM_COLUMNS,
    PROBLEM_RESULT_COLUMNS,
    RUN_COLUMNS,
    SUITE_COLUMNS,
    TOP_AGENT_COLUMNS,
    TOP_HISTORY_COLUMNS,
    VALIDATOR_COLUMNS,
)
from oro_graph.analytics.frames.common import (
    EXECUTION_KINDS,
    PAGE_SIZE,
    PROBLEM_STATUSES,
    RELEASE_STATES,
    RUN_STATUSES,
    VALIDATOR_STATUSES,
    VERSION_STATES,
    Time,
    _run_filter,
    _suite_ids,
    _typed,
    iso,
)
from oro_graph.analytics.frames.documents import (
    AGENT_VERSIONS_QUERY,
    LEADERBOARD_QUERY,
    NEWEST_CLAIM_QUERY,
    PROBLEM_RESULTS_QUERY,
    PROBLEMS_QUERY,
    RUN_RESULTS_QUERY,
    RUNS_QUERY,
    SUITES_QUERY,
    TOP_AGENT_QUERY,
    TOP_HISTORY_QUERY,
    VALIDATORS_QUERY,
)


def suites(client: Client) -> pd.DataFrame:
    """Every suite, oldest first: suite_id, version, is_active, execution_kind, benchmark_name, ..."""
    nodes = client.paginate(SUITES_QUERY, {}, ["suites"], page_size=PAGE_SIZE)
    return _typed(nodes, SUITE_COLUMNS, categories={"execution_kind": EXECUTION_KINDS})


def problems(client: Client, suite_id: int | None = None) -> pd.DataFrame:
    """The problems of a suite (every suite when None) in suite order.

    category and difficulty are free text in the graph; they become categoricals whose categories
    are the values the suite uses (sorted), so frames of one suite share them.
    """
    nodes: list[dict[str, Any]] = []
    for sid in _suite_ids(client, suite_id):
        nodes.extend(
            client.paginate(PROBLEMS_QUERY, {"suite": str(sid)}, ["suite", "problems"], page_size=PAGE_SIZE)
        )
    return _typed(nodes, PROBLEM_COLUMNS)


def agent_versions(client: Client, suite_id: int | None = None) -> pd.DataFrame:
    """Agent versions of a suite (every suite when None), with their agent's name and miner."""
    nodes: list[dict[str, Any]] = []
    for sid in _suite_ids(client, suite_id):
        for node in client.paginate(
            AGENT_VERSIONS_QUERY, {"suite": str(sid)}, ["suite", "versions"], page_size=PAGE_SIZE
        ):
            agent = node.pop("agent") or {}
            nodes.append(node | {"agentName": agent.get("name"), "minerHotkey": agent.get("minerHotkey")})
    return _typed(
        nodes,
        AGENT_VERSION_COLUMNS,
        categories={"state": VERSION_STATES, "release_state": RELEASE_STATES},
    )


def runs(
    client: Client,
    *,
    suite_id: int | None = None,
    since: Time | None = None,
    until: Time | None = None,
    status: str | Sequence[str] | None = None,
    validator_hotkey: str | None = None,
    agent_version_id: str | None = None,
) -> pd.DataFrame:
    """Evaluation runs, oldest claim first; ``since`` <= claimed_at < ``until``, status one or several.

    Columns: run_id, agent_version_id, work_item_id, suite_id, validator_hotkey, status, claimed_at,
    lease_expires_at, last_heartbeat_at, completed_at, validator_score, is_included, failure_reason,
    inference_failure_count, inference_total (the runs input of ``metrics``).
    """
    variables = {"filter": _run_filter(suite_id, since, until, status, validator_hotkey, agent_version_id)}
    nodes = client.paginate(RUNS_QUERY, variables, ["evaluationRuns"], page_size=PAGE_SIZE)
    return _typed(nodes, RUN_COLUMNS, rename={"evalRunId": "runId"}, categories={"status": RUN_STATUSES})


def problem_results(
    client: Client,
    *,
    suite_id: int | None = None,
    since: Time | None = None,
    until: Time | None = None,
    status: str | Sequence[str] | None = None,
    validator_hotkey: str | None = None,
    agent_version_id: str | None = None,
    problem_table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-problem results of the runs that ``runs`` would return with the same filter, one row each.

    Each row carries its run's run_id, agent_version_id, validator_hotkey, suite_id, run_status and
    run_is_included, and its problem's position, category and difficulty (from ``problems``; pass
    ``problem_table`` to reuse one already loaded). status is the problem's own status. This is the
    results input of ``metrics``. Rows come in run order, then suite order.
    """
    variables = {
        "filter": _run_filter(suite_id, since, until, status, validator_hotkey, agent_version_id),
        "results": PAGE_SIZE,
    }
    rows: list[dict[str, Any]] = []
    for run in client.paginate(PROBLEM_RESULTS_QUERY, variables, ["evaluationRuns"], page_size=PAGE_SIZE):
        rows.extend(_results_of(client, run))
    table = problem_table if problem_table is not None else problems(client, suite_id)
    df = _typed(
        rows,
        {k: v for k, v in PROBLEM_RESULT_COLUMNS.items() if k not in ("position", "category", "difficulty")},
        categories={"run_status": RUN_STATUSES, "status": PROBLEM_STATUSES},
    )
    meta = table[["problem_id", "position", "category", "difficulty"]].drop_duplicates("problem_id")
    df = df.merge(meta, on="problem_id", how="left", validate="many_to_one")
    df["position"] = df["position"].astype("Int64")
    for name in ("category", "difficulty"):
        df[name] = pd.Categorical(df[name], categories=meta[name].cat.categories)
    run_order = pd.Series(pd.factorize(df["run_id"])[0], index=df.index)
    df = df.assign(_run=run_order).sort_values(["_run", "position"], kind="stable")
    return df[list(PROBLEM_RESULT_COLUMNS)].reset_index(drop=True)


def _results_of(client: Client, run: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    head = {
        "runId": run["evalRunId"],
        "agentVersionId": run["agentVersionId"],
        "validatorHotkey": run["validatorHotkey"],
        "suiteId": run["suiteId"],
        "runStatus": run["status"],
        "runIsIncluded": run["isIncluded"],
        "raceId": run.get("raceId"),
    }
    connection = run["problemResults"]
    for edge in connection["edges"]:
        yield head | edge["node"]
    info = connection["pageInfo"]
    if info["hasNextPage"]:  # a suite with more problems than a page: fetch the rest of this run
        rest = client.paginate(
            RUN_RESULTS_QUERY,
            {"run": run["evalRunId"]},
            ["evaluationRun", "problemResults"],
            page_size=PAGE_SIZE,
        )
        for index, node in enumerate(rest):
            if index >= len(connection["edges"]):
                yield head | node


def leaderboard(client: Client, suite_id: int | None = None, *, as_of: Time | None = None) -> pd.DataFrame:
    """The ranked board of eligible versions (the active suite when None), best first, as of a time."""
    variables = {"suite": suite_id, "asOf": iso(as_of)}
    nodes = list(client.paginate(LEADERBOARD_QUERY, variables, ["leaderboard"], page_size=PAGE_SIZE))
    if suite_id is None and nodes:
        suite_id = int(top_agent(client, as_of=as_of)["suite_id"].iloc[0])
    return _typed(({"suiteId": suite_id} | n for n in nodes), LEADERBOARD_COLUMNS)


def top_agent(client: Client, suite_id: int | None = None, *, as_of: Time | None = None) -> pd.DataFrame:
    """The top agent (one row) of a suite (the active one when None) as of a time, with the threshold."""
    data = client.query(TOP_AGENT_QUERY, {"suite": suite_id, "asOf": iso(as_of)})
    return _typed([data["topAgent"]], TOP_AGENT_COLUMNS)


def top_history(client: Client, suite_id: int | None = None) -> pd.DataFrame:
    """Every reign of a top agent (the active suite when None), oldest first."""
    nodes = client.paginate(TOP_HISTORY_QUERY, {"suite": suite_id}, ["topHistory"], page_size=PAGE_SIZE)
    return _typed(nodes, TOP_HISTORY_COLUMNS)


def validators(client: Client) -> pd.DataFrame:
    """Known validators with their status, last claim and last seen times and reported metrics."""
    nodes = client.paginate(VALIDATORS_QUERY, {}, ["validators"], page_size=PAGE_SIZE)
    rows = ({**n, "currentRun": (n.get("currentRun") or {}).get("evalRunId")} for n in nodes)
    return _typed(
        rows,
        VALIDATOR_COLUMNS,
        rename={"currentRun": "currentRunId"},
        categories={"status": VALIDATOR_STATUSES},
    )


def newest_claim(client: Client, suite_id: int | None = None) -> pd.Timestamp | None:
    """The latest claimed_at of any run (of a suite), or None without runs: one cheap query.

    Notebooks take "now" from the data, never the clock: a window of the last N days before the
    newest claim holds every run of the last N days before any later timestamp of the data too.
    """
    data = client.query(NEWEST_CLAIM_QUERY, {"filter": _run_filter(suite_id, None, None, None, None, None)})
    edges = data["evaluationRuns"]["edges"]
    return pd.Timestamp(edges[0]["node"]["claimedAt"]).tz_convert("UTC") if edges else None
