"""`aggregates`: the typed figures a dashboard draws (services.aggregates; one SQL statement each)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry

from oro_graph.graphql.context import Info
from oro_graph.services import aggregates as service

Since = Annotated[
    datetime | None,
    strawberry.argument(
        description="Start of the window (UTC, inclusive); "
        f"`until` minus {service.DEFAULT_DAYS} days if omitted."
    ),
]
Until = Annotated[
    datetime | None, strawberry.argument(description="End of the window (UTC, exclusive); now if omitted.")
]


@strawberry.type(description="A count for one UTC calendar day.")
class DayCount:
    day: date = strawberry.field(description="The UTC day.")
    count: int = strawberry.field(description="How many on that day.")


@strawberry.type(description="One validator's runs claimed on one UTC day, by outcome.")
class ValidatorDayCount:
    day: date = strawberry.field(description="The UTC day the runs were claimed.")
    validator_hotkey: str = strawberry.field(description="The validator's hotkey.")
    runs: int = strawberry.field(description="Runs it claimed that day.")
    successes: int = strawberry.field(description="Of those, SUCCESS.")
    failures: int = strawberry.field(description="Of those, FAILED or TIMED_OUT.")
    stale: int = strawberry.field(description="Of those, STALE (the lease lapsed).")


@strawberry.type(description="One bin of a score histogram.")
class ScoreBin:
    lower: float = strawberry.field(description="The bin's lower edge (inclusive).")
    upper: float = strawberry.field(
        description="The bin's upper edge (exclusive, except 1.0 in the last bin)."
    )
    count: int = strawberry.field(description="Versions whose final score falls in the bin.")


@strawberry.type(description=f"The board's final scores in {service.HISTOGRAM_BINS} equal bins over [0, 1].")
class ScoreHistogram:
    suite_id: int | None = strawberry.field(description="The suite counted; null when no suite is active.")
    bins: list[ScoreBin] = strawberry.field(description=f"{service.HISTOGRAM_BINS} bins, lowest first.")

    @strawberry.field(description="Versions counted (the sum of the bins).")
    def total(self) -> int:
        return sum(b.count for b in self.bins)


@strawberry.type(
    description="Figures for dashboards, each one SQL statement. Windows are [since, until), at most "
    f"{service.MAX_DAYS} days; days are UTC calendar days and days without rows are absent."
)
class Aggregates:
    @strawberry.field(
        description="Agent versions submitted per UTC day (all suites unless `suiteId` is given)."
    )
    async def submissions_per_day(
        self,
        info: Info,
        since: Since = None,
        until: Until = None,
        suite_id: Annotated[
            int | None, strawberry.argument(description="Only this suite's versions.")
        ] = None,
    ) -> list[DayCount]:
        rows = await info.context.runtime.db.run(
            service.submissions_per_day, since=since, until=until, suite_id=suite_id
        )
        return [DayCount(day=r.day, count=r.count) for r in rows]

    @strawberry.field(description="Runs claimed per validator per UTC day, by day then hotkey.")
    async def runs_per_validator_per_day(
        self, info: Info, since: Since = None, until: Until = None
    ) -> list[ValidatorDayCount]:
        rows = await info.context.runtime.db.run(service.runs_per_validator_per_day, since=since, until=until)
        return [
            ValidatorDayCount(
                day=r.day,
                validator_hotkey=r.validator_hotkey,
                runs=r.runs,
                successes=r.successes,
                failures=r.failures,
                stale=r.stale,
            )
            for r in rows
        ]

    @strawberry.field(
        description="The current board's final scores (the active suite unless `suiteId` is given)."
    )
    async def score_histogram(
        self,
        info: Info,
        suite_id: Annotated[
            int | None, strawberry.argument(description="The suite; the active one if omitted.")
        ] = None,
    ) -> ScoreHistogram:
        found = await info.context.runtime.db.run(service.score_histogram, suite_id=suite_id)
        n = service.HISTOGRAM_BINS
        bins = [ScoreBin(lower=i / n, upper=(i + 1) / n, count=c) for i, c in enumerate(found.counts)]
        return ScoreHistogram(suite_id=found.suite_id, bins=bins)


@strawberry.type
class AggregateQuery:
    @strawberry.field(
        description="Dashboard figures: submissions and runs per day, the board's score histogram."
    )
    def aggregates(self) -> Aggregates:
        return Aggregates()
