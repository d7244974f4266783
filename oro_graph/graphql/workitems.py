"""Work items: the evaluation job of one version."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.ids import load_by_uuid
from oro_graph.services import validators


@strawberry.type(
    description="The evaluation job of one version: it closes after the required successful runs."
)
class WorkItem(relay.Node):
    id: relay.NodeID[str]
    work_item_id: uuid.UUID = strawberry.field(description="The work item's id.")
    agent_version_id: uuid.UUID = strawberry.field(description="The version it evaluates.")
    suite_id: int = strawberry.field(description="The suite it is evaluated on.")
    required_successes: int = strawberry.field(description="Successful runs needed to close it.")
    included_successes: int = strawberry.field(description="Successful runs counted so far.")
    active_runs: int = strawberry.field(description="Runs holding a lease now.")
    is_closed: bool = strawberry.field(description="Whether it has all the successes it needs.")
    created_at: datetime = strawberry.field(description="When it was queued (UTC).")
    closed_at: datetime | None = strawberry.field(description="When it closed (UTC).")
    remaining: int = strawberry.field(description="Successful runs still needed.")

    @classmethod
    def of(cls, row: models.WorkItem) -> WorkItem:
        return cls(
            id=str(row.id),
            work_item_id=row.id,
            agent_version_id=row.agent_version_id,
            suite_id=row.suite_id,
            required_successes=row.required_successes,
            included_successes=row.included_successes,
            active_runs=row.active_runs,
            is_closed=row.is_closed,
            created_at=row.created_at,
            closed_at=row.closed_at,
            remaining=validators.successes_remaining(row),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WorkItem | None]:
        rows = await load_by_uuid(info.context.loaders.work_item_by_id, node_ids)
        return [cls.of(r) if r else None for r in rows]

    @strawberry.field(description="The version it evaluates, once released (null before).")
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return refs.shown_version(info, row)

    @strawberry.field(
        description="The agent whose version it evaluates: public before the version's release, unlike "
        "`agentVersion`."
    )
    async def agent(self, info: Info) -> refs.Agent | None:
        return await refs.agent_of_version(info, self.agent_version_id)
