"""Subscriptions: a run's progress and the leaderboard's changes, replayable from a cursor.

Events come from the event log (services.events), written in the same transaction as the change
they describe; a subscriber reads everything after its cursor, then waits for the notifier (fed
by PostgreSQL LISTEN/NOTIFY, Redis pub/sub or in-process commits) or a timer, and reads again.
A ``KeepAlive`` is sent when nothing happened for ``KEEPALIVE_SECONDS`` so proxies keep the stream.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar

import strawberry
from graphql import GraphQLError

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import RunStatus
from oro_graph.models import utcnow
from oro_graph.observability import SUBSCRIPTIONS, SUBSCRIPTIONS_OPENED
from oro_graph.services import agents, evaluations, events, races, suites

KEEPALIVE_SECONDS = 15.0  # under the 30 s most proxies allow an idle stream
POLL_SECONDS = 1.0  # a re-read even without a wake-up (covers a lost notification)


@strawberry.type(description="Sent when nothing happened for 15 s, so the stream stays open through proxies.")
class KeepAlive:
    at: datetime = strawberry.field(description="Server time (UTC).")


@strawberry.interface(description="An event of the log; `cursor` resumes a subscription just after it.")
class LoggedEvent:
    cursor: str = strawberry.field(description="Pass as `after` to resume after this event.")
    at: datetime = strawberry.field(description="When it was committed (UTC).")


@strawberry.type(description="A validator leased the run.")
class RunClaimed(LoggedEvent):
    validator_hotkey: str = strawberry.field(description="The validator that holds the lease.")
    lease_expires_at: datetime = strawberry.field(description="When the lease ends unless renewed (UTC).")


@strawberry.type(description="The validator renewed its lease.")
class RunHeartbeat(LoggedEvent):
    lease_expires_at: datetime = strawberry.field(description="The new end of the lease (UTC).")


@strawberry.type(description="A problem of the run started (or was reported pending).")
class ProblemStarted(LoggedEvent):
    problem_id: uuid.UUID = strawberry.field(description="The problem.")


@strawberry.type(description="A problem of the run reached a final status.")
class ProblemScored(LoggedEvent):
    problem_id: uuid.UUID = strawberry.field(description="The problem.")
    status: str = strawberry.field(description="SUCCESS, FAILED, TIMED_OUT or SKIPPED.")
    score: float | None = strawberry.field(
        description="Its score in [0, 1], if reported (a race run's: null until its race is RACE_COMPLETE)."
    )


@strawberry.type(
    description="The run changed status (CLAIMED to RUNNING, or to STALE when its lease lapsed)."
)
class RunStatusChanged(LoggedEvent):
    previous: RunStatus = strawberry.field(description="The status before.")
    status: RunStatus = strawberry.field(description="The status now.")


@strawberry.type(description="The validator completed the run; the stream ends after this event.")
class RunFinished(LoggedEvent):
    status: RunStatus = strawberry.field(description="SUCCESS, FAILED or TIMED_OUT.")
    validator_score: float | None = strawberry.field(
        description="The run's score, for a success (a race run's: null until its race is RACE_COMPLETE)."
    )
    became_eligible: bool = strawberry.field(description="Whether this run made the version eligible.")


RunProgressEvent = Annotated[
    RunClaimed | RunHeartbeat | ProblemStarted | ProblemScored | RunStatusChanged | RunFinished | KeepAlive,
    strawberry.union("RunProgressEvent", description="One event of a run's life, or a keep-alive."),
]


@strawberry.interface(description="A change of the leaderboard of one suite.")
class BoardChange(LoggedEvent):
    agent_version_id: uuid.UUID = strawberry.field(description="The version concerned.")
    _row: strawberry.Private[models.AgentVersion | None]

    @strawberry.field(description="The version concerned, as it is now; null until its code is released.")
    def agent_version(self, info: Info) -> refs.AgentVersion | None:
        return refs.shown_version(info, self._row)


@strawberry.type(description="A version became eligible and entered the board.")
class LeaderboardEntered(BoardChange):
    rank: int | None = strawberry.field(description="Its rank on entry.")
    final_score: float | None = strawberry.field(description="Its final score.")


@strawberry.type(
    description="A version moved because another entered above it (published for the first 100 places)."
)
class LeaderboardMoved(BoardChange):
    rank: int = strawberry.field(description="Its rank now.")
    previous_rank: int = strawberry.field(description="Its rank before.")
    final_score: float | None = strawberry.field(description="Its final score.")


@strawberry.type(description="A new top agent was crowned (the one that earns emissions).")
class TopAgentChanged(BoardChange):
    final_score: float | None = strawberry.field(description="The new top agent's score.")
    previous_agent_version_id: uuid.UUID | None = strawberry.field(description="The agent it replaced.")


LeaderboardEvent = Annotated[
    LeaderboardEntered | LeaderboardMoved | TopAgentChanged | KeepAlive,
    strawberry.union("LeaderboardEvent", description="One change of the board, or a keep-alive."),
]


def _cursor(after: str | None) -> int:
    if after is None or after == "":
        return 0
    if not (after.isascii() and after.isdigit()) or len(after) > 19:  # "²" is a digit int() refuses
        raise GraphQLError(
            "`after` must be a cursor from an earlier event", extensions={"code": "BAD_USER_INPUT"}
        )
    return int(after)


def _resumed(info: Info) -> int:
    """The cursor an SSE client reconnecting with ``Last-Event-ID`` saw last (0: none)."""
    return _cursor(getattr(info.context, "resume_after", None))


def _run_event(row: models.Event, disclosed: bool = True) -> Any:
    """``disclosed``: whether the run's scores may be shown (services.races.run_scores_disclosed)."""
    p, cursor, at = events.run_payload(row), str(row.id), row.created_at
    if isinstance(p, events.Claimed):
        return RunClaimed(
            cursor=cursor, at=at, validator_hotkey=p.validator_hotkey, lease_expires_at=p.lease_expires_at
        )
    if isinstance(p, events.Heartbeat):
        return RunHeartbeat(cursor=cursor, at=at, lease_expires_at=p.lease_expires_at)
    if isinstance(p, events.ProblemReported):
        if row.kind == events.RunEvent.PROBLEM_STARTED:
            return ProblemStarted(cursor=cursor, at=at, problem_id=p.problem_id)
        score = p.score if disclosed else None
        return ProblemScored(cursor=cursor, at=at, problem_id=p.problem_id, status=p.status, score=score)
    if isinstance(p, events.StatusChanged):
        return RunStatusChanged(cursor=cursor, at=at, previous=p.previous, status=p.status)
    return RunFinished(
        cursor=cursor,
        at=at,
        status=p.status,
        validator_score=p.validator_score if disclosed else None,
        became_eligible=p.became_eligible,
    )


