"""Live updates of one agent version (`agentVersionEvents`) or of the signed miner's versions
(`minerEvents`): replayable from a cursor, over the same transports as the other subscriptions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError

from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import RunStatus
from oro_graph.graphql.subscriptions import KeepAlive, LoggedEvent, _cursor, _follow, _resumed
from oro_graph.models import Event, Role
from oro_graph.services import agents, events, feeds


@strawberry.interface(description="An event of one agent version's evaluation or board position.")
class VersionEvent(LoggedEvent):
    agent_version_id: uuid.UUID = strawberry.field(description="The version concerned.")


@strawberry.type(description="A validator claimed a run of the version.")
class VersionRunClaimed(VersionEvent):
    run_id: uuid.UUID = strawberry.field(description="The run.")
    validator_hotkey: str = strawberry.field(description="The validator that holds the lease.")
    lease_expires_at: datetime = strawberry.field(description="When the lease ends unless renewed (UTC).")


@strawberry.type(description="A problem of one of the version's runs reached a final status.")
class VersionProblemScored(VersionEvent):
    run_id: uuid.UUID = strawberry.field(description="The run.")
    problem_id: uuid.UUID = strawberry.field(description="The problem.")
    status: str = strawberry.field(description="SUCCESS, FAILED, TIMED_OUT or SKIPPED.")
    score: float | None = strawberry.field(description="Its score in [0, 1], if reported.")


@strawberry.type(
    description="A run of the version changed status (to RUNNING, or STALE when its lease lapsed)."
)
class VersionRunStatusChanged(VersionEvent):
    run_id: uuid.UUID = strawberry.field(description="The run.")
    previous: RunStatus = strawberry.field(description="The status before.")
    status: RunStatus = strawberry.field(description="The status now.")


@strawberry.type(description="A validator completed a run of the version.")
class VersionRunFinished(VersionEvent):
    run_id: uuid.UUID = strawberry.field(description="The run.")
    status: RunStatus = strawberry.field(description="SUCCESS, FAILED or TIMED_OUT.")
    validator_score: float | None = strawberry.field(description="The run's score, for a success.")
    became_eligible: bool = strawberry.field(description="Whether this run made the version eligible.")


@strawberry.type(description="The version became eligible and entered its suite's board.")
class VersionBecameEligible(VersionEvent):
    rank: int | None = strawberry.field(description="Its rank on entry.")
    final_score: float | None = strawberry.field(description="Its final score.")


@strawberry.type(
    description="The version's rank changed because another entered above it (published for the top of the "
    "board only, as `leaderboardChanges`)."
)
class VersionRankChanged(VersionEvent):
    rank: int = strawberry.field(description="Its rank now.")
    previous_rank: int = strawberry.field(description="Its rank before.")


@strawberry.type(description="The version became the top agent of its suite.")
class VersionBecameTop(VersionEvent):
    final_score: float | None = strawberry.field(description="Its final score.")
    previous_agent_version_id: uuid.UUID | None = strawberry.field(description="The version it replaced.")


AgentVersionEvent = Annotated[
    VersionRunClaimed
    | VersionProblemScored
    | VersionRunStatusChanged
    | VersionRunFinished
    | VersionBecameEligible
    | VersionRankChanged
    | VersionBecameTop
    | KeepAlive,
    strawberry.union("AgentVersionEvent", description="One event of a version's life, or a keep-alive."),
]


def _run_id(row: Event) -> uuid.UUID:
    # A feed's run events are read by their run (services.feeds: run_id IN the versions' runs).
    assert row.run_id is not None, f"run event {row.id} without a run"
    return row.run_id


def _shape(item: feeds.FeedEvent) -> Any:
    row, p = item.event, events.payload_of(item.event)
    base: dict[str, Any] = {
        "cursor": str(row.id),
        "at": row.created_at,
        "agent_version_id": item.agent_version_id,
    }
    if isinstance(p, events.Claimed):
        return VersionRunClaimed(
            **base,
            run_id=_run_id(row),
            validator_hotkey=p.validator_hotkey,
            lease_expires_at=p.lease_expires_at,
        )
    if isinstance(p, events.ProblemReported):
        return VersionProblemScored(
            **base, run_id=_run_id(row), problem_id=p.problem_id, status=p.status, score=p.score
        )
    if isinstance(p, events.StatusChanged):
        return VersionRunStatusChanged(**base, run_id=_run_id(row), previous=p.previous, status=p.status)
    if isinstance(p, events.Finished):
        return VersionRunFinished(
            **base,
            run_id=_run_id(row),
            status=p.status,
            validator_score=p.validator_score,
            became_eligible=p.became_eligible,
        )
    if isinstance(p, events.Entered):
        return VersionBecameEligible(**base, rank=p.rank, final_score=p.final_score)
    if isinstance(p, events.Moved):
        return VersionRankChanged(**base, rank=p.rank, previous_rank=p.previous_rank)
    if isinstance(p, events.TopChanged):
        return VersionBecameTop(
            **base, final_score=p.final_score, previous_agent_version_id=p.previous_agent_version_id
        )
    raise ValueError(f"event {row.id} ({row.topic} {row.kind}) is not in a version's feed")


async def _shaped(rows: Sequence[feeds.FeedEvent]) -> list[Any]:
    return [_shape(r) for r in rows]


After = Annotated[
    str | None, strawberry.argument(description="Resume after this cursor (replays what was missed).")
]


@strawberry.type
class FeedSubscription:
    @strawberry.subscription(
        description="One agent version's events (runs claimed, problems scored, runs finished or lapsed, "
        "became eligible, rank changed, became top) from its first event or after `after`; it does not end. "
        "Public, as the version's evaluation status is; an unknown id is AGENT_VERSION_NOT_FOUND."
    )
    async def agent_version_events(
        self,
        info: Info,
        id: Annotated[uuid.UUID, strawberry.argument(description="The agent version.")],
        after: After = None,
    ) -> AsyncGenerator[AgentVersionEvent, None]:
        db = info.context.runtime.db
        start = max(_cursor(after), _resumed(info))
        if id not in await db.run(agents.versions_by_ids, [id]):
            raise GraphQLError(
                f"agent version {id} does not exist", extensions={"code": "AGENT_VERSION_NOT_FOUND"}
            )

        async def read(cursor: int) -> Sequence[Any]:
            return await db.run(feeds.version_feed, id, after=cursor)

        async for item in _follow(info, read, _shaped, start):
            yield item

    @strawberry.subscription(
        description="The signed miner's events, for every version of its agents (as `agentVersionEvents`), "
        "after `after` or, without one, from now on. Signed (over SSE the usual headers), miners only."
    )
    async def miner_events(self, info: Info, after: After = None) -> AsyncGenerator[AgentVersionEvent, None]:
        # Checked here, not by a permission class: a subscription's permission runs before its stream
        # starts, and over graphql-transport-ws a refusal would then be an `error` message, not `next`.
        hotkey = await info.context.require(Role.MINER)
        db = info.context.runtime.db
        resumed = _resumed(info)
        start = max(_cursor(after), resumed) if after or resumed else await db.run(events.latest_event_id)

        async def read(cursor: int) -> Sequence[Any]:
            return await db.run(feeds.miner_feed, hotkey, after=cursor)

        async for item in _follow(info, read, _shaped, start):
            yield item
