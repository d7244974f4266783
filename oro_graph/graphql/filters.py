"""Inputs that scope and order the graph's statistics and lists (kept apart from the types, so any
domain module can take them as arguments without importing another domain's types)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from oro_graph.db import Database
from oro_graph.graphql.enums import AgentVersionState, ProblemStatus, ValidatorStatus
from oro_graph.graphql.pagination import Connection, OrderDirection, make_window, to_connection
from oro_graph.services import filters, pages, problemstats

if TYPE_CHECKING:
    from oro_graph.graphql.context import Info

NodeT = TypeVar("NodeT")


@strawberry.input(
    description="Which runs problem statistics count: claimed in [since, until), of one race, and only "
    "included runs if asked; every condition given must hold, all runs when empty."
)
class ProblemStatsScope:
    since: datetime | None = strawberry.field(
        default=None, description="Runs claimed at or after this (UTC)."
    )
    until: datetime | None = strawberry.field(default=None, description="Runs claimed before this (UTC).")
    race_id: uuid.UUID | None = strawberry.field(
        default=None,
        description="Only this race's runs. Without it, the suite's own runs (race runs see only a "
        "race's drawn problems).",
    )
    included_only: bool = strawberry.field(
        default=False,
        description="Only runs counted in a final score (`isIncluded`), as the notebooks' item analysis.",
    )

    def to_service(self) -> problemstats.Scope:
        return problemstats.Scope(
            since=self.since, until=self.until, race_id=self.race_id, included_only=self.included_only
        ).check()


@strawberry.enum(
    description="What problem statistics can be sorted by (nulls last either way, ties by position)."
)
class ProblemStatsOrderField(Enum):
    POSITION = strawberry.enum_value("position", description="The problem's place in its suite.")
    ATTEMPTS = strawberry.enum_value("attempts", description="Finished attempts.")
    PASS_RATE = strawberry.enum_value("pass_rate", description="Share of attempts that are SUCCESS.")
    MEAN_SCORE = strawberry.enum_value("mean_score", description="Mean attempt score.")
    MEDIAN_SCORE = strawberry.enum_value("median_score", description="Median attempt score.")
    MEAN_DURATION = strawberry.enum_value("mean_duration", description="Mean execution time.")
    TIMEOUT_RATE = strawberry.enum_value("timeout_rate", description="Share of attempts that TIMED_OUT.")
    DISCRIMINATION = strawberry.enum_value("discrimination", description="Corrected item-total correlation.")


@strawberry.input(description="Sort order of problem statistics.")
class ProblemStatsOrder:
    field: ProblemStatsOrderField = strawberry.field(description="The sort key.")
    direction: OrderDirection = strawberry.field(default=OrderDirection.ASC, description="ASC or DESC.")


# Filters and orders of lists (services.filters builds the SQL) ------------------------------------------


def _values(items: list[Any] | None) -> tuple[str, ...] | None:
    return tuple(i.value for i in items) if items is not None else None


def enum_key(member: Enum) -> str:
    """The service's name of a GraphQL enum member: its value (strawberry.enum_value members hold the
    string at run time, though mypy sees the EnumValueDefinition; a strawberry.enum(...) of a domain
    enum is no type to mypy)."""
    value: str = member.value
    return value


@strawberry.input(
    description="Which problem results of a run; every condition given must hold. "
    f"Lists: at most {filters.MAX_LIST}."
)
class ProblemResultFilter:
    status: list[ProblemStatus] | None = strawberry.field(default=None, description="Any of these statuses.")
    problem_id: uuid.UUID | None = strawberry.field(default=None, description="For this problem.")
    category: str | None = strawberry.field(default=None, description="For problems of this category.")
    difficulty: str | None = strawberry.field(default=None, description="For problems of this difficulty.")


@strawberry.enum(description="What problem results can be sorted by (nulls last either way, ties by id).")
class ProblemResultOrderField(Enum):
    UPDATED_AT = strawberry.enum_value("updated_at", description="When the result was last reported.")
    SCORE = strawberry.enum_value("score", description="The problem score.")
    EXECUTION_TIME = strawberry.enum_value("execution_time", description="The execution time.")
    POSITION = strawberry.enum_value("position", description="The problem's place in its suite.")


@strawberry.input(description="Sort order of problem results.")
class ProblemResultOrder:
    field: ProblemResultOrderField = strawberry.field(description="The sort key.")
    direction: OrderDirection = strawberry.field(default=OrderDirection.ASC, description="ASC or DESC.")


def result_filter(
    spec: ProblemResultFilter | None, order: ProblemResultOrder | None
) -> filters.ResultFilter | None:
    """The service's filter, or None for the plain edge (no filter and no order given)."""
    if spec is None and order is None:
        return None
    spec = spec or ProblemResultFilter()
    return filters.ResultFilter(
        statuses=_values(spec.status),
        problem_id=spec.problem_id,
        category=spec.category,
        difficulty=spec.difficulty,
        order_by=enum_key(order.field) if order else "updated_at",
        descending=order is not None and order.direction == OrderDirection.DESC,
    ).check()


