"""Shared by the frames: the page sizes, the graph's enums and the paging and typing helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import pandas as pd

from oro_graph.analytics.client import Client, frame
from oro_graph.analytics.frames.documents import SUITES_QUERY

PAGE_SIZE: Final = 100  # the graph's largest page (oro_graph.graphql.pagination.MAX_PAGE_SIZE)
ALIASES_PER_QUERY: Final = 25  # under the graph's alias budget (ORO_GRAPHQL_MAX_ALIASES, 30)

# The graph's enums, in schema order (tests/analytics/test_frames.py checks them against schema.graphql).
RUN_STATUSES: Final = ("CLAIMED", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "STALE", "CANCELLED")
PROBLEM_STATUSES: Final = ("PENDING", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED")
VERSION_STATES: Final = ("RECEIVED", "QUEUED", "RUNNING", "ELIGIBLE", "DISCARDED", "CANCELLED")
RELEASE_STATES: Final = ("HIDDEN", "RELEASED")
EXECUTION_KINDS: Final = ("LEGACY_SHOPPINGBENCH", "ENVPACK")
VALIDATOR_STATUSES: Final = ("AVAILABLE", "EVALUATING")

Time = datetime | pd.Timestamp | str


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
