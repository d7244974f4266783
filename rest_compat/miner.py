"""/v1/miner/...: submissions and a miner's own agents. Signed; a miner sees only its own rows."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from oro_graph.errors import ErrorCode as E
from oro_graph.services import agents, credentials, inference
from oro_graph.threads import to_thread
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
    file: Annotated[UploadFile, File(description="the agent: UTF-8 Python source in a file named *.py")],
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
    # One byte past the limit is enough for the service to refuse it; never read a huge upload whole.
    content = await file.read(runtime.settings.max_agent_bytes + 1)
    admission = await agents.submit(
        runtime.db,
        runtime.parser,
        hotkey=hotkey,
        agent_name=agent_name,
        content=content,
        file_name=file.filename or "",
        settings=runtime.settings,
        storage=runtime.storage,
        over_limit=wait,
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
    """The status of one of the caller's versions (another miner's version is not found), with
    whether it waits for an inference credential (``waiting_for_inference_credential``) and why."""
    status = await runtime.db.run(
        inference.owned_version_status, agent_version_id, owner=hotkey, settings=runtime.settings
    )
    return schemas.AgentVersionStatus.of(status.view, runtime.settings, status)


@router.post("/chutes-auth")
async def store_chutes_token(
    body: schemas.StoreChutesTokenRequest, hotkey: MinerHotkey, runtime: RuntimeDep, limits: RateLimitsDep
) -> dict[str, bool]:
    """Store the caller's Chutes refresh token, encrypted; it is never returned. (The same store as
    ``POST /v1/miner/inference-auth/chutes``.)"""
    await limits.charge_write(hotkey, "credentials")
    await runtime.db.run(
        credentials.store_credential, hotkey=hotkey, token=body.refresh_token, secret=runtime.settings.secret
    )
    return {"success": True}


@router.get("/chutes-auth/status")
async def get_chutes_auth_status(
    hotkey: MinerHotkey, runtime: RuntimeDep
) -> schemas.ChutesAuthStatusResponse:
    """Whether the caller has stored a Chutes token, when, and whether claims can mint from it."""
    return schemas.ChutesAuthStatusResponse.of(
        await runtime.db.run(credentials.credential_status, hotkey=hotkey, settings=runtime.settings)
    )


@router.get("/inference-auth")
async def list_inference_auth(hotkey: MinerHotkey, runtime: RuntimeDep) -> schemas.InferenceAuthListResponse:
    """Every provider's credential status for the caller, its default provider, and whether its
    versions are offered to validators (``readiness``) or wait, and why."""
    view = await runtime.db.run(credentials.miner_inference, hotkey=hotkey, settings=runtime.settings)
    return schemas.InferenceAuthListResponse.of(view)


@router.patch("/inference-auth/default")
async def set_default_inference_provider(
    body: schemas.SetDefaultProviderRequest, hotkey: MinerHotkey, runtime: RuntimeDep
) -> dict[str, str | None]:
    """Choose which connected provider claims mint tokens from (422 if unknown or not connected)."""
    provider = await runtime.db.run(credentials.set_default_provider, hotkey=hotkey, provider=body.provider)
    return {"default_provider": provider}


@router.get("/inference-auth/{provider}")
async def get_inference_auth_status_one(
    provider: str, hotkey: MinerHotkey, runtime: RuntimeDep
) -> schemas.InferenceAuthStatusResponse:
    """The caller's credential for one provider (``connected: false`` if none; 422 for an unknown
    provider)."""
    status = await runtime.db.run(
        credentials.credential_status, hotkey=hotkey, provider=provider, settings=runtime.settings
    )
    return schemas.InferenceAuthStatusResponse.of(status)


@router.post("/inference-auth/{provider}")
async def store_inference_credential(
    provider: str, body: schemas.StoreInferenceCredentialRequest, hotkey: MinerHotkey, runtime: RuntimeDep
) -> dict[str, bool]:
    """Store the caller's credential for a provider (a Chutes refresh token or an OpenRouter API
    key), encrypted; it is never returned. Replacing one clears a refusal of the old one."""
    status = await runtime.db.run(
        credentials.store_credential,
        hotkey=hotkey,
        token=body.credential,
        secret=runtime.settings.secret,
        provider=provider,
    )
    return {"success": True, "connected": status.connected}


@router.delete("/inference-auth/{provider}")
async def delete_inference_credential(
    provider: str, hotkey: MinerHotkey, runtime: RuntimeDep
) -> dict[str, str | None]:
    """Forget the caller's credential for a provider (a 200 saying ``not connected`` if there was none)."""
    existed, default = await runtime.db.run(credentials.delete_credential, hotkey=hotkey, provider=provider)
    return {
        "provider": provider,
        "status": "deleted" if existed else "not connected",
        "default_provider": default,
    }


@router.post("/chutes/exchange-code", responses=documented({503: [E.SERVICE_UNAVAILABLE]}))
async def exchange_chutes_code(
    body: schemas.ExchangeChutesCodeRequest, hotkey: MinerHotkey, runtime: RuntimeDep
) -> schemas.ExchangeChutesCodeResponse:
    """Finish the Chutes sign-in: exchange the authorization code (with its PKCE verifier) for a
    refresh token, stored encrypted. 422 says why the exchange was refused (a redirect URI not in
    ORO_CHUTES_REDIRECT_URIS, a bad verifier, a code the provider refused)."""
    assert runtime.inference is not None
    await to_thread(
        inference.exchange_chutes_code,
        runtime.db,
        runtime.inference,
        hotkey=hotkey,
        code=body.code,
        code_verifier=body.code_verifier,
        redirect_uri=body.redirect_uri,
    )
    view = await runtime.db.run(credentials.miner_inference, hotkey=hotkey, settings=runtime.settings)
    return schemas.ExchangeChutesCodeResponse(ok=True, default_provider=view.default_provider)
