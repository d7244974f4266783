"""``viewer``: the signed caller's own miner or validator, what the REST miner and validator paths
tell it, in one query. Never cached: the response cache skips every signed request."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.reliability_types import TimeWindow, ValidatorReliability
from oro_graph.models import utcnow
from oro_graph.services import viewer as service


@strawberry.enum(description="The role a hotkey is registered with.")
class ViewerRole(Enum):
    MINER = strawberry.enum_value("miner", description="Submits agents.")
    VALIDATOR = strawberry.enum_value("validator", description="Holds a validator permit and evaluates.")


@strawberry.type(description="One of the signed miner's agents with every version, released or not.")
class OwnAgent:
    agent: refs.Agent = strawberry.field(description="The agent.")
    versions: list[refs.AgentVersion] = strawberry.field(
        description="Every version, first submitted first, with its state (its owner sees unreleased ones)."
    )

    @strawberry.field(description="Its most recent version (null only for an agent without versions).")
    def latest_version(self) -> refs.AgentVersion | None:
        return self.versions[-1] if self.versions else None


@strawberry.type(
    description="The signed miner as it sees itself: the REST `/v1/miner/*` reads in one answer."
)
class MinerViewer:
    hotkey: str = strawberry.field(description="The miner's SS58 hotkey.")
    can_submit: bool = strawberry.field(
        description="Whether a submission now would pass the cooldown (REST submit's rule)."
    )
    next_allowed_at: datetime | None = strawberry.field(
        description="When the cooldown ends (UTC); null before its first submission."
    )
    inference: refs.MinerInferenceAuth = strawberry.field(
        description="Its inference credentials' status (never their secrets), as `myInferenceAuth`."
    )
    agents: list[OwnAgent] = strawberry.field(description="Its agents, oldest first.")
    recent_failures: list[refs.EvaluationRun] = strawberry.field(
        description="Its versions' latest FAILED, TIMED_OUT or STALE runs, latest claim first; "
        "`failureReason` says why each failed."
    )

    race_selection_version_id: strawberry.ID | None = strawberry.field(
        description="The version it pinned to race with (its best qualifying version races when null)."
    )
    race_selection_updated_at: datetime | None = strawberry.field(description="When it pinned it (UTC).")

    @strawberry.field(description="The version it pinned to race with, or null.")
    async def race_selection(self, info: Info) -> refs.AgentVersion | None:
        if self.race_selection_version_id is None:
            return None
        row = await info.context.loaders.agent_version_by_id.load(
            uuid.UUID(str(self.race_selection_version_id))
        )
        return refs.AgentVersion.of(row) if row else None

    @strawberry.field(description="Its public Miner node (null before its first submission).")
    async def miner(self, info: Info) -> refs.Miner | None:
        row = await info.context.loaders.miner_by_hotkey.load(self.hotkey)
        return refs.Miner.of(row) if row else None


@strawberry.type(description="The lease a validator holds on its current run.")
class ValidatorLease:
    run_id: strawberry.ID = strawberry.field(description="The run the lease is on (its UUID).")
    expires_at: datetime = strawberry.field(description="When the lease lapses without a heartbeat (UTC).")
    last_heartbeat_at: datetime | None = strawberry.field(description="Its last heartbeat (UTC).")
    seconds_remaining: int = strawberry.field(
        description="Whole seconds until it lapses, at the answer's time."
    )


@strawberry.type(
    description="The signed validator as it sees itself: its lease, recent outcomes and reliability."
)
class ValidatorViewer:
    hotkey: str = strawberry.field(description="The validator's SS58 hotkey.")
    current_run: refs.EvaluationRun | None = strawberry.field(
        description="The run it holds now (its latest live claim), or null."
    )
    lease: ValidatorLease | None = strawberry.field(description="The lease on `currentRun`, or null.")
    recent_runs: list[refs.EvaluationRun] = strawberry.field(
        description="Its latest runs, latest claim first, with their statuses (its recent outcomes)."
    )

    @strawberry.field(description="Its public Validator node.")
    async def validator(self, info: Info) -> refs.Validator | None:
        view = await info.context.loaders.validator_by_hotkey.load(self.hotkey)
        return refs.Validator.of(view) if view else None

    @strawberry.field(
        description="Outcomes, lease health, durations and agreement with peers over runs claimed in "
        "`window` (the same figures as `Validator.reliability`)."
    )
    async def reliability(
        self,
        info: Info,
        window: Annotated[
            TimeWindow | None, strawberry.argument(description="Claim-time range; all time if omitted.")
        ] = None,
    ) -> ValidatorReliability:
        w = window or TimeWindow()
        loader = info.context.loaders.reliability_by_hotkey_and_window
        return ValidatorReliability.of(await loader.load((self.hotkey, w.since, w.until)))


@strawberry.type(
    description="The signed caller: a registered miner or validator. Exactly one of `miner` and "
    "`validator` is set."
)
class Viewer:
    hotkey: str = strawberry.field(description="The signing hotkey.")
    name: str | None = strawberry.field(description="Its registered display name.")
    role: ViewerRole = strawberry.field(description="The role it is registered with.")
    miner: MinerViewer | None = strawberry.field(description="Set when the caller is a miner.")
    validator: ValidatorViewer | None = strawberry.field(description="Set when the caller is a validator.")


def _miner(info: Info, found: service.MinerSelf) -> MinerViewer:
    pin = found.race_selection
    own = [v.id for versions in found.versions.values() for v in versions]
    info.context.own_versions.update(own)  # links from its runs to its versions show them to their owner
    return MinerViewer(
        hotkey=found.hotkey.ss58,
        can_submit=found.can_submit,
        next_allowed_at=found.next_allowed_at,
        inference=refs.MinerInferenceAuth(
            readiness=found.inference.readiness,
            detail=found.inference.detail,
            default_provider=found.inference.default_provider,
            credentials=[refs.InferenceCredentialStatus.of(c) for c in found.inference.credentials],
        ),
        agents=[
            OwnAgent(
                agent=refs.Agent.of(a),
                versions=[refs.AgentVersion.of(v) for v in found.versions.get(a.id, [])],
            )
            for a in found.agents
        ],
        recent_failures=[refs.EvaluationRun.of(r) for r in found.failed_runs],
        race_selection_version_id=strawberry.ID(str(pin.agent_version_id)) if pin else None,
        race_selection_updated_at=pin.updated_at if pin else None,
    )


def _validator(found: service.ValidatorSelf) -> ValidatorViewer:
    run = found.current_run
    lease = None
    if run is not None:
        left = int((run.lease_expires_at - utcnow()).total_seconds())
        lease = ValidatorLease(
            run_id=strawberry.ID(str(run.id)),
            expires_at=run.lease_expires_at,
            last_heartbeat_at=run.last_heartbeat_at,
            seconds_remaining=max(0, left),
        )
    return ValidatorViewer(
        hotkey=found.hotkey.ss58,
        current_run=refs.EvaluationRun.of(run) if run is not None else None,
        lease=lease,
        recent_runs=[refs.EvaluationRun.of(r) for r in found.recent_runs],
    )


@strawberry.type
class ViewerQuery:
    @strawberry.field(
        description="The signed caller's own miner or validator (X-Hotkey, X-Timestamp, X-Nonce, "
        "X-Signature, as REST's signed paths). An unsigned request or a bad signature is a top-level "
        "UNAUTHENTICATED error, an unregistered or banned hotkey FORBIDDEN; never null. Answers to signed "
        "requests are never cached or shared with another caller."
    )
    async def viewer(
        self,
        info: Info,
        recent: Annotated[
            int,
            strawberry.argument(
                description="How many recent failures (miner) or runs (validator) to list, "
                f"1-{service.MAX_RECENT} (clamped)."
            ),
        ] = 10,
    ) -> Viewer:
        hotkey = await info.context.signer()
        runtime = info.context.runtime
        found = await runtime.db.run(service.viewer, hotkey, settings=runtime.settings, limit=recent)
        is_miner = isinstance(found, service.MinerSelf)
        return Viewer(
            hotkey=hotkey,
            name=found.hotkey.name,
            role=ViewerRole.MINER if is_miner else ViewerRole.VALIDATOR,
            miner=_miner(info, found) if isinstance(found, service.MinerSelf) else None,
            validator=_validator(found) if isinstance(found, service.ValidatorSelf) else None,
        )
