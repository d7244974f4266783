"""Validators: who evaluates, what they hold now, and what their machines report."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import ValidatorStatus
from oro_graph.graphql.evaluations import EvaluationRun
from oro_graph.graphql.filters import ValidatorFilter, ValidatorOrder, validator_filter
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
from oro_graph.graphql.reliability import TimeWindow, ValidatorReliability
from oro_graph.services import filters
from oro_graph.services.validators import ValidatorView


@strawberry.type(description="A hotkey with a validator permit, and what its machine last reported.")
class Validator(relay.Node):
    id: relay.NodeID[str]
    hotkey: str = strawberry.field(description="The validator's SS58 hotkey.")
    name: str | None = strawberry.field(description="Its display name, if registered with one.")
    status: ValidatorStatus = strawberry.field(description="EVALUATING while it holds an active run.")
    registered_at: datetime = strawberry.field(description="When it entered the registry (UTC).")
    last_claim_at: datetime | None = strawberry.field(description="Its last claim (UTC).")
    last_seen_at: datetime | None = strawberry.field(description="Its last signed call (UTC).")
    cpu_pct: float | None = strawberry.field(description="CPU use in percent, last reported.")
    ram_pct: float | None = strawberry.field(description="Memory use in percent, last reported.")
    disk_pct: float | None = strawberry.field(description="Disk use in percent, last reported.")
    docker_container_count: int | None = strawberry.field(description="Running containers, last reported.")
    service_versions: JSON | None = strawberry.field(description="Its service versions, last reported.")
    metrics_reported_at: datetime | None = strawberry.field(
        description="When metrics were last reported (UTC)."
    )
    _current_run: strawberry.Private[object | None]

    @classmethod
    def from_view(cls, view: ValidatorView) -> Validator:
        state = view.state
        return cls(
            id=view.hotkey.ss58,
            hotkey=view.hotkey.ss58,
            name=view.hotkey.name,
            status=ValidatorStatus(view.status),
            registered_at=view.hotkey.registered_at,
            last_claim_at=state.last_claim_at if state else None,
            last_seen_at=state.last_seen_at if state else None,
            cpu_pct=state.cpu_pct if state else None,
            ram_pct=state.ram_pct if state else None,
            disk_pct=state.disk_pct if state else None,
            docker_container_count=state.docker_container_count if state else None,
            service_versions=state.service_versions if state else None,
            metrics_reported_at=state.metrics_reported_at if state else None,
            _current_run=view.current_run,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Validator | None]:
        views = await info.context.loaders.validator_by_hotkey.load_many(list(node_ids))
        return [cls.from_view(v) if v else None for v in views]

    @strawberry.field(description="The run it holds now (its latest claim when it holds several), or null.")
    def current_run(self) -> EvaluationRun | None:
        return EvaluationRun.from_row(self._current_run) if self._current_run is not None else None  # type: ignore[arg-type]

    @strawberry.field(
        description="Outcomes, lease health, durations and agreement with peers over runs claimed in `window`."
    )
    async def reliability(
        self,
        info: Info,
        window: Annotated[
            TimeWindow | None, strawberry.argument(description="Claim-time range; all time if omitted.")
        ] = None,
    ) -> ValidatorReliability:
        w = window or TimeWindow()
        figures = await info.context.loaders.reliability_by_hotkey_and_window.load(
            (self.hotkey, w.since, w.until)
        )
        return ValidatorReliability.of(figures)

    @strawberry.field(description="Its runs, latest claim first.")
    async def runs(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[EvaluationRun]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.run_page_by_validator_hotkey,
            loaders.run_count_by_validator_hotkey,
            self.hotkey,
            "run.claimed_at.desc",
            EvaluationRun.from_row,
            first,
            after,
            last,
            before,
        )


@strawberry.type
class ValidatorQuery:
    @strawberry.field(description="Every validator, by hotkey.")
    async def validators(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[
            ValidatorFilter | None, strawberry.argument(description="Which validators; all if omitted.")
        ] = None,
        order_by: Annotated[
            ValidatorOrder | None, strawberry.argument(description="Sort order; by hotkey by default.")
        ] = None,
    ) -> Connection[Validator]:
        db, loaders = info.context.runtime.db, info.context.loaders
        spec = validator_filter(filter, order_by)
        name = (
            "validator.hotkey"
            if spec.order_by == "hotkey" and not spec.descending
            else (f"validator.{spec.order_by}.{'desc' if spec.descending else 'asc'}")
        )
        page = await db.run(filters.validators_page, spec, make_window(name, first, after, last, before))
        views = await loaders.validator_by_hotkey.load_many([row.ss58 for row in page.rows])
        by_key = {v.hotkey.ss58: v for v in views if v is not None}

        async def total() -> int:
            return await db.run(filters.validators_count, spec)

        return to_connection(page, name, lambda row: Validator.from_view(by_key[row.ss58]), total)

    @strawberry.field(description="One validator by hotkey; null if it is not a registered validator.")
    async def validator(
        self,
        info: Info,
        hotkey: Annotated[str, strawberry.argument(description="The validator's SS58 hotkey.")],
    ) -> Validator | None:
        view = await info.context.loaders.validator_by_hotkey.load(hotkey)
        return Validator.from_view(view) if view else None
