"""One typed loader per table of the graph: GraphQL in, tidy pandas frames out.

Every loader is a function that takes a ``Client`` first::

    from oro_graph.analytics import Client, loaders
    client = Client.from_env()                                  # ORO_GRAPHQL_URL
    runs = loaders.runs(client, suite_id=1, since="2026-11-01", status=["SUCCESS"])
    results = loaders.problem_results(client, suite_id=1, since="2026-11-01")

Tables: ``suites``, ``problems``, ``agent_versions``, ``runs``, ``problem_results`` (one row per
problem of a run, never a list column), ``leaderboard``, ``top_agent``, ``top_history`` and
``validators``. The graph's own reliability figures have loaders too (``validator_reliability``,
``validator_variance``, ``score_intervals``), for notebooks that cross-check their numbers; ask
``has_fields`` first, since an older server may not have them.

Frames follow ``client.frame``: snake_case columns in a fixed order, UTC datetimes, enums as
categoricals with the full fixed category list (``RUN_STATUSES``...), nullable numeric dtypes
(Float64, Int64, boolean), and every column even when there is no row. Connections are paged
through Relay cursors at the largest page the graph allows (``PAGE_SIZE``). Times given as
arguments may be datetimes, pandas Timestamps or ISO strings; naive ones are read as UTC.
The documents are the module's upper-case constants, so an analyst can read or reuse them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pandas as pd

from oro_graph.analytics.client import Client, frame

PAGE_SIZE: Final = 100  # the graph's largest page (oro_graph.graphql.pagination.MAX_PAGE_SIZE)
ALIASES_PER_QUERY: Final = 25  # under the graph's alias budget (ORO_GRAPHQL_MAX_ALIASES, 30)

# The graph's enums, in schema order (tests/analytics/test_loaders.py checks them against schema.graphql).
RUN_STATUSES: Final = ("CLAIMED", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "STALE", "CANCELLED")
PROBLEM_STATUSES: Final = ("PENDING", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED")
VERSION_STATES: Final = ("RECEIVED", "QUEUED", "RUNNING", "ELIGIBLE", "DISCARDED", "CANCELLED")
RELEASE_STATES: Final = ("HIDDEN", "RELEASED")
EXECUTION_KINDS: Final = ("LEGACY_SHOPPINGBENCH", "ENVPACK")
VALIDATOR_STATUSES: Final = ("AVAILABLE", "EVALUATING")

Time = datetime | pd.Timestamp | str

# --------------------------------------------------------------------------------------------- documents
SUITES_QUERY: Final = """
query Suites($first: Int, $after: String) {
  suites(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      suiteId version isActive executionKind benchmarkName benchmarkNumber createdAt
    } }
  }
}
"""

PROBLEMS_QUERY: Final = """
query Problems($suite: ID!, $first: Int, $after: String) {
  suite(id: $suite) {
    problems(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { suiteId problemId position title category difficulty query } }
    }
  }
}
"""

AGENT_VERSIONS_QUERY: Final = """
query AgentVersions($suite: ID!, $first: Int, $after: String) {
  suite(id: $suite) {
    versions(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node {
        agentVersionId agentId agent { name minerHotkey } versionNumber suiteId state releaseState
        submittedAt eligibleAt discardedAt finalScore codeSha256 codeSize
      } }
    }
  }
}
"""

RUN_FIELDS: Final = """
        evalRunId agentVersionId workItemId suiteId validatorHotkey status
        claimedAt leaseExpiresAt lastHeartbeatAt completedAt
        validatorScore isIncluded failureReason inferenceFailureCount inferenceTotal raceId