def _board_event(row: models.Event, version: models.AgentVersion | None) -> Any:
    p = events.board_payload(row)
    base: dict[str, Any] = {
        "cursor": str(row.id),
        "at": row.created_at,
        "agent_version_id": row.agent_version_id,
        "_row": version,
    }
    if isinstance(p, events.Entered):
        return LeaderboardEntered(**base, rank=p.rank, final_score=p.final_score)
    if isinstance(p, events.Moved):
        return LeaderboardMoved(**base, rank=p.rank, previous_rank=p.previous_rank, final_score=p.final_score)
    return TopAgentChanged(
        **base, final_score=p.final_score, previous_agent_version_id=p.previous_agent_version_id
    )


class _Cursored(Protocol):
    """A row of an event log read: its id is the cursor (models.Event, services.feeds.FeedEvent)."""

    @property
    def id(self) -> int | None: ...


RowT = TypeVar("RowT", bound=_Cursored)


async def _follow(
    info: Info,
    read: Callable[[int], Awaitable[Sequence[RowT]]],
    shape: Callable[[Sequence[RowT]], Awaitable[list[Any]]],
    cursor: int,
    *,
    until: Callable[[RowT], bool] = lambda _: False,
    keepalive: bool = True,
) -> AsyncGenerator[Any, None]:
    notifier = info.context.runtime.notifier
    quiet_since = utcnow()
    field = info.field_name  # a label from the schema's own few names
    SUBSCRIPTIONS_OPENED.labels(field).inc()
    SUBSCRIPTIONS.labels(field).inc()
    try:
        while True:
            rows = await read(cursor)
            if rows:
                for item, row in zip(await shape(rows), rows, strict=True):
                    info.context.event_cursor = str(row.id)  # the SSE event's id (graphql-sse)
                    yield item
                    cursor = row.id or cursor
                    if until(row):
                        return
                quiet_since = utcnow()
                continue
            if keepalive and (utcnow() - quiet_since).total_seconds() >= KEEPALIVE_SECONDS:
                yield KeepAlive(at=utcnow())
                quiet_since = utcnow()
            await notifier.wait(timeout=POLL_SECONDS)
    finally:
        SUBSCRIPTIONS.labels(field).dec()


