"""What happens to races, as changes read from the event log and as a subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.dataloaders import Loaders
from oro_graph.graphql.subscriptions import follow_log
from oro_graph.services import events

RaceChangeKind = events.RaceEvent
strawberry.enum(
    RaceChangeKind,
    name="RaceChangeKind",
    description="What happened to a race. QUALIFIER_DID_NOT_FINISH events are announced when the race "
    "completes, since who did not finish is embargoed with the scores; TOP_CHANGED: the race's winner "
    "became the suite's top agent.",
)


@strawberry.type(
    description="Something happened to a race; `race` and `qualifier` are as they are when delivered."
)
class RaceChange:
    cursor: str = strawberry.field(description="Pass as `after` to resume after this change.")
    kind: RaceChangeKind = strawberry.field(description="What happened.")
    at: datetime = strawberry.field(description="When it happened (UTC).")
    race: refs.Race = strawberry.field(
        description="The race, as it is now (results still embargoed while it runs)."
    )
    qualifier: refs.RaceQualifier | None = strawberry.field(
        description="The qualifier concerned (entered, finished, did not finish, the winner of a completed "
        "race, the new top agent); null for the race's own changes and for a version no longer in the field."
    )


async def race_changes(info: Info, rows: Sequence[models.Event]) -> list[RaceChange]:
    """The log's race events as RaceChanges, reading races and qualifiers as they are now: fresh
    loaders per batch, since a subscription's context lives as long as the stream."""
    info.context.loaders = Loaders(info.context.runtime.db)
    loaders = info.context.loaders
    ids = [events.race_payload(row).race_id for row in rows]
    found = await loaders.race_by_id.load_many(ids)
    fields = await loaders.qualifiers_by_race_id.load_many(ids)
    out = []
    for row, race, field in zip(rows, found, fields, strict=True):
        assert race is not None  # races are never deleted
        qualifier = next((q for q in field if q.row.agent_version_id == row.agent_version_id), None)
        out.append(
            RaceChange(
                cursor=str(row.id),
                kind=events.RaceEvent(row.kind),
                at=row.created_at,
                race=refs.Race.of(race),
                qualifier=refs.RaceQualifier.of(qualifier, race, None) if qualifier else None,
            )
        )
    return out


@strawberry.type
class RaceSubscription:
    @strawberry.subscription(
        description="Every race's changes (opened, qualifier entered, qualifying closed, qualifier finished "
        "or did not, completed, cancelled, top changed), in log order after `after`; without a cursor, only "
        "changes from now on."
    )
    async def race_changes(
        self,
        info: Info,
        after: Annotated[
            str | None,
            strawberry.argument(description="Resume after this cursor (replays what was missed)."),
        ] = None,
    ) -> AsyncGenerator[RaceChange, None]:

        db = info.context.runtime.db

        async def read(cursor: int) -> Sequence[models.Event]:
            return await db.run(events.race_events, after=cursor)

        async def shape(rows: Sequence[models.Event]) -> list[Any]:
            return await race_changes(info, rows)

        async for item in follow_log(info, read, shape, after, keepalive=False):
            yield item