"""

RUNS_QUERY: Final = f"""
query Runs($filter: EvaluationRunFilter, $first: Int, $after: String) {{
  evaluationRuns(
    filter: $filter, orderBy: {{field: CLAIMED_AT, direction: ASC}}, first: $first, after: $after
  ) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {RUN_FIELDS} }} }}
  }}
}}
"""

RESULT_FIELDS: Final = """
problemId status score reasoningScore executionTime inferenceFailureCount inferenceTotal updatedAt
"""

# A page of runs with the first page of each run's results (a suite has 30 problems, a page 100).
PROBLEM_RESULTS_QUERY: Final = f"""
query ProblemResults($filter: EvaluationRunFilter, $first: Int, $after: String, $results: Int) {{
  evaluationRuns(
    filter: $filter, orderBy: {{field: CLAIMED_AT, direction: ASC}}, first: $first, after: $after
  ) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{
      evalRunId agentVersionId validatorHotkey suiteId status isIncluded raceId
      problemResults(first: $results) {{
        pageInfo {{ hasNextPage endCursor }}
        edges {{ node {{ {RESULT_FIELDS} }} }}
      }}
    }} }}
  }}
}}
"""

# The rest of one run's results, for a run with more than a page of them.
RUN_RESULTS_QUERY: Final = f"""
query RunResults($run: ID!, $first: Int, $after: String) {{
  evaluationRun(id: $run) {{
    problemResults(first: $first, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      edges {{ node {{ {RESULT_FIELDS} }} }}
    }}
  }}
}}
"""

LEADERBOARD_QUERY: Final = """
query Leaderboard($suite: Int, $asOf: DateTime, $first: Int, $after: String) {
  leaderboard(suiteId: $suite, asOf: $asOf, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      rank agentVersionId agentName minerHotkey versionNumber finalScore eligibleAt
      isCurrentTop wasTop topAt
    } }
  }
}
"""

TOP_AGENT_QUERY: Final = """
query TopAgent($suite: Int, $asOf: DateTime) {
  topAgent(suiteId: $suite, asOf: $asOf) {
    suiteId computedAt topAgentVersionId topMinerHotkey topScore topAt challengeThreshold
  }
}
"""

TOP_HISTORY_QUERY: Final = """
query TopHistory($suite: Int, $first: Int, $after: String) {
  topHistory(suiteId: $suite, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { suiteId agentVersionId score topAt replacedAt } }
  }
}
"""

VALIDATORS_QUERY: Final = """
query Validators($first: Int, $after: String) {
  validators(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      hotkey name status registeredAt lastClaimAt lastSeenAt cpuPct ramPct diskPct
      dockerContainerCount metricsReportedAt currentRun { evalRunId }
    } }
  }
}
"""

NEWEST_CLAIM_QUERY: Final = """
query NewestClaim($filter: EvaluationRunFilter) {
  evaluationRuns(filter: $filter, orderBy: {field: CLAIMED_AT, direction: DESC}, first: 1) {
    edges { node { claimedAt } }
  }
}
"""

FIELDS_QUERY: Final = """
query Fields($type: String!) { __type(name: $type) { fields { name } } }
"""

VALIDATOR_RELIABILITY_QUERY: Final = """
query ValidatorReliability($window: TimeWindow, $first: Int, $after: String) {
  validators(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      hotkey
      reliability(window: $window) {
        runs statuses { status count } successRate failedRate timedOutRate staleRate
        durationP50Seconds durationP95Seconds meanDeltaVsPeers deltaSd versionsCompared
        pairsEvaluated lastActivityAt
      }
    } }
  }
}
"""

VALIDATOR_VARIANCE_QUERY: Final = """
query ValidatorVariance($suite: ID!, $window: TimeWindow) {
  suite(id: $suite) {
    suiteId
    validatorVariance(window: $window) {
      versions meanSpread maxSpread
      buckets { label versions }
      validators { hotkey meanDelta deltaSd versionsCompared pairsEvaluated }
    }
  }
}
"""

SCORE_INTERVAL_FIELDS: Final = "agentVersionId scoreInterval { mean lower upper problems draws }"

PROBLEM_STATS_QUERY: Final = """
query ProblemStats($suite: ID!, $scope: ProblemStatsScope, $first: Int, $after: String) {
  suite(id: $suite) {
    problemStats(scope: $scope, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node {
        problemId position attempts passes timeouts versions passRate timeoutRate meanScore medianScore
        meanDurationSeconds discrimination
      } }
    }
  }
}
"""

# --------------------------------------------------------------------------------------------- columns
SUITE_COLUMNS: Final = {
    "suite_id": "int",
    "version": "int",
    "is_active": "bool",
    "execution_kind": "category",
    "benchmark_name": "str",
    "benchmark_number": "int",
    "created_at": "datetime",
}
PROBLEM_COLUMNS: Final = {
    "suite_id": "int",
    "problem_id": "str",
    "position": "int",
    "title": "str",
    "category": "category",
    "difficulty": "category",
    "query": "str",
}
AGENT_VERSION_COLUMNS: Final = {
    "agent_version_id": "str",
    "agent_id": "str",
    "agent_name": "str",
    "miner_hotkey": "str",
    "version_number": "int",
    "suite_id": "int",
    "state": "category",
    "release_state": "category",
    "submitted_at": "datetime",
    "eligible_at": "datetime",
    "discarded_at": "datetime",
    "final_score": "float",
    "code_sha256": "str",
    "code_size": "int",
}
RUN_COLUMNS: Final = {
    "run_id": "str",
    "agent_version_id": "str",
    "work_item_id": "str",
    "suite_id": "int",
    "validator_hotkey": "str",
    "status": "category",
    "claimed_at": "datetime",
    "lease_expires_at": "datetime",
    "last_heartbeat_at": "datetime",
    "completed_at": "datetime",
    "validator_score": "float",
    "is_included": "bool",
    "failure_reason": "str",
    "inference_failure_count": "int",
    "inference_total": "int",
    "race_id": "str",  # a race run's race (it evaluates the race's drawn problems); null: qualifying
}
PROBLEM_RESULT_COLUMNS: Final = {
    "run_id": "str",
    "agent_version_id": "str",
    "validator_hotkey": "str",
    "suite_id": "int",
    "run_status": "category",
    "run_is_included": "bool",
    "problem_id": "str",
    "position": "int",
    "category": "category",
    "difficulty": "category",
    "status": "category",
    "score": "float",
    "reasoning_score": "float",
    "execution_time": "float",
    "inference_failure_count": "int",
    "inference_total": "int",
    "updated_at": "datetime",
    "race_id": "str",  # its run's race; null for qualifying runs
}
LEADERBOARD_COLUMNS: Final = {
    "suite_id": "int",
    "rank": "int",
    "agent_version_id": "str",
    "agent_name": "str",
    "miner_hotkey": "str",
    "version_number": "int",
    "final_score": "float",
    "eligible_at": "datetime",
    "is_current_top": "bool",
    "was_top": "bool",
    "top_at": "datetime",
}
TOP_AGENT_COLUMNS: Final = {
    "suite_id": "int",
    "computed_at": "datetime",
    "top_agent_version_id": "str",
    "top_miner_hotkey": "str",
    "top_score": "float",
    "top_at": "datetime",
    "challenge_threshold": "float",
}
TOP_HISTORY_COLUMNS: Final = {
    "suite_id": "int",
    "agent_version_id": "str",
    "score": "float",
    "top_at": "datetime",
    "replaced_at": "datetime",
}
VALIDATOR_COLUMNS: Final = {
    "hotkey": "str",
    "name": "str",
    "status": "category",
    "registered_at": "datetime",
    "last_claim_at": "datetime",
    "last_seen_at": "datetime",
    "cpu_pct": "float",
    "ram_pct": "float",
    "disk_pct": "float",
    "docker_container_count": "int",
    "metrics_reported_at": "datetime",
    "current_run_id": "str",
}
PROBLEM_STATS_COLUMNS: Final = {
    "problem_id": "str",
    "position": "int",
    "attempts": "int",
    "passes": "int",
    "timeouts": "int",
    "versions": "int",
    "pass_rate": "float",
    "timeout_rate": "float",
    "mean_score": "float",
    "median_score": "float",
    "mean_duration_seconds": "float",
    "discrimination": "float",
}
RELIABILITY_COLUMNS: Final = {
    "hotkey": "str",
    "runs": "int",
    **{f"n_{s.lower()}": "int" for s in RUN_STATUSES},
    "success_rate": "float",
    "failed_rate": "float",
    "timed_out_rate": "float",
    "stale_rate": "float",
    "duration_p50_seconds": "float",
    "duration_p95_seconds": "float",
    "mean_delta_vs_peers": "float",
    "delta_sd": "float",
    "versions_compared": "int",
    "pairs_evaluated": "int",
    "last_activity_at": "datetime",
}
VARIANCE_COLUMNS: Final = {
    "suite_id": "int",
    "versions": "int",
    "mean_spread": "float",
    "max_spread": "float",
}
SPREAD_BUCKET_COLUMNS: Final = {"label": "str", "versions": "int"}
VALIDATOR_DELTA_COLUMNS: Final = {
    "hotkey": "str",
    "mean_delta": "float",
    "delta_sd": "float",
    "versions_compared": "int",
    "pairs_evaluated": "int",
}
SCORE_INTERVAL_COLUMNS: Final = {
    "agent_version_id": "str",
    "mean": "float",
    "lower": "float",
    "upper": "float",
    "n_problems": "int",
    "n_draws": "int",
}


# --------------------------------------------------------------------------------------------- helpers
def iso(value: Time | None) -> str | None:
    """A time as ISO 8601 in UTC for the graph (naive values are UTC); None stays None."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat()