async def follow_log(
    info: Info,
    read: Callable[[int], Awaitable[Sequence[models.Event]]],
    shape: Callable[[Sequence[models.Event]], Awaitable[list[Any]]],
    after: str | None,
    *,
    keepalive: bool = True,
) -> AsyncGenerator[Any, None]:
    """Events after ``after`` (or an SSE client's Last-Event-ID); without either, from now on."""
    db = info.context.runtime.db
    resumed = _resumed(info)
    start = max(_cursor(after), resumed) if after or resumed else await db.run(events.latest_event_id)
    async for item in _follow(info, read, shape, start, keepalive=keepalive):
        yield item


SUBSCRIPTION_HELP = (
    "Live streams over graphql-transport-ws (/graphql) or server-sent events: graphql-sse on /graphql "
    "itself (GET or POST with Accept: text/event-stream) or on /graphql/stream (GET or POST)."
)


@strawberry.type(description=SUBSCRIPTION_HELP)
class Subscription:
    @strawberry.subscription(
        description="The events of one run, from the start or after `after`; ends when the run ends."
    )
    async def run_progress(
        self,
        info: Info,
        run_id: Annotated[uuid.UUID, strawberry.argument(description="The evaluation run.")],
        after: Annotated[
            str | None,
            strawberry.argument(
                description=(
                    "Resume after this cursor (replays what was missed and is still kept: heartbeats "
                    "for ORO_HEARTBEAT_RETENTION_HOURS, 24 by default, a run's other events for "
                    "ORO_RUN_EVENT_RETENTION_DAYS, 90 by default)."
                )
            ),
        ] = None,
    ) -> AsyncGenerator[RunProgressEvent, None]:
        db = info.context.runtime.db
        start = max(_cursor(after), _resumed(info))
        run = (await db.run(evaluations.runs_by_ids, [run_id])).get(run_id)
        if run is None:
            raise GraphQLError(
                f"evaluation run {run_id} does not exist", extensions={"code": "EVAL_RUN_NOT_FOUND"}
            )

        async def read(cursor: int) -> Sequence[models.Event]:
            return await db.run(events.run_events, run_id, after=cursor)

        async def shape(rows: Sequence[models.Event]) -> list[Any]:
            # A race run's scores are embargoed until its race completes: its status read per batch.
            race = await db.run(races.get_race, run.race_id) if run.race_id is not None else None
            disclosed = races.run_scores_disclosed(race)
            return [_run_event(r, disclosed) for r in rows]

        def ended(row: models.Event) -> bool:
            p = events.run_payload(row)
            return isinstance(p, events.Finished) or (
                isinstance(p, events.StatusChanged) and p.status.is_ended
            )

        async for item in _follow(info, read, shape, start, until=ended):
            yield item

    @strawberry.subscription(
        description="Changes of a suite's leaderboard (entered, moved, top agent changed) after `after`."
    )
    async def leaderboard_changes(
        self,
        info: Info,
        suite_id: Annotated[
            int | None, strawberry.argument(description="The suite; the active one if omitted.")
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Resume after this cursor; without one, only changes from now on."
            ),
        ] = None,
    ) -> AsyncGenerator[LeaderboardEvent, None]:
        db = info.context.runtime.db
        suite = await db.run(suites.resolve_suite, suite_id)
        resumed = _resumed(info)
        start = max(_cursor(after), resumed) if after or resumed else await db.run(events.latest_event_id)

        async def read(cursor: int) -> Sequence[models.Event]:
            return await db.run(events.board_events, suite.id or 0, after=cursor)

        async def shape(rows: Sequence[models.Event]) -> list[Any]:
            found = await db.run(
                agents.versions_by_ids, [r.agent_version_id for r in rows if r.agent_version_id]
            )
            return [_board_event(r, found.get(r.agent_version_id)) for r in rows]  # type: ignore[arg-type]

        async for item in _follow(info, read, shape, start):
            yield item
