"""Submissions and a miner's own agents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from oro_graph.models import AgentVersion, AgentVersionState
from oro_graph.services.agents import Admission, MinerOverview
from oro_graph.services.credentials import CredentialStatus
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
    def of(cls, version: AgentVersion) -> AgentLatestVersion:
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

    @classmethod
    def of(cls, status: CredentialStatus) -> ChutesAuthStatusResponse:
        return cls(connected=status.connected, updated_at=status.updated_at)