def _statuses(status: str | Sequence[str] | None) -> list[str] | None:
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    unknown = sorted({s.upper() for s in wanted} - set(RUN_STATUSES))
    if unknown:
        raise ValueError(f"unknown run status(es) {unknown}; known: {list(RUN_STATUSES)}")
    return [s.upper() for s in wanted]


def _run_filter(
    suite_id: int | None,
    since: Time | None,
    until: Time | None,
    status: str | Sequence[str] | None,
    validator_hotkey: str | None,
    agent_version_id: str | None,
) -> dict[str, Any]:
    values = {
        "suiteId": suite_id,
        "claimedAfter": iso(since),
        "claimedBefore": iso(until),
        "status": _statuses(status),
        "validatorHotkey": validator_hotkey,
        "agentVersionId": agent_version_id,
    }
    return {k: v for k, v in values.items() if v is not None}


def _window(since: Time | None, until: Time | None) -> dict[str, str] | None:
    values = {k: v for k, v in {"since": iso(since), "until": iso(until)}.items() if v is not None}
    return values or None


def _typed(
    nodes: Iterable[Mapping[str, Any]],
    columns: Mapping[str, str],
    *,
    rename: Mapping[str, str] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """``frame`` with graph names mapped to ours first (``evalRunId`` -> ``run_id``...)."""
    renamed = (_rename(n, rename) for n in nodes) if rename else nodes
    return frame(renamed, columns=columns, categories=categories)


def _rename(node: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {names.get(k, k): v for k, v in node.items()}


def _suite_ids(client: Client, suite_id: int | None) -> list[int]:
    if suite_id is not None:
        return [int(suite_id)]
    return [int(s["suiteId"]) for s in client.paginate(SUITES_QUERY, {}, ["suites"], page_size=PAGE_SIZE)]


# --------------------------------------------------------------------------------------------- tables
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


# ------------------------------------------------------------------------------------ the graph's own figures
def has_fields(client: Client, type_name: str, *fields: str) -> bool:
    """Whether the server's schema has every one of ``fields`` on ``type_name`` (introspection)."""
    found = client.query(FIELDS_QUERY, {"type": type_name}).get("__type")
    names = {f["name"] for f in (found or {}).get("fields") or []}
    return set(fields) <= names


def validator_reliability(
    client: Client, *, since: Time | None = None, until: Time | None = None
) -> pd.DataFrame:
    """``Validator.reliability(window)`` of every validator, one row each (runs claimed in the window).

    Status counts become n_<status> columns (0 when absent). Rates are over all runs in the window,
    durations are nearest-rank percentiles of finished runs, as the graph documents them.
    """
    variables = {"window": _window(since, until)}
    rows = []
    for node in client.paginate(VALIDATOR_RELIABILITY_QUERY, variables, ["validators"], page_size=PAGE_SIZE):
        r = dict(node["reliability"])
        counts = {f"n_{s.lower()}": 0 for s in RUN_STATUSES}
        counts |= {f"n_{c['status'].lower()}": c["count"] for c in r.pop("statuses")}
        rows.append({"hotkey": node["hotkey"], **r, **counts})
    return _typed(rows, RELIABILITY_COLUMNS)


@dataclass(frozen=True)
class Variance:
    """``Suite.validatorVariance(window)`` as frames."""

    summary: pd.DataFrame  # one row: suite_id, versions, mean_spread, max_spread
    buckets: pd.DataFrame  # label, versions (in bucket order)
    validators: pd.DataFrame  # hotkey, mean_delta, delta_sd, versions_compared, pairs_evaluated


def validator_variance(
    client: Client, suite_id: int, *, since: Time | None = None, until: Time | None = None
) -> Variance:
    """The ORO validator-variance view of a suite as the graph computes it (SQL aggregates)."""
    data = client.query(VALIDATOR_VARIANCE_QUERY, {"suite": str(suite_id), "window": _window(since, until)})
    suite = data.get("suite")
    if suite is None:
        raise ValueError(f"no suite {suite_id}")
    v = suite["validatorVariance"]
    summary = {
        "suiteId": suite["suiteId"],
        "versions": v["versions"],
        "meanSpread": v["meanSpread"],
        "maxSpread": v["maxSpread"],
    }
    return Variance(
        summary=_typed([summary], VARIANCE_COLUMNS),
        buckets=_typed(v["buckets"], SPREAD_BUCKET_COLUMNS),
        validators=_typed(v["validators"], VALIDATOR_DELTA_COLUMNS),
    )


def score_intervals(client: Client, agent_version_ids: Iterable[str]) -> pd.DataFrame:
    """``AgentVersion.scoreInterval`` of each version (the server's bootstrap), one row per version.

    Versions without an interval (no results yet) or unknown to the server get NaN values.
    """
    ids = list(dict.fromkeys(str(v) for v in agent_version_ids))
    rows = []
    for start in range(0, len(ids), ALIASES_PER_QUERY):
        chunk = ids[start : start + ALIASES_PER_QUERY]
        params = ", ".join(f"$v{i}: ID!" for i in range(len(chunk)))
        body = "\n".join(
            f"  v{i}: agentVersion(id: $v{i}) {{ {SCORE_INTERVAL_FIELDS} }}" for i in range(len(chunk))
        )
        data = client.query(
            f"query ScoreIntervals({params}) {{\n{body}\n}}", {f"v{i}": v for i, v in enumerate(chunk)}
        )
        for i, version in enumerate(chunk):
            interval = (data.get(f"v{i}") or {}).get("scoreInterval") or {}
            rows.append(
                {
                    "agent_version_id": version,
                    "mean": interval.get("mean"),
                    "lower": interval.get("lower"),
                    "upper": interval.get("upper"),
                    "n_problems": interval.get("problems"),
                    "n_draws": interval.get("draws"),
                }
            )
    return _typed(rows, SCORE_INTERVAL_COLUMNS)


# --------------------------------------------------------------------------------------------- races
RACE_STATUSES: Final = ("QUALIFYING_OPEN", "RACE_RUNNING", "RACE_COMPLETE", "CANCELLED")
QUALIFICATION_TYPES: Final = ("SCORED", "INCUMBENT")
RACE_PAGE: Final = 20  # races a page when their fields (at most 100 qualifiers a page) come along

RACE_FIELDS: Final = """
        raceId raceNumber suiteId status qualifyingThreshold maxQualifiers problemCount requiredSuccesses
        maxAttempts createdAt qualifyingClosesAt raceStartedAt raceDeadlineAt raceCompletedAt cancelledAt
        projectedCompletionAt seedCommitment revealedSecret drawSeed qualifierCount scoredCount winnerScore
        winner { agentVersionId minerHotkey }
"""
QUALIFIER_FIELDS: Final = """
agentVersionId minerHotkey agentName versionNumber qualificationType qualifyingScore enteredAt raceScore
raceRank finishedAt didNotFinish eliminatedAt
"""

RACES_QUERY: Final = f"""
query Races($suite: Int, $first: Int, $after: String) {{
  races(suiteId: $suite, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {RACE_FIELDS} }} }}
  }}
}}
"""

# A page of races with the first page of each race's field (a field is capped at ORO_RACE_MAX_QUALIFIERS).
RACE_QUALIFIERS_QUERY: Final = f"""
query RaceQualifiers($suite: Int, $first: Int, $after: String, $qualifiers: Int) {{
  races(suiteId: $suite, first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{
      raceId raceNumber suiteId
      qualifiers(first: $qualifiers) {{
        pageInfo {{ hasNextPage endCursor }}
        edges {{ node {{ {QUALIFIER_FIELDS} }} }}
      }}
    }} }}
  }}
}}
"""

QUALIFIERS_OF_RACE_QUERY: Final = f"""
query QualifiersOfRace($race: ID!, $first: Int, $after: String) {{
  race(id: $race) {{
    qualifiers(first: $first, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      edges {{ node {{ {QUALIFIER_FIELDS} }} }}
    }}
  }}
}}
"""

RACE_COLUMNS: Final = {
    "race_id": "str",
    "race_number": "int",
    "suite_id": "int",
    "status": "category",
    "qualifying_threshold": "float",
    "max_qualifiers": "int",
    "problem_count": "int",
    "required_successes": "int",
    "max_attempts": "int",
    "created_at": "datetime",
    "qualifying_closes_at": "datetime",
    "race_started_at": "datetime",
    "race_deadline_at": "datetime",
    "race_completed_at": "datetime",
    "cancelled_at": "datetime",
    "projected_completion_at": "datetime",
    "seed_commitment": "str",
    "revealed_secret": "str",
    "draw_seed": "str",
    "qualifier_count": "int",
    "scored_count": "int",
    "winner_score": "float",
    "winner_agent_version_id": "str",
    "winner_miner_hotkey": "str",
}
RACE_QUALIFIER_COLUMNS: Final = {
    "race_id": "str",
    "race_number": "int",
    "suite_id": "int",
    "agent_version_id": "str",
    "miner_hotkey": "str",
    "agent_name": "str",
    "version_number": "int",
    "qualification_type": "category",
    "qualifying_score": "float",
    "entered_at": "datetime",
    "race_score": "float",
    "race_rank": "int",
    "finished_at": "datetime",
    "did_not_finish": "bool",
    "eliminated_at": "datetime",
}


def races(client: Client, suite_id: int | None = None) -> pd.DataFrame:
    """Every race (of a suite, every suite when None), newest first: the cycle's times, the commitment
    and, once over, the revealed secret, the winner and its score."""
    rows = []
    for node in client.paginate(RACES_QUERY, {"suite": suite_id}, ["races"], page_size=PAGE_SIZE):
        winner = node.pop("winner") or {}
        rows.append(
            node
            | {
                "winnerAgentVersionId": winner.get("agentVersionId"),
                "winnerMinerHotkey": winner.get("minerHotkey"),
            }
        )
    return _typed(rows, RACE_COLUMNS, categories={"status": RACE_STATUSES})


def race_qualifiers(client: Client, suite_id: int | None = None) -> pd.DataFrame:
    """Every race's field, one row per qualifier (races newest first, each in the graph's field order:
    finishers by rank once complete). Race scores, ranks and who did not finish are null (false) while
    a race runs: the graph embargoes them until it completes."""
    variables = {"suite": suite_id, "qualifiers": PAGE_SIZE}
    rows: list[dict[str, Any]] = []
    for race in client.paginate(RACE_QUALIFIERS_QUERY, variables, ["races"], page_size=RACE_PAGE):
        head = {"raceId": race["raceId"], "raceNumber": race["raceNumber"], "suiteId": race["suiteId"]}
        connection = race["qualifiers"]
        nodes: Iterable[Mapping[str, Any]] = [edge["node"] for edge in connection["edges"]]
        if connection["pageInfo"]["hasNextPage"]:  # a field over a page: read it whole on its own
            nodes = client.paginate(
                QUALIFIERS_OF_RACE_QUERY,
                {"race": race["raceId"]},
                ["race", "qualifiers"],
                page_size=PAGE_SIZE,
            )
        rows.extend({**head, **node} for node in nodes)
    return _typed(rows, RACE_QUALIFIER_COLUMNS, categories={"qualification_type": QUALIFICATION_TYPES})


def problem_stats(
    client: Client,
    suite_id: int,
    *,
    since: Time | None = None,
    until: Time | None = None,
    race_id: str | None = None,
    included_only: bool = False,
) -> pd.DataFrame:
    """``Suite.problemStats(scope)``: each problem's attempts, pass and timeout rates, mean and median
    score, mean duration and discrimination over runs claimed in [since, until) (of ``race_id``, only
    included runs if asked), computed by the server; one row per problem in suite order.

    The definitions are ``metrics``': ``timeout_rate`` is ``timeout_loss``'s, ``discrimination`` is
    ``item_analysis``'s ``corrected_r`` (over the same results), so a notebook can read them instead
    of downloading every problem result.
    """
    scope: dict[str, Any] = dict(_window(since, until) or {})
    if race_id is not None:
        scope["raceId"] = str(race_id)
    if included_only:
        scope["includedOnly"] = True
    variables = {"suite": str(suite_id), "scope": scope or None}
    nodes = client.paginate(PROBLEM_STATS_QUERY, variables, ["suite", "problemStats"], page_size=PAGE_SIZE)
    return _typed(list(nodes), PROBLEM_STATS_COLUMNS)
