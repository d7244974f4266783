"""Races, their fields and the problem statistics as frames."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import pandas as pd

from oro_graph.analytics.client import Client
from oro_graph.analytics.frames.columns import PROBLEM_STATS_COLUMNS
from oro_graph.analytics.frames.common import PAGE_SIZE, Time, _typed, _window
from oro_graph.analytics.frames.documents import PROBLEM_STATS_QUERY

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
