"""Validators: who evaluates, what they hold now, and what their machines report."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import ValidatorStatus
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
from oro_graph.graphql.reliability_types import TimeWindow, ValidatorReliability
from oro_graph.models import Hotkey
from oro_graph.services import filters
from oro_graph.services.validators import ValidatorView


async def _status(root: Validator, info: Info) -> ValidatorStatus:
    return ValidatorStatus((await root.view(info)).status)


async def _last_claim_at(root: Validator, info: Info) -> datetime | None:
    state = (await root.view(info)).state
    return state.last_claim_at if state else None


async def _last_seen_at(root: Validator, info: Info) -> datetime | None:
    state = (await root.view(info)).state
    return state.last_seen_at if state else None


async def _cpu_pct(root: Validator, info: Info) -> float | None:
    state = (await root.view(info)).state
    return state.cpu_pct if state else None


async def _ram_pct(root: Validator, info: Info) -> float | None:
    state = (await root.view(info)).state
    return state.ram_pct if state else None


async def _disk_pct(root: Validator, info: Info) -> float | None:
    state = (await root.view(info)).state
    return state.disk_pct if state else None


async def _docker_container_count(root: Validator, info: Info) -> int | None:
    state = (await root.view(info)).state
    return state.docker_container_count if state else None


async def _service_versions(root: Validator, info: Info) -> JSON | None:
    state = (await root.view(info)).state
    return JSON(state.service_versions) if state else None


async def _metrics_reported_at(root: Validator, info: Info) -> datetime | None:
    state = (await root.view(info)).state
    return state.metrics_reported_at if state else None


@strawberry.type(description="A hotkey with a validator permit, and what its machine last reported.")
class Validator(relay.Node):
    id: relay.NodeID[str]
    hotkey: str = strawberry.field(description="The validator's SS58 hotkey.")
    name: str | None = strawberry.field(description="Its display name, if registered with one.")
    status: ValidatorStatus = strawberry.field(
        resolver=_status, description="EVALUATING while it holds an active run."
    )
    registered_at: datetime = strawberry.field(description="When it entered the registry (UTC).")
    last_claim_at: datetime | None = strawberry.field(
        resolver=_last_claim_at, description="Its last claim (UTC)."
    )
    last_seen_at: datetime | None = strawberry.field(
        resolver=_last_seen_at, description="Its last signed call (UTC)."
    )
    cpu_pct: float | None = strawberry.field(
        resolver=_cpu_pct, description="CPU use in percent, last reported."
    )
    ram_pct: float | None = strawberry.field(
        resolver=_ram_pct, description="Memory use in percent, last reported."
    )
    disk_pct: float | None = strawberry.field(
        resolver=_disk_pct, description="Disk use in percent, last reported."
    )
    docker_container_count: int | None = strawberry.field(
        resolver=_docker_container_count, description="Running containers, last reported."
    )
    service_versions: JSON | None = strawberry.field(
        resolver=_service_versions, description="Its service versions, last reported."
    )
    metrics_reported_at: datetime | None = strawberry.field(
        resolver=_metrics_reported_at, description="When metrics were last reported (UTC)."
    )
    # Its state and current run, when already loaded. Reached from a run (`EvaluationRun.validator`)
    # only the hotkey row is loaded: a board that shows validators' names then does not depend on
    # what every heartbeat writes (last seen, the current lease), and stays cached.
    _view: strawberry.Private[ValidatorView | None]

    async def view(self, info: Info) -> ValidatorView:
        if self._view is None:
            found = await info.context.loaders.validator_by_hotkey.load(self.hotkey)
            assert found is not None, f"validator {self.hotkey} vanished"
            self._view = found
        return self._view

    @classmethod
    def of(cls, source: ValidatorView | Hotkey) -> Validator:
        """From its loaded view, or from its hotkey row alone (the view is then loaded when asked)."""
        view = source if isinstance(source, ValidatorView) else None
        hotkey = source.hotkey if isinstance(source, ValidatorView) else source
        return cls(
            id=hotkey.ss58,
            hotkey=hotkey.ss58,
            name=hotkey.name,
            registered_at=hotkey.registered_at,
            _view=view,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Validator | None]:
        views = await info.context.loaders.validator_by_hotkey.load_many(list(node_ids))
        return [cls.of(v) if v else None for v in views]

    @strawberry.field(description="The run it holds now (its latest claim when it holds several), or null.")
    async def current_run(self, info: Info) -> refs.EvaluationRun | None:
        run = (await self.view(info)).current_run
        return refs.EvaluationRun.of(run) if run is not None else None

    @strawberry.field(
        description="Outcomes, lease health, durations and agreement with peers over runs claimed in "
        "`window`."
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
    ) -> Connection[refs.EvaluationRun]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.run_page_by_validator_hotkey,
            loaders.run_count_by_validator_hotkey,
            self.hotkey,
            "run.claimed_at.desc",
            refs.EvaluationRun.of,
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

        return to_connection(page, name, lambda row: Validator.of(by_key[row.ss58]), total)

    @strawberry.field(description="One validator by hotkey; null if it is not a registered validator.")
    async def validator(
        self,
        info: Info,
        hotkey: Annotated[str, strawberry.argument(description="The validator's SS58 hotkey.")],
    ) -> Validator | None:
        view = await info.context.loaders.validator_by_hotkey.load(hotkey)
        return Validator.of(view) if view else None
