"""Race selections: the version a miner pins to race, and the pin and unpin mutations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import strawberry

from oro_graph.errors import ValidationFailed
from oro_graph.graphql import error_types as e
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.ids import parse_node_id, uuid_id
from oro_graph.graphql.permissions import IsMiner
from oro_graph.services import races


@strawberry.type(
    description="The version a miner pinned to race; without a pin its best qualifying version races."
)
class RaceSelection:
    agent_version_id: uuid.UUID = strawberry.field(description="The pinned version.")
    updated_at: datetime = strawberry.field(description="When it was pinned (UTC).")
    locked: bool = strawberry.field(
        description="Whether a race is running: the pin cannot change (or be cleared) until it ends."
    )

    @classmethod
    def of(cls, view: races.SelectionView) -> RaceSelection:
        return cls(
            agent_version_id=view.row.agent_version_id, updated_at=view.row.updated_at, locked=view.locked
        )

    @strawberry.field(
        description="The pinned version; null until its code is released (except to its miner)."
    )
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return refs.shown_version(info, row)


@strawberry.type(
    description="The caller's race selection was cleared: its best qualifying version races again."
)
class UnpinRaceSelectionSuccess:
    miner_hotkey: str = strawberry.field(description="The caller.")


PinRaceSelectionResult = Annotated[
    RaceSelection | e.RaceLockedError | e.NotVersionOwnerError | e.ValidationError,
    strawberry.union(
        "PinRaceSelectionResult",
        description="The pin, or why not: RACE_LOCKED (a race is running), NOT_VERSION_OWNER (another "
        "miner's version, or none), VALIDATION_ERROR (the version cannot race: not ELIGIBLE, or eliminated).",
    ),
]
UnpinRaceSelectionResult = Annotated[
    UnpinRaceSelectionSuccess | e.NoSelectionError | e.RaceLockedError,
    strawberry.union(
        "UnpinRaceSelectionResult",
        description="Cleared, or why not: NO_SELECTION (nothing pinned), RACE_LOCKED (a race is running).",
    ),
]


SIGNED_MINER = " Signed (X-Hotkey, X-Timestamp, X-Nonce, X-Signature) by a registered miner."


@strawberry.type
class RaceMutation:
    @strawberry.mutation(
        description="Pin the caller's version that races (the same as REST PUT /v1/miner/race-selection): it "
        "must be ELIGIBLE and not eliminated; refused while a race runs. A qualifying race's field follows "
        "at once." + SIGNED_MINER,
        permission_classes=[IsMiner],
    )
    async def pin_race_selection(
        self,
        info: Info,
        agent_version_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="One of the caller's versions: its UUID or global id."),
        ],
    ) -> PinRaceSelectionResult:
        hotkey = await info.context.signer()
        runtime = info.context.runtime
        key = parse_node_id(str(agent_version_id), "AgentVersion", uuid_id)
        if key is None:
            raise ValidationFailed(
                f"{agent_version_id!r} is neither an agent version's UUID nor its global id"
            )
        row = await runtime.db.run(
            races.pin_selection, hotkey=hotkey, agent_version_id=key, settings=runtime.settings
        )
        info.context.own_versions.add(row.agent_version_id)  # its owner sees it before its release
        return RaceSelection(agent_version_id=row.agent_version_id, updated_at=row.updated_at, locked=False)

    @strawberry.mutation(
        description="Clear the caller's pin (REST DELETE /v1/miner/race-selection); refused while a race "
        "runs." + SIGNED_MINER,
        permission_classes=[IsMiner],
    )
    async def unpin_race_selection(self, info: Info) -> UnpinRaceSelectionResult:
        hotkey = await info.context.signer()
        await info.context.runtime.db.run(races.unpin_selection, hotkey=hotkey)
        return UnpinRaceSelectionSuccess(miner_hotkey=hotkey)
