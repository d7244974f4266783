"""Request and response bodies of the /v1 paths, field for field as oro-sdk 7.0.2 reads them.

The contract is frozen, so these models stay here rather than beside the tables. Each response
model has an ``of(...)`` constructor that shapes what a service returned; no rule is decided here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oro_graph.models import (
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    ExecutionKind,
    Problem,
    ProblemStatus,
    RunStatus,
    Suite,
)
from oro_graph.services import agents, evaluations
from oro_graph.services.agents import Admission, MinerOverview, VersionView
from oro_graph.services.artifacts import UploadGrant
from oro_graph.services.credentials import CredentialStatus
from oro_graph.services.evaluations import Claim, Completion, ProblemMatrix, RunView
from oro_graph.services.leaderboard import BoardPage, BoardRow, TopAgent
from oro_graph.services.validators import PendingPage, PendingView, RunningView, ValidatorView
from oro_graph.settings import Settings
from oro_graph.storage import SignedUrl

JsonObject = dict[str, Any]


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- suites -------------------------------------------------------------------------------------


class SafeEnvironmentMetadata(Schema):
    display_name: str
    catalog_epoch: str
    contract_version: str
    runtime_version: str
    result_schema_version: str


class SuitePublic(Schema):
    suite_id: int
    suite_version: int
    is_active: bool
    execution_kind: ExecutionKind = ExecutionKind.LEGACY_SHOPPINGBENCH
    environment: SafeEnvironmentMetadata | None = None
    benchmark_name: str | None = None
    benchmark_number: int | None = None

    @classmethod
    def of(cls, suite: Suite) -> SuitePublic:
        try:  # only a complete environment record is shown; partial metadata is operator-internal
            environment = SafeEnvironmentMetadata.model_validate(suite.environment or {})
        except ValidationError:
            environment = None
        return cls(
            suite_id=suite.id or 0,
            suite_version=suite.version,
            is_active=suite.is_active,
            execution_kind=ExecutionKind(suite.execution_kind),
            environment=environment,
            benchmark_name=suite.benchmark_name,
            benchmark_number=suite.benchmark_number,
        )


class ProblemPublic(Schema):
    problem_id: uuid.UUID
    suite_id: int
    metadata: JsonObject = Field(default_factory=dict, description="title, category, difficulty and query")

    @classmethod
    def of(cls, problem: Problem) -> ProblemPublic:
        metadata = {
            "title": problem.title,
            "category": problem.category,
            "difficulty": problem.difficulty,
            "query": problem.query,
        }
        return cls(problem_id=problem.id, suite_id=problem.suite_id, metadata=metadata)


class QualifyingTaskRead(Schema):
    task_id: str
    family: str
    goal_text: str


class SuiteWithProblemsResponse(Schema):
    suite: SuitePublic
    problems: list[ProblemPublic]
    qualifying_tasks: list[QualifyingTaskRead] = Field(default_factory=list)

    @classmethod
    def of(cls, found: tuple[Suite, list[Problem]]) -> SuiteWithProblemsResponse:
        suite, problems = found
        return cls(suite=SuitePublic.of(suite), problems=[ProblemPublic.of(p) for p in problems])


# --- leaderboard and top agent ------------------------------------------------------------------


class LeaderboardEntry(Schema):
    rank: int
    agent_version_id: uuid.UUID
    agent_name: str
    miner_hotkey: str
    version_number: int
    final_score: float
    eligible_at: datetime | None = None
    is_discarded: bool = False
    is_current_top: bool = False
    was_top: bool = False
    top_at: datetime | None = None

    @classmethod
    def of(cls, row: BoardRow) -> LeaderboardEntry:
        return cls(
            rank=row.rank,
            agent_version_id=row.version.id,
            agent_name=row.agent.name,
            miner_hotkey=row.agent.miner_hotkey,
            version_number=row.version.version_number,
            final_score=row.version.final_score or 0.0,
            eligible_at=row.version.eligible_at,
            is_discarded=row.version.state == AgentVersionState.DISCARDED,
            is_current_top=row.is_current_top,
            was_top=row.was_top,
            top_at=row.top_at,
        )


class LeaderboardResponse(Schema):
    total: int
    limit: int
    offset: int
    suite: SuitePublic
    entries: list[LeaderboardEntry]
    unique_miners: int
    agents_submitted_24h: int = 0
    challenge_threshold: float | None = None

    @classmethod
    def of(cls, page: BoardPage, settings: Settings) -> LeaderboardResponse:
        return cls(
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            suite=SuitePublic.of(page.suite),
            entries=[LeaderboardEntry.of(row) for row in page.rows],
            unique_miners=page.unique_miners,
            agents_submitted_24h=page.agents_submitted_24h,
            challenge_threshold=settings.challenge_threshold,
        )


class TopAgentResponse(Schema):
    suite_id: int
    computed_at: datetime
    top_agent_version_id: uuid.UUID | None = None
    top_miner_hotkey: str | None = None
    top_score: float | None = None
    policy: JsonObject | None = None
    challenge_threshold: float | None = None
    margin: float | None = None

    @classmethod
    def of(cls, top: TopAgent) -> TopAgentResponse:
        return cls(
            suite_id=top.suite_id,
            computed_at=top.computed_at,
            top_agent_version_id=top.version.id if top.version else None,
            top_miner_hotkey=top.agent.miner_hotkey if top.agent else None,
            top_score=top.reign.score if top.reign else None,
            policy={"challenge_threshold": top.challenge_threshold},
            challenge_threshold=top.challenge_threshold,
        )


# --- agent versions -----------------------------------------------------------------------------


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

    @classmethod
    def of(cls, view: VersionView, settings: Settings) -> AgentVersionStatus:
        version, work = view.version, view.work_item
        return cls(
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

    @classmethod
    def of(cls, run: EvaluationRun) -> EvaluationRunPublic:
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
            validator_score=run.validator_score,
            score_components_summary=run.score_components,
            service_versions=run.service_versions,
            sandbox_metadata=run.sandbox_metadata,
            inference_failure_count=run.inference_failure_count,
            inference_total=run.inference_total,
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
            for result in matrix.results.get(run.id, []):
                by_problem.setdefault(result.problem_id, []).append(
                    ValidatorProblemResult(
                        eval_run_id=run.id,
                        validator_hotkey=run.validator_hotkey,
                        status=ProblemStatus(result.status),
                        score=result.score,
                        score_components=result.score_components,
                        reasoning_score=result.reasoning_score,
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
            score=run.validator_score,
            completed_at=run.completed_at,
            failure_reason=run.failure_reason,
            is_included=run.is_included,
            sandbox_metadata=run.sandbox_metadata,
            inference_failure_count=run.inference_failure_count,
            inference_total=run.inference_total,
            score_components_summary=run.score_components,
        )


# --- validators and the evaluation queue --------------------------------------------------------


class ValidatorCurrentAgent(Schema):
    agent_name: str
    version_id: uuid.UUID
    version_number: int
    started_at: datetime


class ValidatorPublic(Schema):
    hotkey: str
    status: Literal["available", "evaluating"]
    registered_at: datetime
    name: str | None = None
    last_claim_at: datetime | None = None
    last_seen_at: datetime | None = None
    current_agent: ValidatorCurrentAgent | None = None
    service_versions: JsonObject | None = None
    cpu_pct: float | None = None
    ram_pct: float | None = None
    disk_pct: float | None = None
    docker_container_count: int | None = None
    metrics_reported_at: datetime | None = None

    @classmethod
    def of(cls, view: ValidatorView) -> ValidatorPublic:
        state, run, version, agent = view.state, view.current_run, view.current_version, view.current_agent
        current = (
            ValidatorCurrentAgent(
                agent_name=agent.name,
                version_id=version.id,
                version_number=version.version_number,
                started_at=run.claimed_at,
            )
            if run and version and agent
            else None
        )
        return cls(
            hotkey=view.hotkey.ss58,
            status="evaluating" if view.status == "evaluating" else "available",
            registered_at=view.hotkey.registered_at,
            name=view.hotkey.name,
            last_claim_at=state.last_claim_at if state else None,
            last_seen_at=state.last_seen_at if state else None,
            current_agent=current,
            service_versions=state.service_versions if state else None,
            cpu_pct=state.cpu_pct if state else None,
            ram_pct=state.ram_pct if state else None,
            disk_pct=state.disk_pct if state else None,
            docker_container_count=state.docker_container_count if state else None,
            metrics_reported_at=state.metrics_reported_at if state else None,
        )


class RunningEvaluation(Schema):
    eval_run_id: uuid.UUID
    agent_version_id: uuid.UUID
    agent_name: str
    version_number: int
    miner_hotkey: str
    validator_hotkey: str
    status: RunStatus
    started_at: datetime
    progress_percent: float = 0.0

    @classmethod
    def of(cls, view: RunningView) -> RunningEvaluation:
        return cls(
            eval_run_id=view.run.id,
            agent_version_id=view.version.id,
            agent_name=view.agent.name,
            version_number=view.version.version_number,
            miner_hotkey=view.agent.miner_hotkey,
            validator_hotkey=view.run.validator_hotkey,
            status=RunStatus(view.run.status),
            started_at=view.run.claimed_at,
            progress_percent=view.progress_percent,
        )


class PendingEvaluationSummary(Schema):
    total_pending: int
    total_runs_needed: int
    total_runs_active: int
    projected_completion_at: datetime | None = None


class PendingEvaluation(Schema):
    work_item_id: uuid.UUID
    agent_version_id: uuid.UUID
    agent_name: str
    version_number: int
    miner_hotkey: str
    suite_id: int
    required_successes: int
    completed_successes: int
    active_runs: int
    remaining: int
    queued_at: datetime

    @classmethod
    def of(cls, view: PendingView) -> PendingEvaluation:
        work = view.work_item
        return cls(
            work_item_id=work.id,
            agent_version_id=view.version.id,
            agent_name=view.agent.name,
            version_number=view.version.version_number,
            miner_hotkey=view.agent.miner_hotkey,
            suite_id=work.suite_id,
            required_successes=work.required_successes,
            completed_successes=work.included_successes,
            active_runs=work.active_runs,
            remaining=view.remaining,
            queued_at=work.created_at,
        )


class PendingEvaluationsResponse(Schema):
    summary: PendingEvaluationSummary
    items: list[PendingEvaluation]

    @classmethod
    def of(cls, page: PendingPage) -> PendingEvaluationsResponse:
        summary = PendingEvaluationSummary(
            total_pending=page.total_pending,
            total_runs_needed=page.total_runs_needed,
            total_runs_active=page.total_runs_active,
            projected_completion_at=page.projected_completion_at,
        )
        return cls(summary=summary, items=[PendingEvaluation.of(item) for item in page.items])


# --- artifacts ----------------------------------------------------------------------------------


class ArtifactDownloadRequest(Schema):
    artifact_type: str = Field(
        description="AGENT_CODE, EVAL_LOGS_BUNDLE, EVAL_PROBLEM_LOGS or REASONING_DETAILS"
        " (anything else: INVALID_ARTIFACT_TYPE)"
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


# --- miners -------------------------------------------------------------------------------------


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


# --- validators' work ---------------------------------------------------------------------------


class ValidatorMetrics(Schema):
    service_versions: JsonObject | None = None
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


class ClaimWorkResponse(Schema):
    eval_run_id: uuid.UUID
    agent_version_id: uuid.UUID
    suite_id: int
    lease_expires_at: datetime
    code_download_url: str
    code_sha256: str = Field(description="SHA-256 of the agent file behind code_download_url")

    @classmethod
    def of(cls, claim: Claim) -> ClaimWorkResponse:
        return cls(
            eval_run_id=claim.run.id,
            agent_version_id=claim.run.agent_version_id,
            suite_id=claim.run.suite_id,
            lease_expires_at=claim.run.lease_expires_at,
            code_download_url=claim.code_download_url,
            code_sha256=claim.code_sha256,
        )


class HeartbeatResponse(Schema):
    lease_expires_at: datetime


class ProblemProgressUpdate(Schema):
    problem_id: uuid.UUID
    status: ProblemStatus
    score: float | None = None
    score_components_summary: JsonObject | None = None
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
    score_components: JsonObject | None = None
    results_s3_key: str | None = None
    failure_reason: str | None = None
    sandbox_metadata: JsonObject | None = None


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
