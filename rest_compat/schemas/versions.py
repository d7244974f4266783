"""Agent versions, their evaluation runs and per-problem results, and artifact downloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from oro_graph.models import AgentVersionState, EvaluationRun, ProblemStatus, RunStatus
from oro_graph.services import agents
from oro_graph.services.agents import VersionView
from oro_graph.services.artifacts import ArtifactType
from oro_graph.services.credentials import Readiness
from oro_graph.services.evaluations import ProblemMatrix, RunView
from oro_graph.services.inference import VersionInference
from oro_graph.settings import Settings
from oro_graph.storage import SignedUrl
from rest_compat.schemas.base import JsonObject, Schema


class AgentVersionPublic(Schema):
    agent_version_id: uuid.UUID
    agent_id: uuid.UUID
    agent_name: str
    miner_hotkey: str
    version_number: int
    submitted_at: datetime
    released_at: datetime
    code_available_at: datetime
    suite_id: int | None = None
    latest_final_score: float | None = None

    @classmethod
    def of(cls, view: VersionView, settings: Settings) -> AgentVersionPublic:
        released = agents.code_available_at(view.version, settings)
        assert released is not None  # services.agents.released_version only returns released versions
        return cls(
            agent_version_id=view.version.id,
            agent_id=view.agent.id,
            agent_name=view.agent.name,
            miner_hotkey=view.agent.miner_hotkey,
            version_number=view.version.version_number,
            submitted_at=view.version.submitted_at,
            released_at=released,
            code_available_at=released,
            suite_id=view.version.suite_id,
            latest_final_score=view.version.final_score,
        )


class AgentVersionStatus(Schema):
    agent_version_id: uuid.UUID
    agent_name: str
    miner_hotkey: str
    version_number: int
    submitted_at: datetime
    state: AgentVersionState
    suite_id: int | None = None
    required_successes: int = 0
    success_count: int = 0
    active_count: int = 0
    is_closed: bool = False
    final_score: float | None = None
    release_state: Literal["HIDDEN", "RELEASED"] = "HIDDEN"
    code_available_at: datetime | None = None
    waiting_for_inference_credential: bool | None = Field(
        default=None,
        description="(owner only) not offered to validators until the miner stores a usable inference "
        "credential",
    )
    inference_readiness: Readiness | None = Field(
        default=None,
        description="(owner only) READY, or why validators cannot get an inference token for this miner",
    )
    inference_readiness_detail: str | None = None

    @classmethod
    def of(
        cls, view: VersionView, settings: Settings, inference: VersionInference | None = None
    ) -> AgentVersionStatus:
        version, work = view.version, view.work_item
        return cls(
            waiting_for_inference_credential=inference.waiting if inference else None,
            inference_readiness=inference.miner.readiness if inference else None,
            inference_readiness_detail=inference.miner.detail if inference else None,
            agent_version_id=version.id,
            agent_name=view.agent.name,
            miner_hotkey=view.agent.miner_hotkey,
            version_number=version.version_number,
            submitted_at=version.submitted_at,
            state=AgentVersionState(version.state),
            suite_id=version.suite_id,
            required_successes=work.required_successes if work else 0,
            success_count=work.included_successes if work else 0,
            active_count=work.active_runs if work else 0,
            is_closed=work.is_closed if work else False,
            final_score=version.final_score,
            release_state="RELEASED" if agents.is_released(version, settings) else "HIDDEN",
            code_available_at=agents.code_available_at(version, settings),
        )


class EvaluationRunPublic(Schema):
    eval_run_id: uuid.UUID
    agent_version_id: uuid.UUID
    suite_id: int
    validator_hotkey: str
    status: RunStatus
    claimed_at: datetime
    lease_expires_at: datetime
    is_included: bool
    last_heartbeat_at: datetime | None = None
    completed_at: datetime | None = None
    failure_reason: str | None = None
    validator_score: float | None = None
    score_components_summary: JsonObject | None = None
    service_versions: JsonObject | None = None
    sandbox_metadata: JsonObject | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None
    race_id: uuid.UUID | None = Field(default=None, description="the race this run is race work for, if any")

    @classmethod
    def of(cls, run: EvaluationRun, *, embargoed: bool = False) -> EvaluationRunPublic:
        """``embargoed``: a race run whose scores are not shown yet (services.races.run_scores_disclosed)."""
        return cls(
            eval_run_id=run.id,
            agent_version_id=run.agent_version_id,
            suite_id=run.suite_id,
            validator_hotkey=run.validator_hotkey,
            status=RunStatus(run.status),
            claimed_at=run.claimed_at,
            lease_expires_at=run.lease_expires_at,
            is_included=run.is_included,
            last_heartbeat_at=run.last_heartbeat_at,
            completed_at=run.completed_at,
            failure_reason=run.failure_reason,
            validator_score=None if embargoed else run.validator_score,
            score_components_summary=None if embargoed else run.score_components,
            service_versions=run.service_versions,
            sandbox_metadata=run.sandbox_metadata,
            inference_failure_count=run.inference_failure_count,
            inference_total=run.inference_total,
            race_id=run.race_id,
        )


class ValidatorProblemResult(Schema):
    eval_run_id: uuid.UUID
    validator_hotkey: str
    status: ProblemStatus
    score: float | None = None
    score_components: JsonObject | None = None
    reasoning_score: float | None = None
    updated_at: datetime | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None
    execution_time: float | None = None


class ProblemProgressEntry(Schema):
    problem_id: uuid.UUID
    category: str | None = None
    validator_results: list[ValidatorProblemResult] = Field(default_factory=list)


class AgentVersionProblemsResponse(Schema):
    agent_version_id: uuid.UUID
    problems: list[ProblemProgressEntry]
    suite_id: int | None = None

    @classmethod
    def of(cls, matrix: ProblemMatrix) -> AgentVersionProblemsResponse:
        by_problem: dict[uuid.UUID, list[ValidatorProblemResult]] = {}
        for run in matrix.runs:
            hidden = run.id in matrix.embargoed
            for result in matrix.results.get(run.id, []):
                by_problem.setdefault(result.problem_id, []).append(
                    ValidatorProblemResult(
                        eval_run_id=run.id,
                        validator_hotkey=run.validator_hotkey,
                        status=ProblemStatus(result.status),
                        score=None if hidden else result.score,
                        score_components=None if hidden else result.score_components,
                        reasoning_score=None if hidden else result.reasoning_score,
                        updated_at=result.updated_at,
                        inference_failure_count=result.inference_failure_count,
                        inference_total=result.inference_total,
                        execution_time=result.execution_time,
                    )
                )
        return cls(
            agent_version_id=matrix.version.id,
            suite_id=matrix.version.suite_id,
            problems=[
                ProblemProgressEntry(
                    problem_id=p.id, category=p.category, validator_results=by_problem.get(p.id, [])
                )
                for p in matrix.problems
            ],
        )


class EvaluationRunDetail(Schema):
    eval_run_id: uuid.UUID
    agent_version_id: uuid.UUID
    agent_name: str
    validator_hotkey: str
    status: RunStatus
    version_number: int
    claimed_at: datetime
    score: float | None = None
    completed_at: datetime | None = None
    failure_reason: str | None = None
    is_included: bool = False
    sandbox_metadata: JsonObject | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None
    score_components_summary: JsonObject | None = None

    @classmethod
    def of(cls, view: RunView) -> EvaluationRunDetail:
        run = view.run
        return cls(
            eval_run_id=run.id,
            agent_version_id=run.agent_version_id,
            agent_name=view.agent.name,
            validator_hotkey=run.validator_hotkey,
            status=RunStatus(run.status),
            version_number=view.version.version_number,
            claimed_at=run.claimed_at,
            score=None if view.embargoed else run.validator_score,
            completed_at=run.completed_at,
            failure_reason=run.failure_reason,
            is_included=run.is_included,
            sandbox_metadata=run.sandbox_metadata,
            inference_failure_count=run.inference_failure_count,
            inference_total=run.inference_total,
            score_components_summary=None if view.embargoed else run.score_components,
        )


class ArtifactDownloadRequest(Schema):
    # A plain string on the wire, so an unknown value is the declared 400 INVALID_ARTIFACT_TYPE
    # (services.artifacts) rather than a 422; the schema still lists the values the server accepts.
    artifact_type: str = Field(
        description="AGENT_CODE, EVAL_LOGS_BUNDLE, EVAL_PROBLEM_LOGS or REASONING_DETAILS"
        " (anything else: 400 INVALID_ARTIFACT_TYPE)",
        json_schema_extra={"enum": [kind.value for kind in ArtifactType]},
    )
    agent_version_id: uuid.UUID
    eval_run_id: uuid.UUID | None = Field(default=None, description="needed by the EVAL_* types")
    problem_id: uuid.UUID | None = Field(default=None, description="needed by EVAL_PROBLEM_LOGS")


class ArtifactDownloadResponse(Schema):
    download_url: str
    expires_at: datetime

    @classmethod
    def of(cls, url: SignedUrl) -> ArtifactDownloadResponse:
        return cls(download_url=url.url, expires_at=url.expires_at)
