"""Per-request DataLoaders, named ``<target>_by_<key>``: one batch (one ``runtime.db.run``) per edge.

Each batch runs a service reader in its own short-lived session and returns results in key order:
``None`` for a missing row, ``[]`` or an empty page for a parent without children. Paged edges
take ``(parent, Window)`` keys and read every parent's page in one statement per distinct window,
so the statement count follows the shape of the query, never its row count.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from strawberry.dataloader import DataLoader

from oro_graph import models
from oro_graph.db import Database
from oro_graph.graphql.filters import filtered_counts, filtered_pages
from oro_graph.graphql.reliability_types import reliability_loader, score_interval_loader
from oro_graph.services import agents, evaluations, leaderboard, pages, races, suites, validators
from oro_graph.services.pages import Page, Relation, Window

MAX_BATCH = 1000  # keys per statement; above this a batch is split (bounded IN lists)

PageKey = tuple[Any, Window]  # (parent key, window)
VersionAsOf = tuple[uuid.UUID, datetime | None]  # (agent version id, asOf instant or now)


def _one(db: Database, reader: Callable[..., dict[Any, Any]]) -> DataLoader[Any, Any]:
    async def load(keys: list[Any]) -> list[Any]:
        found = await db.run(reader, keys)
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load, max_batch_size=MAX_BATCH)


def _many(db: Database, reader: Callable[..., dict[Any, list[Any]]]) -> DataLoader[Any, list[Any]]:
    async def load(keys: list[Any]) -> list[list[Any]]:
        found = await db.run(reader, keys)
        return [found.get(key) or [] for key in keys]

    return DataLoader(load_fn=load, max_batch_size=MAX_BATCH)


def _grouped(keys: Iterable[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = {}
    for parent, extra in keys:
        groups.setdefault(extra, []).append(parent)
    return groups


Where = Callable[[], list[Any]] | None  # extra conditions on the children, made at load time


def _public_versions(db: Database) -> Where:
    """Versions the public may see (``services.agents.discloses``), as of the moment of the load."""
    return lambda: [agents.released_clause(db.settings)]


def _pages(db: Database, relation: Relation, where: Where = None) -> DataLoader[PageKey, Page[Any]]:
    async def load(keys: list[PageKey]) -> list[Page[Any]]:
        found: dict[PageKey, Page[Any]] = {}
        for window, parents in _grouped(keys).items():  # one statement per distinct window
            extra = where() if where else []
            by_parent = await db.run(pages.relation_pages, relation, parents, window, extra)
            found.update({(parent, window): page for parent, page in by_parent.items()})
        return [found.get(key, pages_empty(key[1])) for key in keys]

    return DataLoader(load_fn=load, max_batch_size=MAX_BATCH)


def pages_empty(window: Window) -> Page[Any]:
    """The page of a parent without children: still says whether a cursor pointed past something."""
    return Page([], [], has_next=window.before is not None, has_previous=window.after is not None)


def _counts(db: Database, relation: Relation, where: Where = None) -> DataLoader[Any, int]:
    async def load(keys: list[Any]) -> list[int]:
        found = await db.run(pages.relation_counts, relation, keys, where() if where else [])
        return [found.get(key, 0) for key in keys]

    return DataLoader(load_fn=load, max_batch_size=MAX_BATCH)


def _board_rows(db: Database) -> DataLoader[VersionAsOf, leaderboard.BoardRow | None]:
    async def load(keys: list[VersionAsOf]) -> list[leaderboard.BoardRow | None]:
        found: dict[VersionAsOf, leaderboard.BoardRow] = {}
        for as_of, ids in _grouped(keys).items():
            rows = await db.run(leaderboard.board_rows_by_version_ids, ids, as_of=as_of)
            found.update({(vid, as_of): row for vid, row in rows.items()})
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load, max_batch_size=MAX_BATCH)


class Loaders:
    """Every loader of one request; built fresh per request so no cache outlives it."""

    def __init__(self, db: Database) -> None:
        # problemstats builds on the context (and so on this module): imported when a request starts.
        from oro_graph.graphql.problemstats import problem_stats_loader

        self.problem_stats_by_suite_id_and_scope = problem_stats_loader(db)
        self.reliability_by_hotkey_and_window = reliability_loader(db)
        self.score_interval_by_version_id = score_interval_loader(db)
        self.suite_by_id: DataLoader[int, models.Suite | None] = _one(db, suites.suites_by_ids)
        self.problem_by_id: DataLoader[uuid.UUID, models.Problem | None] = _one(db, suites.problems_by_ids)
        self.miner_by_hotkey: DataLoader[str, models.Miner | None] = _one(db, agents.miners_by_hotkeys)
        self.agent_by_id: DataLoader[uuid.UUID, models.Agent | None] = _one(db, agents.agents_by_ids)
        self.agent_version_by_id: DataLoader[uuid.UUID, models.AgentVersion | None] = _one(
            db, agents.versions_by_ids
        )
        self.latest_version_by_agent_id: DataLoader[uuid.UUID, models.AgentVersion | None] = _one(
            db, agents.latest_versions_by_agent_ids
        )
        self.work_item_by_id: DataLoader[uuid.UUID, models.WorkItem | None] = _one(
            db, agents.work_items_by_ids
        )
        self.work_item_by_version_id: DataLoader[uuid.UUID, models.WorkItem | None] = _one(
            db, agents.work_items_by_version_ids
        )
        self.run_by_id: DataLoader[uuid.UUID, models.EvaluationRun | None] = _one(db, evaluations.runs_by_ids)
        self.liveness_by_run_id: DataLoader[uuid.UUID, tuple[datetime, datetime | None] | None] = _one(
            db, evaluations.liveness_by_run_ids
        )
        self.result_by_id: DataLoader[uuid.UUID, models.ProblemResult | None] = _one(
            db, evaluations.results_by_ids
        )
        self.validator_by_hotkey: DataLoader[str, validators.ValidatorView | None] = _one(
            db, validators.validators_by_hotkeys
        )
        self.validator_hotkey_by_ss58: DataLoader[str, models.Hotkey | None] = _one(
            db, validators.validator_hotkeys_by_ss58
        )
        self.progress_by_run_id: DataLoader[uuid.UUID, float | None] = _one(
            db, validators.progress_by_run_ids
        )
        self.board_row_by_version_id = _board_rows(db)
        self.race_by_id: DataLoader[uuid.UUID, models.Race | None] = _one(db, races.races_by_ids)
        self.race_variance_by_race_id: DataLoader[uuid.UUID, races.Variance | None] = _one(
            db, races.variances_by_race_ids
        )
        self.race_selection_by_hotkey: DataLoader[str, races.SelectionView | None] = _one(
            db, races.selections_by_hotkeys
        )
        # A race's qualifiers are few (at most its max_qualifiers): one list per race, paged in memory.
        self.qualifiers_by_race_id: DataLoader[uuid.UUID, list[races.QualifierView]] = _many(
            db, races.qualifiers_by_race_ids
        )
        self.race_entries_by_version_id: DataLoader[uuid.UUID, list[races.Entry]] = _many(
            db, races.entries_by_version_ids
        )
        self.race_runs_by_race_and_version: DataLoader[races.RaceVersion, list[models.EvaluationRun]] = _many(
            db, races.race_runs_by_keys
        )

        self.problems_by_suite_id: DataLoader[int, list[models.Problem]] = _many(
            db, suites.problems_by_suite_ids
        )
        self.runs_by_version_id: DataLoader[uuid.UUID, list[models.EvaluationRun]] = _many(
            db, evaluations.runs_by_version_ids
        )
        self.results_by_run_id: DataLoader[uuid.UUID, list[models.ProblemResult]] = _many(
            db, evaluations.results_by_run_ids
        )

        self.problem_page_by_suite_id = _pages(db, pages.PROBLEMS_OF_SUITE)
        self.problem_count_by_suite_id = _counts(db, pages.PROBLEMS_OF_SUITE)
        # The graph's lists are public: versions not yet released are left out (services.agents.discloses).
        self.version_page_by_suite_id = _pages(db, pages.VERSIONS_OF_SUITE, _public_versions(db))
        self.version_count_by_suite_id = _counts(db, pages.VERSIONS_OF_SUITE, _public_versions(db))
        self.agent_page_by_miner_hotkey = _pages(db, pages.AGENTS_OF_MINER)
        self.agent_count_by_miner_hotkey = _counts(db, pages.AGENTS_OF_MINER)
        self.version_page_by_agent_id = _pages(db, pages.VERSIONS_OF_AGENT, _public_versions(db))
        self.version_count_by_agent_id = _counts(db, pages.VERSIONS_OF_AGENT, _public_versions(db))
        self.run_page_by_version_id = _pages(db, pages.RUNS_OF_VERSION)
        self.run_count_by_version_id = _counts(db, pages.RUNS_OF_VERSION)
        self.run_page_by_validator_hotkey = _pages(db, pages.RUNS_OF_VALIDATOR)
        self.run_count_by_validator_hotkey = _counts(db, pages.RUNS_OF_VALIDATOR)
        self.result_page_by_run_id = _pages(db, pages.RESULTS_OF_RUN)
        self.result_count_by_run_id = _counts(db, pages.RESULTS_OF_RUN)
        # Filtered and ordered edges: keys carry the filter (services.filters), a statement per distinct one.
        self.filtered_result_pages = filtered_pages(db, pages.RESULTS_OF_RUN)
        self.filtered_result_counts = filtered_counts(db, pages.RESULTS_OF_RUN)
        self.filtered_version_pages = filtered_pages(db, pages.VERSIONS_OF_SUITE, _public_versions(db))
        self.filtered_version_counts = filtered_counts(db, pages.VERSIONS_OF_SUITE, _public_versions(db))

    def prime_versions(self, rows: Iterable[models.AgentVersion]) -> None:
        self.agent_version_by_id.prime_many({row.id: row for row in rows})

    def prime_agents(self, rows: Iterable[models.Agent]) -> None:
        self.agent_by_id.prime_many({row.id: row for row in rows})

    def prime_runs(self, rows: Iterable[models.EvaluationRun]) -> None:
        self.run_by_id.prime_many({row.id: row for row in rows})

    def forget_run(self, run_id: uuid.UUID) -> None:
        """After a write to a run: later reads in this request load it (and its progress) afresh."""
        for loader in (self.run_by_id, self.progress_by_run_id, self.result_page_by_run_id):
            for key in [
                k
                for k in loader.cache_map.cache_map
                if k == run_id or (isinstance(k, tuple) and k[0] == run_id)
            ]:
                loader.clear(key)
