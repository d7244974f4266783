"""Suites and their problems."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import ExecutionKind
from oro_graph.graphql.filters import (
    AgentVersionFilter,
    AgentVersionOrder,
    ProblemStatsOrder,
    ProblemStatsScope,
    filtered_edge,
    version_filter,
)
from oro_graph.graphql.ids import NodeRef, int_id, load_by_uuid, parse_node_id
from oro_graph.graphql.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    edge_connection,
    make_window,
    to_connection,
)
from oro_graph.graphql.reliability_types import TimeWindow, ValidatorVariance
from oro_graph.services import pages, reliability, suites


@strawberry.type(
    description="A versioned set of problems that agents are evaluated on; one suite is active at a time."
)
class Suite(relay.Node):
    id: relay.NodeID[int]
    suite_id: int = strawberry.field(description="The suite's number (the REST `suite_id`).")
    version: int = strawberry.field(
        description="Increases with every imported suite (the REST `suite_version`)."
    )
    is_active: bool = strawberry.field(
        description="Whether this is the suite new submissions are evaluated on."
    )
    execution_kind: ExecutionKind = strawberry.field(description="How its problems are executed.")
    environment: JSON | None = strawberry.field(description="Environment metadata of envpack suites, if any.")
    benchmark_name: str | None = strawberry.field(description="The benchmark the suite comes from.")
    benchmark_number: int | None = strawberry.field(description="The benchmark's number, if it has one.")
    created_at: datetime = strawberry.field(description="When the suite was imported (UTC).")

    @classmethod
    def of(cls, row: models.Suite) -> Suite:
        return cls(
            id=row.id or 0,
            suite_id=row.id or 0,
            version=row.version,
            is_active=row.is_active,
            execution_kind=models.ExecutionKind(row.execution_kind),
            environment=row.environment,
            benchmark_name=row.benchmark_name,
            benchmark_number=row.benchmark_number,
            created_at=row.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Suite | None]:
        keys = [int_id(i) for i in node_ids]
        rows = await info.context.loaders.suite_by_id.load_many([k for k in keys if k is not None])
        found = {row.id: row for row in rows if row is not None}
        return [cls.of(found[k]) if k in found else None for k in keys]

    @strawberry.field(
        description="ORO's validator-variance view over runs claimed in `window`: spread of "
        "validators' scores "
        "per version (max - min) and each validator's mean delta vs its peers."
    )
    async def validator_variance(
        self,
        info: Info,
        window: Annotated[
            TimeWindow | None, strawberry.argument(description="Claim-time range; all time if omitted.")
        ] = None,
    ) -> ValidatorVariance:
        w = (window or TimeWindow()).to_service()
        summary = await info.context.runtime.db.run(
            reliability.validator_variance, suite_id=self.suite_id, window=w
        )
        return ValidatorVariance.of(summary)

    @strawberry.field(description="The suite's problems in suite order.")
    async def problems(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[Problem]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.problem_page_by_suite_id,
            loaders.problem_count_by_suite_id,
            self.suite_id,
            "problem.position",
            Problem.of,
            first,
            after,
            last,
            before,
        )

    @strawberry.field(
        description="Every problem's statistics over `scope` (see `ProblemStatistics`), ordered by any of "
        "them (nulls last in both directions; default: suite order)."
    )
    async def problem_stats(
        self,
        info: Info,
        scope: Annotated[
            ProblemStatsScope | None, strawberry.argument(description="Which runs count; all if omitted.")
        ] = None,
        order_by: Annotated[
            ProblemStatsOrder | None,
            strawberry.argument(description="The sort order; suite order if omitted."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[refs.ProblemStatistics]:
        return await refs.suite_problem_stats(
            info, self.suite_id, scope, order_by, first, after, last, before
        )

    @strawberry.field(
        description="Released agent versions submitted while this suite was active, oldest first."
    )
    async def versions(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[
            AgentVersionFilter | None, strawberry.argument(description="Which versions; all if omitted.")
        ] = None,
        order_by: Annotated[
            AgentVersionOrder | None,
            strawberry.argument(description="Sort order; by submission, oldest first, by default."),
        ] = None,
    ) -> Connection[refs.AgentVersion]:
        spec = version_filter(filter, order_by)
        if spec is not None:
            return await filtered_edge(
                info, "version", self.suite_id, spec, refs.AgentVersion.of, first, after, last, before
            )
        loaders = info.context.loaders
        return await edge_connection(
            loaders.version_page_by_suite_id,
            loaders.version_count_by_suite_id,
            self.suite_id,
            "version.submitted_at",
            refs.AgentVersion.of,
            first,
            after,
            last,
            before,
        )


@strawberry.type(description="One problem of a suite.")
class Problem(relay.Node):
    id: relay.NodeID[str]
    problem_id: uuid.UUID = strawberry.field(description="The problem's id (stable across servers).")
    position: int = strawberry.field(description="Its place in the suite, from 0.")
    title: str = strawberry.field(description="A short title.")
    category: str | None = strawberry.field(description="The problem's category, if given.")
    difficulty: str | None = strawberry.field(description="The problem's difficulty, if given.")
    query: str | None = strawberry.field(description="The task as the agent receives it.")
    metadata: JSON | None = strawberry.field(
        description="Every other field of the suite file for this problem, except its answer (`reward`, "
        "`reward_*`, `voucher`)."
    )
    suite_id: int = strawberry.field(description="The suite it belongs to.")

    @classmethod
    def of(cls, row: models.Problem) -> Problem:
        return cls(
            id=str(row.id),
            problem_id=row.id,
            position=row.position,
            title=row.title,
            category=row.category,
            difficulty=row.difficulty,
            query=row.query,
            metadata=suites.served_metadata(row),
            suite_id=row.suite_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Problem | None]:
        rows = await load_by_uuid(info.context.loaders.problem_by_id, node_ids)
        return [cls.of(r) if r else None for r in rows]

    @strawberry.field(description="The suite this problem belongs to.")
    async def suite(self, info: Info) -> Suite | None:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        return Suite.of(row) if row else None

    @strawberry.field(
        description="Its statistics over `scope`: attempts, pass and timeout rates, mean and median score, "
        "mean duration and discrimination (see `ProblemStatistics`)."
    )
    async def stats(
        self,
        info: Info,
        scope: Annotated[
            ProblemStatsScope | None, strawberry.argument(description="Which runs count; all if omitted.")
        ] = None,
    ) -> refs.ProblemStatistics:
        return await refs.problem_stats(info, self.suite_id, self.problem_id, scope)


@strawberry.type
class SuiteQuery:
    @strawberry.field(description="The active suite, or null when none is active.")
    async def current_suite(self, info: Info) -> Suite | None:
        row = await info.context.runtime.db.run(suites.current_suite_or_none)
        return Suite.of(row) if row else None

    @strawberry.field(description="One suite by its number or global id; null if there is none.")
    async def suite(self, info: Info, id: NodeRef) -> Suite | None:
        key = parse_node_id(str(id), "Suite", int_id)
        row = await info.context.loaders.suite_by_id.load(key) if key is not None else None
        return Suite.of(row) if row else None

    @strawberry.field(description="Every suite, oldest first.")
    async def suites(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[Suite]:
        db = info.context.runtime.db
        page = await db.run(pages.suites_page, make_window("suite.id", first, after, last, before))

        async def total() -> int:
            return await db.run(pages.suites_count)

        return to_connection(page, "suite.id", Suite.of, total)
