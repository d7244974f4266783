"""The leaderboard, the top agent and its history, with time travel (`asOf`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import strawberry

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.filters import LeaderboardFilter
from oro_graph.graphql.ids import AsOf
from oro_graph.graphql.pagination import After, Before, Connection, First, Last, make_window, to_connection
from oro_graph.services import filters, leaderboard
from oro_graph.services.leaderboard import BoardRow

SuiteArg = Annotated[int | None, strawberry.argument(description="The suite; the active one when omitted.")]


@strawberry.type(description="One eligible version's place on its suite's board.")
class LeaderboardEntry:
    rank: int = strawberry.field(description="Position over the whole board (1 = best), also when searching.")
    agent_version_id: uuid.UUID = strawberry.field(description="The ranked version.")
    agent_name: str = strawberry.field(description="Its agent's name.")
    miner_hotkey: str = strawberry.field(description="Its miner's hotkey.")
    version_number: int = strawberry.field(description="Its version number.")
    final_score: float | None = strawberry.field(description="Its final score; the board's sort key.")
    eligible_at: datetime | None = strawberry.field(description="When it became eligible; breaks score ties.")
    is_current_top: bool = strawberry.field(
        description="Whether it was the reigning top agent at that instant."
    )
    was_top: bool = strawberry.field(description="Whether it has ever been the top agent (by that instant).")
    top_at: datetime | None = strawberry.field(description="When it first became the top agent.")

    @classmethod
    def of(cls, row: BoardRow) -> LeaderboardEntry:
        return cls(
            rank=row.rank,
            agent_version_id=row.agent_version_id,
            agent_name=row.agent_name,
            miner_hotkey=row.miner_hotkey,
            version_number=row.version_number,
            final_score=row.final_score,
            eligible_at=row.eligible_at,
            is_current_top=row.is_current_top,
            was_top=row.was_top,
            top_at=row.top_at,
        )

    @strawberry.field(description="The ranked version; null until its code is released.")
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return refs.shown_version(info, row)


@strawberry.type(
    description="The agent that earns emissions for a suite (fields are null while there is none)."
)
class TopAgent:
    suite_id: int = strawberry.field(description="The suite.")
    computed_at: datetime = strawberry.field(description="The instant this answer is for (UTC).")
    top_agent_version_id: uuid.UUID | None = strawberry.field(description="The reigning version.")
    top_miner_hotkey: str | None = strawberry.field(description="Its miner's hotkey.")
    top_score: float | None = strawberry.field(description="The score it was crowned with.")
    top_at: datetime | None = strawberry.field(description="When its reign began (UTC).")
    challenge_threshold: float = strawberry.field(
        description="How much a challenger must beat the reigning score by to replace it."
    )

    @strawberry.field(description="The reigning version; null until its code is released.")
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        if self.top_agent_version_id is None:
            return None
        row = await info.context.loaders.agent_version_by_id.load(self.top_agent_version_id)
        return refs.shown_version(info, row)

    @strawberry.field(description="The suite.")
    async def suite(self, info: Info) -> refs.Suite | None:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        return refs.Suite.of(row) if row else None


@strawberry.type(description="One reign of a top agent.")
class TopAgentReign:
    suite_id: int = strawberry.field(description="The suite.")
    agent_version_id: uuid.UUID = strawberry.field(description="The version that reigned.")
    score: float = strawberry.field(description="The score it was crowned with.")
    top_at: datetime = strawberry.field(description="When the reign began (UTC).")
    replaced_at: datetime | None = strawberry.field(description="When it ended (UTC); null while it lasts.")

    @classmethod
    def of(cls, row: models.TopAgentHistory) -> TopAgentReign:
        return cls(
            suite_id=row.suite_id,
            agent_version_id=row.agent_version_id,
            score=row.score,
            top_at=row.top_at,
            replaced_at=row.replaced_at,
        )

    @strawberry.field(description="The version that reigned; null until its code is released.")
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return refs.shown_version(info, row)


@strawberry.type
class LeaderboardQuery:
    @strawberry.field(
        description="Eligible versions of a suite, best final score first (ties: earlier "
        "eligibility, then id). "
        "With `asOf`, the board as it stood at that instant."
    )
    async def leaderboard(
        self,
        info: Info,
        suite_id: SuiteArg = None,
        search: Annotated[
            str | None,
            strawberry.argument(description="Part of an agent name or miner hotkey (case-insensitive)."),
        ] = None,
        as_of: AsOf = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[
            LeaderboardFilter | None,
            strawberry.argument(
                description="Which entries; the whole board if omitted (ranks stay the same)."
            ),
        ] = None,
    ) -> Connection[LeaderboardEntry]:
        db, loaders = info.context.runtime.db, info.context.loaders
        window = make_window("board", first, after, last, before)
        spec = filter.to_service() if filter else filters.BoardFilter()
        board = await db.run(
            filters.board_window, suite_id=suite_id, q=search, as_of=as_of, window=window, spec=spec
        )
        loaders.prime_versions(row.version for row in board.rows)
        loaders.prime_agents(row.agent for row in board.rows)

        async def total() -> int:
            return await db.run(filters.board_count, suite_id=suite_id, q=search, as_of=as_of, spec=spec)

        return to_connection(board, "board", LeaderboardEntry.of, total)

    @strawberry.field(description="The reigning top agent of a suite, or the one reigning at `asOf`.")
    async def top_agent(self, info: Info, suite_id: SuiteArg = None, as_of: AsOf = None) -> TopAgent:
        runtime = info.context.runtime
        top = await runtime.db.run(
            leaderboard.top_agent, settings=runtime.settings, suite_id=suite_id, as_of=as_of
        )
        return TopAgent(
            suite_id=top.suite_id,
            computed_at=top.computed_at,
            top_agent_version_id=top.version.id if top.version else None,
            top_miner_hotkey=top.agent.miner_hotkey if top.agent else None,
            top_score=top.reign.score if top.reign else None,
            top_at=top.reign.top_at if top.reign else None,
            challenge_threshold=top.challenge_threshold,
        )

    @strawberry.field(description="Every reign of a suite's top agents, oldest first.")
    async def top_history(
        self,
        info: Info,
        suite_id: SuiteArg = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[TopAgentReign]:
        db = info.context.runtime.db
        window = make_window("reign.top_at", first, after, last, before)
        page = await db.run(leaderboard.top_history_window, suite_id=suite_id, window=window)

        async def total() -> int:
            return await db.run(leaderboard.top_history_count, suite_id=suite_id)

        return to_connection(page, "reign.top_at", TopAgentReign.of, total)