@strawberry.input(
    description=f"Which agent versions; every condition given must hold. Lists: at most {filters.MAX_LIST}."
)
class AgentVersionFilter:
    state: list[AgentVersionState] | None = strawberry.field(default=None, description="Any of these states.")
    submitted_after: datetime | None = strawberry.field(
        default=None, description="Submitted at or after (UTC)."
    )
    submitted_before: datetime | None = strawberry.field(default=None, description="Submitted before (UTC).")
    miner_hotkey: str | None = strawberry.field(default=None, description="Submitted by this miner.")


@strawberry.enum(description="What agent versions can be sorted by (nulls last either way, ties by id).")
class AgentVersionOrderField(Enum):
    SUBMITTED_AT = strawberry.enum_value("submitted_at", description="Submission time.")
    FINAL_SCORE = strawberry.enum_value("final_score", description="The final score.")
    ELIGIBLE_AT = strawberry.enum_value("eligible_at", description="When it became eligible.")


@strawberry.input(description="Sort order of agent versions.")
class AgentVersionOrder:
    field: AgentVersionOrderField = strawberry.field(description="The sort key.")
    direction: OrderDirection = strawberry.field(default=OrderDirection.ASC, description="ASC or DESC.")


def version_filter(
    spec: AgentVersionFilter | None, order: AgentVersionOrder | None
) -> filters.VersionFilter | None:
    if spec is None and order is None:
        return None
    spec = spec or AgentVersionFilter()
    return filters.VersionFilter(
        states=_values(spec.state),
        submitted_after=spec.submitted_after,
        submitted_before=spec.submitted_before,
        miner_hotkey=spec.miner_hotkey,
        order_by=enum_key(order.field) if order else "submitted_at",
        descending=order is not None and order.direction == OrderDirection.DESC,
    ).check()


@strawberry.enum(description="A validator reliability flag, as the notebooks raise it.")
class ValidatorFlag(Enum):
    BIASED = strawberry.enum_value("biased", description="Scores away from its peers'.")
    STALE = strawberry.enum_value("stale", description="Lets leases lapse too often.")
    SLOW = strawberry.enum_value("slow", description="Runs take much longer than other validators'.")


@strawberry.input(description="Which validators; every condition given must hold.")
class ValidatorFilter:
    status: ValidatorStatus | None = strawberry.field(
        default=None, description="EVALUATING (holds a live lease) or AVAILABLE."
    )
    flags: list[ValidatorFlag] | None = strawberry.field(
        default=None,
        description="Any of these reliability flags holds, over all its runs, by the notebooks' rules and "
        f"thresholds: BIASED (|mean delta vs peers| > {filters.BIAS_THRESHOLD} on {filters.MIN_VERSIONS}+ "
        f"versions), STALE (STALE share of closed runs > {filters.STALE_THRESHOLD} over "
        f"{filters.MIN_RUNS}+), "
        f"SLOW (p95 duration > {filters.DURATION_MULTIPLE}x the median validator's, {filters.MIN_RUNS}+ "
        "finished runs; the notebooks' timeout rule is not applied).",
    )
    last_seen_after: datetime | None = strawberry.field(
        default=None, description="Last seen at or after (UTC)."
    )
    last_seen_before: datetime | None = strawberry.field(default=None, description="Last seen before (UTC).")


@strawberry.enum(description="What validators can be sorted by (nulls last either way, ties by hotkey).")
class ValidatorOrderField(Enum):
    HOTKEY = strawberry.enum_value("hotkey", description="The SS58 hotkey.")
    LAST_SEEN_AT = strawberry.enum_value("last_seen_at", description="Its last signed call.")
    LAST_CLAIM_AT = strawberry.enum_value("last_claim_at", description="Its last claim.")


@strawberry.input(description="Sort order of validators.")
class ValidatorOrder:
    field: ValidatorOrderField = strawberry.field(description="The sort key.")
    direction: OrderDirection = strawberry.field(default=OrderDirection.ASC, description="ASC or DESC.")


