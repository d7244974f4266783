"""One typed frame per table of the graph: GraphQL in, tidy pandas frames out.

Every table is read by a function that takes a ``Client`` first::

    from oro_graph.analytics import Client, frames
    client = Client.from_env()                                  # ORO_GRAPHQL_URL
    runs = frames.runs(client, suite_id=1, since="2026-11-01", status=["SUCCESS"])
    results = frames.problem_results(client, suite_id=1, since="2026-11-01")

Tables: ``suites``, ``problems``, ``agent_versions``, ``runs``, ``problem_results`` (one row per
problem of a run, never a list column), ``leaderboard``, ``top_agent``, ``top_history`` and
``validators``. The graph's own reliability figures have frames too (``validator_reliability``,
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

from oro_graph.analytics.frames.columns import (
    AGENT_VERSION_COLUMNS,
    LEADERBOARD_COLUMNS,
    PROBLEM_COLUMNS,
    PROBLEM_RESULT_COLUMNS,
    PROBLEM_STATS_COLUMNS,
    RELIABILITY_COLUMNS,
    RUN_COLUMNS,
    SCORE_INTERVAL_COLUMNS,
    SPREAD_BUCKET_COLUMNS,
    SUITE_COLUMNS,
    TOP_AGENT_COLUMNS,
    TOP_HISTORY_COLUMNS,
    VALIDATOR_COLUMNS,
    VALIDATOR_DELTA_COLUMNS,
    VARIANCE_COLUMNS,
)
from oro_graph.analytics.frames.common import (
    ALIASES_PER_QUERY,
    EXECUTION_KINDS,
    PAGE_SIZE,
    PROBLEM_STATUSES,
    RELEASE_STATES,
    RUN_STATUSES,
    VALIDATOR_STATUSES,
    VERSION_STATES,
    Time,
    iso,
)
from oro_graph.analytics.frames.documents import (
    AGENT_VERSIONS_QUERY,
    FIELDS_QUERY,
    LEADERBOARD_QUERY,
    NEWEST_CLAIM_QUERY,
    PROBLEM_RESULTS_QUERY,
    PROBLEM_STATS_QUERY,
    PROBLEMS_QUERY,
    RESULT_FIELDS,
    RUN_FIELDS,
    RUN_RESULTS_QUERY,
    RUNS_QUERY,
    SCORE_INTERVAL_FIELDS,
    SUITES_QUERY,
    TOP_AGENT_QUERY,
    TOP_HISTORY_QUERY,
    VALIDATOR_RELIABILITY_QUERY,
    VALIDATOR_VARIANCE_QUERY,
    VALIDATORS_QUERY,
)
from oro_graph.analytics.frames.figures import (
    Variance,
    has_fields,
    score_intervals,
    validator_reliability,
    validator_variance,
)
from oro_graph.analytics.frames.race_tables import (
    QUALIFICATION_TYPES,
    QUALIFIER_FIELDS,
    QUALIFIERS_OF_RACE_QUERY,
    RACE_COLUMNS,
    RACE_FIELDS,
    RACE_PAGE,
    RACE_QUALIFIER_COLUMNS,
    RACE_QUALIFIERS_QUERY,
    RACE_STATUSES,
    RACES_QUERY,
    problem_stats,
    race_qualifiers,
    races,
)
from oro_graph.analytics.frames.tables import (
    agent_versions,
    leaderboard,
    newest_claim,
    problem_results,
    problems,
    runs,
    suites,
    top_agent,
    top_history,
    validators,
)

__all__ = [
    "AGENT_VERSIONS_QUERY",
    "AGENT_VERSION_COLUMNS",
    "ALIASES_PER_QUERY",
    "EXECUTION_KINDS",
    "FIELDS_QUERY",
    "LEADERBOARD_COLUMNS",
    "LEADERBOARD_QUERY",
    "NEWEST_CLAIM_QUERY",
    "PAGE_SIZE",
    "PROBLEMS_QUERY",
    "PROBLEM_COLUMNS",
    "PROBLEM_RESULTS_QUERY",
    "PROBLEM_RESULT_COLUMNS",
    "PROBLEM_STATS_COLUMNS",
    "PROBLEM_STATS_QUERY",
    "PROBLEM_STATUSES",
    "QUALIFICATION_TYPES",
    "QUALIFIERS_OF_RACE_QUERY",
    "QUALIFIER_FIELDS",
    "RACES_QUERY",
    "RACE_COLUMNS",
    "RACE_FIELDS",
    "RACE_PAGE",
    "RACE_QUALIFIERS_QUERY",
    "RACE_QUALIFIER_COLUMNS",
    "RACE_STATUSES",
    "RELEASE_STATES",
    "RELIABILITY_COLUMNS",
    "RESULT_FIELDS",
    "RUNS_QUERY",
    "RUN_COLUMNS",
    "RUN_FIELDS",
    "RUN_RESULTS_QUERY",
    "RUN_STATUSES",
    "SCORE_INTERVAL_COLUMNS",
    "SCORE_INTERVAL_FIELDS",
    "SPREAD_BUCKET_COLUMNS",
    "SUITES_QUERY",
    "SUITE_COLUMNS",
    "TOP_AGENT_COLUMNS",
    "TOP_AGENT_QUERY",
    "TOP_HISTORY_COLUMNS",
    "TOP_HISTORY_QUERY",
    "Time",
    "VALIDATORS_QUERY",
    "VALIDATOR_COLUMNS",
    "VALIDATOR_DELTA_COLUMNS",
    "VALIDATOR_RELIABILITY_QUERY",
    "VALIDATOR_STATUSES",
    "VALIDATOR_VARIANCE_QUERY",
    "VARIANCE_COLUMNS",
    "VERSION_STATES",
    "Variance",
    "agent_versions",
    "has_fields",
    "iso",
    "leaderboard",
    "newest_claim",
    "problem_results",
    "problem_stats",
    "problems",
    "race_qualifiers",
    "races",
    "runs",
    "score_intervals",
    "suites",
    "top_agent",
    "top_history",
    "validator_reliability",
    "validator_variance",
    "validators",
]
