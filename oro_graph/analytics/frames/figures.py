"""The graph's own reliability figures as frames, for notebooks that cross-check their numbers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from oro_graph.analytics.client import Client
from oro_graph.analytics.frames.columns import (
    RELIABILITY_COLUMNS,
    SCORE_INTERVAL_COLUMNS,
    SPREAD_BUCKET_COLUMNS,
    VALIDATOR_DELTA_COLUMNS,
    VARIANCE_COLUMNS,
)
from oro_graph.analytics.frames.common import (
    ALIASES_PER_QUERY,
    PAGE_SIZE,
    RUN_STATUSES,
    Time,
    _typed,
    _window,
)
from oro_graph.analytics.frames.documents import (
    FIELDS_QUERY,
    SCORE_INTERVAL_FIELDS,
    VALIDATOR_RELIABILITY_QUERY,
    VALIDATOR_VARIANCE_QUERY,
)


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
