"""Submissions and a miner's own agents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import Field

from oro_graph.models import AgentVersion, AgentVersionState
from oro_graph.services.agents import Admission, MinerOverview
from oro_graph.services.credentials import CredentialStatus, MinerInference, Readiness
from rest_compat.schemas.base import Schema


class SubmitAgentResponse(Schema):
    admission_status: Literal["ACCEPTED", "REJECTED"]
    hotkey: str
    agent_id: uuid.UUID | None = None
    agent_version_id: uuid.UUID | None = None
    version_number: int | None = None
    admission_reason: (
        Literal["BANNED", "COOLDOWN", "INVALID_FILE", "NOT_REGISTERED_ONCHAIN", "NO_ACTIVE_SUITE"] | None
    ) = None
    next_allowed_at: datetime | None = None
    message: str = ""

    @classmethod
    def of(cls, admission: Admission) -> SubmitAgentResponse:
        return cls.model_validate(
            {
                "admission_status": admission.status,
                "hotkey": admission.hotkey,
                "agent_id": admission.agent_id,
                "agent_version_id": admission.agent_version_id,
                "version_number": admission.version_number,
                "admission_reason": admission.reason,
                "next_allowed_at": admission.next_allowed_at,
                "message": admission.message,
            }
        )


class AgentLatestVersion(Schema):
    agent_version_id: uuid.UUID
    version_number: int
    submitted_at: datetime
    state: AgentVersionState
    final_score: float | None = None

    @classmethod
    def of(cls, version: AgentVersion) -> Self:
        return cls(
            agent_version_id=version.id,
            version_number=version.version_number,
            submitted_at=version.submitted_at,
            state=AgentVersionState(version.state),
            final_score=version.final_score,
        )


class AgentVersionHistoryEntry(AgentLatestVersion):
    pass


class AgentPublic(Schema):
    agent_id: uuid.UUID
    miner_hotkey: str
    agent_name: str
    created_at: datetime
    latest_version: AgentLatestVersion | None = None


class MinerAgentsResponse(Schema):
    agents: list[AgentPublic]
    can_submit: bool
    next_allowed_at: datetime | None = None

    @classmethod
    def of(cls, overview: MinerOverview) -> MinerAgentsResponse:
        entries = []
        for agent in overview.agents:
            latest = overview.latest.get(agent.id)
            entries.append(
                AgentPublic(
                    agent_id=agent.id,
                    miner_hotkey=agent.miner_hotkey,
                    agent_name=agent.name,
                    created_at=agent.created_at,
                    latest_version=AgentLatestVersion.of(latest) if latest else None,
                )
            )
        return cls(agents=entries, can_submit=overview.can_submit, next_allowed_at=overview.next_allowed_at)


class StoreChutesTokenRequest(Schema):
    refresh_token: str = Field(description="kept encrypted at rest; never returned or logged")


class ChutesAuthStatusResponse(Schema):
    connected: bool
    updated_at: datetime | None = None
    usable: bool = Field(
        default=False, description="claims can mint from it (stored, not refused, provider configured)"
    )
    last_refresh_error: str | None = Field(
        default=None, description="why the last token refresh failed, if it did"
    )

    @classmethod
    def of(cls, status: CredentialStatus) -> ChutesAuthStatusResponse:
        return cls(
            connected=status.connected,
            updated_at=status.updated_at,
            usable=status.usable,
            last_refresh_error=status.error_detail,
        )


class InferenceAuthStatusResponse(Schema):
    """One provider's credential as its miner sees it: never the secret."""

    connected: bool
    provider: str
    updated_at: datetime | None = None
    is_default: bool = False
    usable: bool = Field(
        default=False, description="claims can mint from it (stored, not refused, provider configured)"
    )
    last_refreshed_at: datetime | None = Field(default=None, description="the last successful token refresh")
    last_refresh_error_code: str | None = Field(
        default=None, description="REFRESH_REFUSED or PROVIDER_UNAVAILABLE"
    )
    last_refresh_error: str | None = Field(
        default=None, description="why the last token refresh failed, if it did"
    )
    last_refresh_error_at: datetime | None = None

    @classmethod
    def of(cls, status: CredentialStatus) -> InferenceAuthStatusResponse:
        return cls(
            connected=status.connected,
            provider=status.provider,
            updated_at=status.updated_at,
            is_default=status.is_default,
            usable=status.usable,
            last_refreshed_at=status.last_refreshed_at,
            last_refresh_error_code=status.error_code,
            last_refresh_error=status.error_detail,
            last_refresh_error_at=status.error_at,
        )


class InferenceAuthListResponse(Schema):
    providers: list[InferenceAuthStatusResponse]
    default_provider: str | None = None
    readiness: Readiness = Field(
        description="READY, or why this miner's versions wait instead of being offered"
    )
    readiness_detail: str

    @classmethod
    def of(cls, view: MinerInference) -> InferenceAuthListResponse:
        return cls(
            providers=[InferenceAuthStatusResponse.of(s) for s in view.credentials],
            default_provider=view.default_provider,
            readiness=view.readiness,
            readiness_detail=view.detail,
        )


class StoreInferenceCredentialRequest(Schema):
    credential: str = Field(description="a refresh token (chutes) or an API key (openrouter); never returned")


class SetDefaultProviderRequest(Schema):
    provider: str


class ExchangeChutesCodeRequest(Schema):
    code: str
    code_verifier: str
    redirect_uri: str


class ExchangeChutesCodeResponse(Schema):
    ok: bool
    default_provider: str | None = None
