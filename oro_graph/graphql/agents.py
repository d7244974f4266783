"""Miners and their agents; the agent, version and miner queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.ids import NodeRef, load_by_uuid, parse_node_id, uuid_id
from oro_graph.graphql.pagination import After, Before, Connection, First, Last, edge_connection
from oro_graph.graphql.permissions import IsMiner
from oro_graph.services import credentials


@strawberry.type(description="A hotkey that has submitted at least one agent.")
class Miner(relay.Node):
    id: relay.NodeID[str]
    hotkey: str = strawberry.field(description="The miner's SS58 hotkey.")
    created_at: datetime = strawberry.field(description="When it first submitted (UTC).")
    last_submitted_at: datetime | None = strawberry.field(description="Its latest submission (UTC).")

    @classmethod
    def of(cls, row: models.Miner) -> Miner:
        return cls(
            id=row.hotkey,
            hotkey=row.hotkey,
            created_at=row.created_at,
            last_submitted_at=row.last_submitted_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Miner | None]:
        rows = await info.context.loaders.miner_by_hotkey.load_many(list(node_ids))
        return [cls.of(r) if r else None for r in rows]

    @strawberry.field(description="The miner's agents, oldest first.")
    async def agents(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[Agent]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.agent_page_by_miner_hotkey,
            loaders.agent_count_by_miner_hotkey,
            self.hotkey,
            "agent.created_at",
            Agent.of,
            first,
            after,
            last,
            before,
        )

    @strawberry.field(
        description="The version it pinned to race (null without a pin: its best qualifying version races)."
    )
    async def race_selection(self, info: Info) -> refs.RaceSelection | None:
        view = await info.context.loaders.race_selection_by_hotkey.load(self.hotkey)
        return refs.RaceSelection.of(view) if view else None


@strawberry.type(description="A miner's named agent; each submission under the name is a new version.")
class Agent(relay.Node):
    id: relay.NodeID[str]
    agent_id: uuid.UUID = strawberry.field(description="The agent's id (the REST `agent_id`).")
    name: str = strawberry.field(description="Unique per miner (the REST `agent_name`).")
    miner_hotkey: str = strawberry.field(description="The owner's hotkey.")
    created_at: datetime = strawberry.field(description="When its first version was submitted (UTC).")

    @classmethod
    def of(cls, row: models.Agent) -> Agent:
        return cls(
            id=str(row.id),
            agent_id=row.id,
            name=row.name,
            miner_hotkey=row.miner_hotkey,
            created_at=row.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Agent | None]:
        rows = await load_by_uuid(info.context.loaders.agent_by_id, node_ids)
        return [cls.of(r) if r else None for r in rows]

    @strawberry.field(description="The miner that owns the agent.")
    async def miner(self, info: Info) -> Miner | None:
        row = await info.context.loaders.miner_by_hotkey.load(self.miner_hotkey)
        return Miner.of(row) if row else None

    @strawberry.field(description="The agent's released versions, first submitted first.")
    async def versions(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[refs.AgentVersion]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.version_page_by_agent_id,
            loaders.version_count_by_agent_id,
            self.agent_id,
            "version.number",
            refs.AgentVersion.of,
            first,
            after,
            last,
            before,
        )

    @strawberry.field(description="The most recent version, once released (null before).")
    async def latest_version(self, info: Info) -> refs.AgentVersion | None:
        row = await info.context.loaders.latest_version_by_agent_id.load(self.agent_id)
        return refs.shown_version(info, row)


@strawberry.type
class AgentQuery:
    @strawberry.field(
        description="The calling miner's inference credentials (never their secrets) and whether its "
        "versions are offered to validators or wait, and why. Signed (X-Hotkey, X-Timestamp, "
        "X-Nonce, X-Signature), "
        "miners only.",
        permission_classes=[IsMiner],
    )
    async def my_inference_auth(self, info: Info) -> refs.MinerInferenceAuth:
        hotkey = await info.context.signer()
        runtime = info.context.runtime
        view = await runtime.db.run(credentials.miner_inference, hotkey=hotkey, settings=runtime.settings)
        return refs.MinerInferenceAuth(
            readiness=view.readiness,
            detail=view.detail,
            default_provider=view.default_provider,
            credentials=[refs.InferenceCredentialStatus.of(c) for c in view.credentials],
        )

    @strawberry.field(
        description="One agent version by its UUID or global id; null if there is none or it is not released "
        "yet (as REST's public record answers 404 ARTIFACT_NOT_RELEASED)."
    )
    async def agent_version(self, info: Info, id: NodeRef) -> refs.AgentVersion | None:
        key = parse_node_id(str(id), "AgentVersion", uuid_id)
        row = await info.context.loaders.agent_version_by_id.load(key) if key else None
        return refs.shown_version(info, row)

    @strawberry.field(description="One agent by its UUID or global id; null if there is none.")
    async def agent(self, info: Info, id: NodeRef) -> Agent | None:
        key = parse_node_id(str(id), "Agent", uuid_id)
        row = await info.context.loaders.agent_by_id.load(key) if key else None
        return Agent.of(row) if row else None

    @strawberry.field(description="A miner by hotkey; null if it never submitted.")
    async def miner(
        self, info: Info, hotkey: Annotated[str, strawberry.argument(description="The miner's SS58 hotkey.")]
    ) -> Miner | None:
        row = await info.context.loaders.miner_by_hotkey.load(hotkey)
        return Miner.of(row) if row else None
