"""Inputs that scope and order the graph's statistics and lists (kept apart from the types, so any
domain module can take them as arguments without importing another domain's types)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

import strawberry

from oro_graph.graphql.pagination import OrderDirection
from oro_graph.services import problemstats


@strawberry.input(
    description="Which runs problem statistics count: claimed in [since, until), of one race, and only "
    "included runs if asked; every condition given must hold, all runs when empty."
)
class ProblemStatsScope:
    since: datetime | None = strawberry.field(
        default=None, description="Runs claimed at or after this (UTC)."
    )
    until: datetime | None = strawberry.field(default=None, description="Runs claimed before this (UTC).")
    race_id: uuid.UUID | None = strawberry.field(default=None, description="Only this race's runs.")
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
