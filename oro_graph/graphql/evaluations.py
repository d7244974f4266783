"""Evaluation runs: one validator's lease on one version; who sees their scores; the run queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy import inspect as sa_inspect
from strawberry import relay
from strawberry.scalars import JSON

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import RunStatus
from oro_graph.graphql.filters import ProblemResultFilter, ProblemResultOrder, filtered_edge, result_filter
from oro_graph.graphql.ids import NodeRef, load_by_uuid, parse_node_id, uuid_id
from oro_graph.graphql.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    OrderDirection,
    edge_connection,
    make_window,
    to_connection,
)
from oro_graph.services import pages, races
from oro_graph.services.pages import RunFilter


async def _lease_expires_at(root: EvaluationRun, info: Info) -> datetime:
    return await root.live(info, 0)


async def _last_heartbeat_at(root: EvaluationRun, info: Info) -> datetime | None:
    return await root.live(info, 1)


async def scores_disclosed(info: Info, run_id: uuid.UUID, race_id: uuid.UUID | None) -> bool:
    """Whether this caller may see the run's scores (``services.races.run_scores_disclosed``): a race
    run's are embargoed until its race completes, except in the answers to its validator's lease calls.
    Reading the race makes a cached answer depend on its status, so completion ends a masked answer."""
    if race_id is None:
        return True
    race = await info.context.loaders.race_by_id.load(race_id)
    return races.run_scores_disclosed(race, holds_run=run_id in info.context.held_runs)


async def _validator_score(root: EvaluationRun, info: Info) -> float | None:
    return root._scores[0] if await root.disclosed(info) else None


async def _score_components(root: EvaluationRun, info: Info) -> Any:
    return root._scores[1] if await root.disclosed(info) else None


@strawberry.type(description="One validator's lease on one agent version, and what it reported.")
class EvaluationRun(relay.Node):
    id: relay.NodeID[str]
    eval_run_id: uuid.UUID = strawberry.field(description="The run's id (the REST `eval_run_id`).")
    agent_version_id: uuid.UUID = strawberry.field(description="The version evaluated.")
    work_item_id: uuid.UUID = strawberry.field(description="The work item the run counts toward.")
    suite_id: int = strawberry.field(description="The suite evaluated on.")
    validator_hotkey: str = strawberry.field(description="The validator holding the run.")
    status: RunStatus = strawberry.field(description="The run's status.")
    claimed_at: datetime = strawberry.field(description="When the validator claimed it (UTC).")
    lease_expires_at: datetime = strawberry.field(
        resolver=_lease_expires_at, description="When the lease runs out without a heartbeat (UTC)."
    )
    last_heartbeat_at: datetime | None = strawberry.field(
        resolver=_last_heartbeat_at, description="The last heartbeat (UTC)."
    )

    completed_at: datetime | None = strawberry.field(description="When it finished or went stale (UTC).")
    validator_score: float | None = strawberry.field(
        resolver=_validator_score,
        description="The score reported on completion, 0 to 1. A race run's: null until its race is "
        "RACE_COMPLETE (the embargo; a cancelled race never publishes it), except to its validator in "
        "the answers to its own lease mutations.",
    )
    score_components: JSON | None = strawberry.field(
        resolver=_score_components,
        description="The score's components as reported (embargoed with `validatorScore`).",
    )
    failure_reason: str | None = strawberry.field(description="Why it failed, when it did.")
    sandbox_metadata: JSON | None = strawberry.field(description="The validator's sandbox metadata.")
    service_versions: JSON | None = strawberry.field(description="The validator's service versions.")
    is_included: bool = strawberry.field(description="Whether its score counts toward the final score.")
    inference_failure_count: int | None = strawberry.field(
        description="Failed inference calls over its problems."
    )
    inference_total: int | None = strawberry.field(description="Inference calls over its problems.")
    # (lease_expires_at, last_heartbeat_at) when the row came with them; pages of runs leave them out
    # (services.pages.RUN_LIVENESS) so a cached answer that does not show them outlives heartbeats.
    _liveness: strawberry.Private[tuple[datetime, datetime | None] | None]
    _scores: strawberry.Private[tuple[float | None, Any]]  # (validator score, components) as stored

    _hidden: strawberry.Private[bool]  # embargoed whatever its race is now (a race as it stood at asOf)

    async def disclosed(self, info: Info) -> bool:
        return not self._hidden and await scores_disclosed(info, self.eval_run_id, self.race_id)

    async def live(self, info: Info, which: int) -> Any:
        """The lease end (0) or last heartbeat (1), loaded apart when the row came without them."""
        if self._liveness is None:
            found = await info.context.loaders.liveness_by_run_id.load(self.eval_run_id)
            assert found is not None, f"run {self.eval_run_id} vanished"
            self._liveness = found
        return self._liveness[which]

    race_id: uuid.UUID | None = strawberry.field(
        description="The race this run is race work for; null for qualifying runs."
    )

    @classmethod
    def of(cls, row: models.EvaluationRun, *, hidden: bool = False) -> EvaluationRun:
        """``hidden``: its scores are embargoed whatever its race's status now (``Race`` at ``asOf``)."""
        unloaded = sa_inspect(row, raiseerr=True).unloaded
        return cls(
            id=str(row.id),
            eval_run_id=row.id,
            agent_version_id=row.agent_version_id,
            work_item_id=row.work_item_id,
            suite_id=row.suite_id,
            validator_hotkey=row.validator_hotkey,
            status=models.RunStatus(row.status),
            claimed_at=row.claimed_at,
            completed_at=row.completed_at,
            _scores=(row.validator_score, row.score_components),
            _hidden=hidden,
            failure_reason=row.failure_reason,
            sandbox_metadata=row.sandbox_metadata,
            service_versions=row.service_versions,
            is_included=row.is_included,
            inference_failure_count=row.inference_failure_count,
            inference_total=row.inference_total,
            _liveness=None
            if unloaded & {"lease_expires_at", "last_heartbeat_at"}
            else (row.lease_expires_at, row.last_heartbeat_at),
            race_id=row.race_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[EvaluationRun | None]:
        rows = await load_by_uuid(info.context.loaders.run_by_id, node_ids)
        return [cls.of(r) if r else None for r in rows]

    @strawberry.field(
        description="The version evaluated: null before its release, except to the validator holding the run."
    )
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return refs.shown_version(info, row)

    @strawberry.field(
        description="The agent whose version was evaluated: public before the version's release, unlike "
        "`agentVersion`."
    )
    async def agent(self, info: Info) -> refs.Agent | None:
        return await refs.agent_of_version(info, self.agent_version_id)

    @strawberry.field(description="The validator holding the run (null if it left the registry).")
    async def validator(self, info: Info) -> refs.Validator | None:
        row = await info.context.loaders.validator_hotkey_by_ss58.load(self.validator_hotkey)
        return refs.Validator.of(row) if row else None

    @strawberry.field(description="The suite evaluated on.")
    async def suite(self, info: Info) -> refs.Suite | None:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        return refs.Suite.of(row) if row else None

    @strawberry.field(description="The race this run is race work for; null for qualifying runs.")
    async def race(self, info: Info) -> refs.Race | None:
        row = await info.context.loaders.race_by_id.load(self.race_id) if self.race_id else None
        return refs.Race.of(row) if row else None

    @strawberry.field(description="The work item the run counts toward.")
    async def work_item(self, info: Info) -> refs.WorkItem | None:
        row = await info.context.loaders.work_item_by_id.load(self.work_item_id)
        return refs.WorkItem.of(row) if row else None

    @strawberry.field(
        description="Share of the suite's problems finished (success, failure, timeout or skip), 0-100."
    )
    async def progress_percent(self, info: Info) -> float:
        return await info.context.loaders.progress_by_run_id.load(self.eval_run_id) or 0.0

    @strawberry.field(description="Per-problem results reported so far, in report order.")
    async def problem_results(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[
            ProblemResultFilter | None, strawberry.argument(description="Which results; all if omitted.")
        ] = None,
        order_by: Annotated[
            ProblemResultOrder | None,
            strawberry.argument(description="Sort order; by report time, oldest first, by default."),
        ] = None,
    ) -> Connection[refs.ProblemResult]:
        spec = result_filter(filter, order_by)
        if spec is not None:
            return await filtered_edge(
                info, "result", self.eval_run_id, spec, refs.ProblemResult.of, first, after, last, before
            )
        loaders = info.context.loaders
        return await edge_connection(
            loaders.result_page_by_run_id,
            loaders.result_count_by_run_id,
            self.eval_run_id,
            "result.updated_at",
            refs.ProblemResult.of,
            first,
            after,
            last,
            before,
        )


@strawberry.input(description="Which runs to list; every condition given must hold.")
class EvaluationRunFilter:
    status: list[RunStatus] | None = strawberry.field(default=None, description="Any of these statuses.")
    validator_hotkey: str | None = strawberry.field(default=None, description="Held by this validator.")
    agent_version_id: uuid.UUID | None = strawberry.field(default=None, description="Of this version.")
    suite_id: int | None = strawberry.field(default=None, description="On this suite.")
    claimed_after: datetime | None = strawberry.field(default=None, description="Claimed at or after (UTC).")
    claimed_before: datetime | None = strawberry.field(default=None, description="Claimed before (UTC).")

    def to_service(self) -> RunFilter:
        return RunFilter(
            statuses=tuple(s.value for s in self.status) if self.status is not None else None,
            validator_hotkey=self.validator_hotkey,
            agent_version_id=self.agent_version_id,
            suite_id=self.suite_id,
            claimed_after=self.claimed_after,
            claimed_before=self.claimed_before,
        )


@strawberry.enum(description="What evaluation runs can be sorted by (ties broken by id).")
class EvaluationRunOrderField(Enum):
    CLAIMED_AT = strawberry.enum_value("claimed_at", description="Claim time.")
    LEASE_EXPIRES_AT = strawberry.enum_value("lease_expires_at", description="Lease expiry.")


@strawberry.input(description="Sort order of evaluation runs.")
class EvaluationRunOrder:
    field: EvaluationRunOrderField = strawberry.field(description="The sort key.")
    direction: OrderDirection = strawberry.field(description="ASC or DESC.")


DEFAULT_RUN_ORDER = EvaluationRunOrder(field=EvaluationRunOrderField.CLAIMED_AT, direction=OrderDirection.ASC)


async def runs_connection(
    info: Info,
    run_filter: RunFilter,
    order: EvaluationRunOrder,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[EvaluationRun]:
    db, loaders = info.context.runtime.db, info.context.loaders
    name = f"run.{order.field.value}.{order.direction.value.lower()}"
    page = await db.run(
        pages.runs_page,
        run_filter=run_filter,
        order_by=order.field.value,
        descending=order.direction == OrderDirection.DESC,
        window=make_window(name, first, after, last, before),
    )
    loaders.prime_runs(page.rows)

    async def total() -> int:
        return await db.run(pages.runs_count, run_filter=run_filter)

    return to_connection(page, name, EvaluationRun.of, total)


@strawberry.type
class EvaluationQuery:
    @strawberry.field(description="One run by its UUID or global id; null if there is none.")
    async def evaluation_run(self, info: Info, id: NodeRef) -> EvaluationRun | None:
        key = parse_node_id(str(id), "EvaluationRun", uuid_id)
        row = await info.context.loaders.run_by_id.load(key) if key else None
        return EvaluationRun.of(row) if row else None

    @strawberry.field(
        description="Evaluation runs, filtered and sorted; keyset-paged, so deep pages are cheap."
    )
    async def evaluation_runs(
        self,
        info: Info,
        filter: Annotated[EvaluationRunFilter | None, strawberry.argument(description="Which runs.")] = None,
        order_by: Annotated[
            EvaluationRunOrder | None,
            strawberry.argument(description="Sort order; by claim time, oldest first, by default."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[EvaluationRun]:
        run_filter = filter.to_service() if filter else RunFilter()
        return await runs_connection(
            info, run_filter, order_by or DEFAULT_RUN_ORDER, first, after, last, before
        )

    @strawberry.field(description="Runs holding a lease now (CLAIMED or RUNNING), oldest claim first.")
    async def running_evaluations(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[EvaluationRun]:
        return await runs_connection(info, pages.ACTIVE_RUNS, DEFAULT_RUN_ORDER, first, after, last, before)

    @strawberry.field(description="Open work items (versions still needing successful runs), oldest first.")
    async def pending_evaluations(
        self,
        info: Info,
        suite_id: Annotated[int | None, strawberry.argument(description="Only this suite's.")] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[refs.WorkItem]:
        db = info.context.runtime.db
        window = make_window("work.created_at", first, after, last, before)
        page = await db.run(pages.pending_page, suite_id=suite_id, window=window)

        async def total() -> int:
            return await db.run(pages.pending_count, suite_id=suite_id)

        return to_connection(page, "work.created_at", refs.WorkItem.of, total)
