"""A validator's work: claim, heartbeat, progress, completion and log uploads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from oro_graph.models import ProblemStatus
from oro_graph.services import evaluations
from oro_graph.services.artifacts import UploadGrant
from oro_graph.services.evaluations import Claim, Completion
from oro_graph.services.providers import Grant
from rest_compat.schemas.base import JsonInput, Schema


class ValidatorMetrics(Schema):
    service_versions: JsonInput | None = None
    cpu_pct: float | None = None
    ram_pct: float | None = None
    disk_pct: float | None = None
    docker_container_count: int | None = None

    def metrics(self) -> evaluations.Metrics:
        return evaluations.Metrics(**self.model_dump(include=set(ValidatorMetrics.model_fields)))


class ClaimWorkRequest(ValidatorMetrics):
    runtime_contract: int | None = Field(
        default=None, description="accepted and ignored: this server has no env packs"
    )


class HeartbeatRequest(ValidatorMetrics):
    pass


class InferenceTokenGrant(Schema):
    """Per-run inference credential minted at claim time from the miner's stored credential."""

    provider: Literal["chutes", "openrouter"]
    access_token: str = Field(
        description="bearer credential to present at base_url; for the lease holder only"
    )
    base_url: str = Field(description="OpenAI-compatible inference API base URL")
    expires_at: datetime = Field(description="when the token stops being usable (UTC)")

    @classmethod
    def of(cls, grant: Grant | None) -> InferenceTokenGrant | None:
        if grant is None or grant.expires_at is None:
            return None
        return cls(
            provider=grant.provider,
            access_token=grant.access_token,
            base_url=grant.base_url,
            expires_at=grant.expires_at,
        )


class ClaimWorkResponse(Schema):
    eval_run_id: uuid.UUID
    agent_version_id: uuid.UUID
    suite_id: int
    lease_expires_at: datetime
    code_download_url: str
    code_sha256: str = Field(description="SHA-256 of the agent file behind code_download_url")
    race_id: uuid.UUID | None = Field(default=None, description="the race this run is race work for, if any")
    inference_token: InferenceTokenGrant | None = Field(
        default=None, description="the token to run the agent's inference with (oro-sdk 7)"
    )
    chutes_access_token: str | None = Field(
        default=None,
        description="the same token when its provider is Chutes (oro-sdk 1.0.50 reads this name)",
    )

    @classmethod
    def of(cls, claim: Claim, grant: Grant | None = None) -> ClaimWorkResponse:
        token = InferenceTokenGrant.of(grant)
        return cls(
            race_id=claim.run.race_id,
            eval_run_id=claim.run.id,
            agent_version_id=claim.run.agent_version_id,
            suite_id=claim.run.suite_id,
            lease_expires_at=claim.run.lease_expires_at,
            code_download_url=claim.code_download_url,
            code_sha256=claim.code_sha256,
            inference_token=token,
            chutes_access_token=token.access_token if token and token.provider == "chutes" else None,
        )


class HeartbeatResponse(Schema):
    lease_expires_at: datetime


class ProblemProgressUpdate(Schema):
    problem_id: uuid.UUID
    status: ProblemStatus
    score: float | None = None
    score_components_summary: JsonInput | None = None
    logs_s3_key: str | None = None
    reasoning_score: float | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None
    execution_time: float | None = None

    def update(self) -> evaluations.ProblemUpdate:
        return evaluations.ProblemUpdate(
            problem_id=self.problem_id,
            status=self.status,
            score=self.score,
            reasoning_score=self.reasoning_score,
            score_components=self.score_components_summary,
            logs_key=self.logs_s3_key,
            execution_time=self.execution_time,
            inference_failure_count=self.inference_failure_count,
            inference_total=self.inference_total,
        )


class ProgressUpdateRequest(Schema):
    problems: list[ProblemProgressUpdate]


class ProgressUpdateResponse(Schema):
    accepted: bool = True


class CompleteRunRequest(Schema):
    terminal_status: Literal["SUCCESS", "FAILED", "TIMED_OUT"]
    validator_score: float | None = Field(default=None, description="required for SUCCESS; between 0 and 1")
    score_components: JsonInput | None = None
    results_s3_key: str | None = None
    failure_reason: str | None = None
    sandbox_metadata: JsonInput | None = None


class WorkItemStatus(Schema):
    included_success_count: int
    required_successes: int
    is_closed: bool


class CompleteRunResponse(Schema):
    eval_run_id: uuid.UUID
    status: str
    work_item: WorkItemStatus
    agent_version_became_eligible: bool
    final_score: float | None = None

    @classmethod
    def of(cls, done: Completion) -> CompleteRunResponse:
        work = done.work_item
        return cls(
            eval_run_id=done.run.id,
            status=done.run.status,
            work_item=WorkItemStatus(
                included_success_count=work.included_successes,
                required_successes=work.required_successes,
                is_closed=work.is_closed,
            ),
            agent_version_became_eligible=done.became_eligible,
            final_score=done.final_score,
        )


class PresignUploadRequest(Schema):
    content_length: int = Field(description="size in bytes of the upload; the URL accepts no more")
    eval_run_id: uuid.UUID
    problem_id: uuid.UUID
    content_type: str = "application/json"


class PresignUploadResponse(Schema):
    upload_url: str
    results_s3_key: str = Field(description="pass as logs_s3_key in a progress update")
    expires_at: datetime
    method: str = "PUT"

    @classmethod
    def of(cls, grant: UploadGrant) -> PresignUploadResponse:
        return cls(
            upload_url=grant.url.url,
            results_s3_key=grant.key,
            expires_at=grant.url.expires_at,
            method=grant.url.method,
        )
