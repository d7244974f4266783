"""Per-problem statistics in the graph: `Problem.stats` and `Suite.problemStats`
(services.problemstats computes them; one loader batch per scope, flat in the number of results)."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.dataloader import DataLoader

from oro_graph.db import Database
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.filters import ProblemStatsOrder, ProblemStatsOrderField, ProblemStatsScope, enum_key
from oro_graph.graphql.pagination import Connection, OrderDirection, make_window, to_connection
from oro_graph.services import problemstats

SuiteScope = tuple[int, problemstats.Scope]


def problem_stats_loader(db: Database) -> DataLoader[SuiteScope, dict[uuid.UUID, problemstats.ProblemStats]]:
    """(suite id, scope) -> every problem's statistics; one read transaction per distinct scope."""

    async def load(keys: list[SuiteScope]) -> list[dict[uuid.UUID, problemstats.ProblemStats]]:
        groups: dict[problemstats.Scope, list[int]] = {}
        for suite_id, scope in keys:
            groups.setdefault(scope, []).append(suite_id)
        found: dict[SuiteScope, dict[uuid.UUID, problemstats.ProblemStats]] = {}
        for scope, suite_ids in groups.items():
            stats = await db.run(problemstats.stats_by_suite_ids, suite_ids, scope=scope)
            found.update({(s, scope): v for s, v in stats.items()})
        return [found[key] for key in keys]

    return DataLoader(load_fn=load, max_batch_size=1000)


@strawberry.type(
    description="One problem's record over a scope of runs. An attempt is a finished problem result "
    "(SUCCESS, FAILED, TIMED_OUT or SKIPPED); a missing score counts as 0. Rates and means are null "
    "without attempts. The suite's own runs without a window (every run or the included ones) are read "
    "from running totals the database keeps in the transaction that writes each result, so they are "
    "as current as the results; a window (`since`, `until`) or a race aggregates its runs' results."
)
class ProblemStatistics:
    problem_id: uuid.UUID = strawberry.field(description="The problem's id.")
    position: int = strawberry.field(description="Its place in the suite, from 0.")
    attempts: int = strawberry.field(description="Finished attempts in the scope.")
    passes: int = strawberry.field(description="Attempts with status SUCCESS.")
    timeouts: int = strawberry.field(description="Attempts with status TIMED_OUT.")
    versions: int = strawberry.field(description="Agent versions with at least one attempt.")
    pass_rate: float | None = strawberry.field(description="passes / attempts.")
    timeout_rate: float | None = strawberry.field(
        description="timeouts / attempts (the notebooks' timeout rate)."
    )
    mean_score: float | None = strawberry.field(description="Mean attempt score.")
    median_score: float | None = strawberry.field(
        description="Median attempt score (the middle two averaged), exact."
    )
    mean_duration_seconds: float | None = strawberry.field(
        description="Mean execution time of the attempts that reported one."
    )
    discrimination: float | None = strawberry.field(
        description="Corrected item-total correlation: across versions, the Pearson r between the version's "
        "mean score on this problem and its mean on the suite's other problems (the notebooks' "
        "`corrected_r`); null with fewer than 3 versions or without variance (from the running totals: "
        "a variance under 1e-10 of its sum of squares, which running sums cannot tell from rounding)."
    )

    @classmethod
    def of(cls, s: problemstats.ProblemStats) -> ProblemStatistics:
        return cls(
            problem_id=s.problem_id,
            position=s.position,
            attempts=s.attempts,
            passes=s.passes,
            timeouts=s.timeouts,
            versions=s.versions,
            pass_rate=s.pass_rate,
            timeout_rate=s.timeout_rate,
            mean_score=s.mean_score,
            median_score=s.median_score,
            mean_duration_seconds=s.mean_duration,
            discrimination=s.discrimination,
        )

    @strawberry.field(description="The problem.")
    async def problem(self, info: Info) -> refs.Problem | None:
        row = await info.context.loaders.problem_by_id.load(self.problem_id)
        return refs.Problem.of(row) if row else None


def _scope(scope: ProblemStatsScope | None) -> problemstats.Scope:
    return scope.to_service() if scope is not None else problemstats.Scope()


async def problem_stats(
    info: Info, suite_id: int, problem_id: uuid.UUID, scope: ProblemStatsScope | None
) -> ProblemStatistics:
    found = await info.context.loaders.problem_stats_by_suite_id_and_scope.load((suite_id, _scope(scope)))
    return ProblemStatistics.of(found[problem_id])


async def suite_problem_stats(
    info: Info,
    suite_id: int,
    scope: ProblemStatsScope | None,
    order_by: ProblemStatsOrder | None,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[ProblemStatistics]:
    order = order_by or ProblemStatsOrder(field=ProblemStatsOrderField.POSITION)
    descending = order.direction == OrderDirection.DESC
    key = enum_key(order.field)
    name = f"problemStats.{key}.{'desc' if descending else 'asc'}"
    window = make_window(name, first, after, last, before)
    found = await info.context.loaders.problem_stats_by_suite_id_and_scope.load((suite_id, _scope(scope)))
    page = problemstats.ordered_page(found.values(), key, descending=descending, window=window)

    async def total() -> int:
        return len(found)

    return to_connection(page, name, ProblemStatistics.of, total)
