"""/v1/miner/...: submissions and a miner's own agents. Signed; a miner sees only its own rows."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from oro_graph.errors import ErrorCode as E
from oro_graph.errors import RateLimitExceeded
from oro_graph.services import agents, credentials
from rest_compat import schemas
from rest_compat.deps import MinerHotkey, RateLimitsDep, RuntimeDep, SignedHotkey
from rest_compat.errors import documented

router = APIRouter(
    prefix="/v1/miner",
    tags=["miner"],
    responses=documented({401: [E.UNAUTHENTICATED], 403: [E.FORBIDDEN], 429: [E.RATE_LIMIT_EXCEEDED]}),
)


@router.post(
    "/submit",
    responses=documented(
        {
            400: [E.INVALID_AGENT_NAME, E.INVALID_FILE],
            413: [E.FILE_TOO_LARGE],
            429: [E.COOLDOWN_ACTIVE, E.RATE_LIMIT_EXCEEDED],
            503: [E.NO_ACTIVE_SUITE],
        }
    ),
)
async def submit_agent(
    agent_name: Annotated[
        str, Form(description="unique per miner; a new file under the same name is a new version")
    ],
    file: Annotated[UploadFile, File(description="the agent: UTF-8 Python source")],
    hotkey: SignedHotkey,
    runtime: RuntimeDep,
    limits: RateLimitsDep,
) -> schemas.SubmitAgentResponse:
    """Submit an agent file for evaluation.

    Signed by any hotkey: an unregistered or banned one gets a REJECTED admission with its reason.
    Over the per-hotkey submission limit the answer is COOLDOWN_ACTIVE when a cooldown runs (it
    says when to come back), else RATE_LIMIT_EXCEEDED.
    """
    wait = await limits.hit_submitter(hotkey)
    if wait is not None:
        await runtime.db.run(agents.check_cooldown, hotkey, settings=runtime.settings)
        raise RateLimitExceeded(
            f"too many submissions from this hotkey; retry in {wait} s", remaining_seconds=wait
        )
    # One byte past the limit is enough for the service to refuse it; never read a huge upload whole.
    content = await file.read(runtime.settings.max_agent_bytes + 1)
    admission = await runtime.db.run(
        agents.submit_agent,
        hotkey=hotkey,
        agent_name=agent_name,
        content=content,
        settings=runtime.settings,
        storage=runtime.storage,
    )
    return schemas.SubmitAgentResponse.of(admission)


@router.get("/agents")
async def list_miner_agents(hotkey: MinerHotkey, runtime: RuntimeDep) -> schemas.MinerAgentsResponse:
    """The caller's agents with their latest versions, and whether it may submit now."""
    overview = await runtime.db.run(agents.miner_overview, hotkey, settings=runtime.settings)
    return schemas.MinerAgentsResponse.of(overview)


@router.get("/agents/{agent_id}/versions", responses=documented({404: [E.AGENT_NOT_FOUND]}))
async def list_agent_versions(
    agent_id: uuid.UUID, hotkey: MinerHotkey, runtime: RuntimeDep
) -> list[schemas.AgentVersionHistoryEntry]:
    """Every version of one of the caller's agents (another miner's agent is not found)."""
    versions = await runtime.db.run(agents.owned_agent_versions, agent_id, owner=hotkey)
    return [schemas.AgentVersionHistoryEntry.of(version) for version in versions]


@router.get("/agent-versions/{agent_version_id}", responses=documented({404: [E.AGENT_VERSION_NOT_FOUND]}))
async def get_owned_agent_version_status(
    agent_version_id: uuid.UUID, hotkey: MinerHotkey, runtime: RuntimeDep
) -> schemas.AgentVersionStatus:
    """The status of one of the caller's versions (another miner's version is not found)."""
    view = await runtime.db.run(agents.version_view, agent_version_id, owner=hotkey)
    return schemas.AgentVersionStatus.of(view, runtime.settings)


@router.post("/chutes-auth")
async def store_chutes_token(
    body: schemas.StoreChutesTokenRequest, hotkey: MinerHotkey, runtime: RuntimeDep, limits: RateLimitsDep
) -> dict[str, bool]:
    """Store the caller's Chutes refresh token, encrypted; it is never returned."""
    await limits.charge_write(hotkey, "credentials")
    await runtime.db.run(
        credentials.store_credential, hotkey=hotkey, token=body.refresh_token, secret=runtime.settings.secret
    )
    return {"success": True}


@router.get("/chutes-auth/status")
async def get_chutes_auth_status(
    hotkey: MinerHotkey, runtime: RuntimeDep
) -> schemas.ChutesAuthStatusResponse:
    """Whether the caller has stored a Chutes token, and when."""
    return schemas.ChutesAuthStatusResponse.of(
        await runtime.db.run(credentials.credential_status, hotkey=hotkey)
    )