def validator_filter(spec: ValidatorFilter | None, order: ValidatorOrder | None) -> filters.ValidatorFilter:
    spec = spec or ValidatorFilter()
    return filters.ValidatorFilter(
        status=enum_key(spec.status) if spec.status is not None else None,
        flags=_values(spec.flags),
        last_seen_after=spec.last_seen_after,
        last_seen_before=spec.last_seen_before,
        order_by=enum_key(order.field) if order else "hotkey",
        descending=order is not None and order.direction == OrderDirection.DESC,
    ).check()


@strawberry.input(
    description="A version's mean score on one problem category (its included runs, a missing score as 0)."
)
class CategoryScoreFilter:
    category: str = strawberry.field(description="The problem category.")
    min_mean_score: float | None = strawberry.field(default=None, description="At least this mean score.")
    max_mean_score: float | None = strawberry.field(default=None, description="At most this mean score.")


@strawberry.input(
    description="Which board entries; every condition given must hold. Ranks stay the whole board's."
)
class LeaderboardFilter:
    min_score: float | None = strawberry.field(default=None, description="Final score at least this.")
    max_score: float | None = strawberry.field(default=None, description="Final score at most this.")
    miner_hotkey: str | None = strawberry.field(default=None, description="Versions of this miner.")
    category: CategoryScoreFilter | None = strawberry.field(
        default=None, description="Versions with a mean score in this range on one problem category."
    )

    def to_service(self) -> filters.BoardFilter:
        return filters.BoardFilter(
            min_score=self.min_score,
            max_score=self.max_score,
            miner_hotkey=self.miner_hotkey,
            category=self.category.category if self.category else None,
            min_category_score=self.category.min_mean_score if self.category else None,
            max_category_score=self.category.max_mean_score if self.category else None,
        ).check()


# Loaders of filtered edges: (parent, filter, window) keys, one statement per distinct (filter, window)

Spec = filters.ResultFilter | filters.VersionFilter
Where = Callable[[], list[Any]] | None


def filtered_pages(
    db: Database, relation: pages.Relation, where: Where = None
) -> DataLoader[Any, pages.Page[Any]]:
    async def load(keys: list[tuple[Any, Spec, pages.Window]]) -> list[pages.Page[Any]]:
        groups: dict[tuple[Spec, pages.Window], list[Any]] = {}
        for parent, spec, window in keys:
            groups.setdefault((spec, window), []).append(parent)
        found: dict[Any, pages.Page[Any]] = {}
        for (spec, window), parents in groups.items():
            extra = where() if where else []
            by_parent = await db.run(filters.filtered_relation_pages, relation, spec, parents, window, extra)
            found.update({(p, spec, window): page for p, page in by_parent.items()})
        return [found.get(key) or _empty(key[2]) for key in keys]

    return DataLoader(load_fn=load, max_batch_size=1000)


def filtered_counts(db: Database, relation: pages.Relation, where: Where = None) -> DataLoader[Any, int]:
    async def load(keys: list[tuple[Any, Spec]]) -> list[int]:
        groups: dict[Spec, list[Any]] = {}
        for parent, spec in keys:
            groups.setdefault(spec, []).append(parent)
        found: dict[Any, int] = {}
        for spec, parents in groups.items():
            extra = where() if where else []
            counts = await db.run(filters.filtered_relation_counts, relation, spec, parents, extra)
            found.update({(p, spec): n for p, n in counts.items()})
        return [found.get(key, 0) for key in keys]

    return DataLoader(load_fn=load, max_batch_size=1000)


def _empty(window: pages.Window) -> pages.Page[Any]:
    return pages.Page([], [], has_next=window.before is not None, has_previous=window.after is not None)


async def filtered_edge(
    info: Info, which: str, parent: Any, spec: Spec, convert: Callable[[Any], NodeT],
    first: int | None, after: str | None, last: int | None, before: str | None,
) -> Connection[NodeT]:  # fmt: skip
    """A filtered, ordered one-to-many edge (``which``: "result" or "version") as a connection."""
    loaders = info.context.loaders
    page_loader = loaders.filtered_result_pages if which == "result" else loaders.filtered_version_pages
    count_loader = loaders.filtered_result_counts if which == "result" else loaders.filtered_version_counts
    name = f"{which}.{spec.order_by}.{'desc' if spec.descending else 'asc'}"
    window = make_window(name, first, after, last, before)
    page = await page_loader.load((parent, spec, window))

    async def total() -> int:
        return await count_loader.load((parent, spec))

    return to_connection(page, name, convert, total)
