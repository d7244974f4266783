"""Suites, their problems, the leaderboard and the top agent."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, ValidationError

from oro_graph.models import ExecutionKind, Problem, Suite
from oro_graph.services.evaluations import RunProblem
from oro_graph.services.leaderboard import BoardPage, BoardRow, TopAgent
from oro_graph.settings import Settings
from rest_compat.schemas.base import JsonObject, Schema


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
    metadata: JsonObject = Field(
        default_factory=dict,
        description="public paths: title, category, difficulty and query; a run's problems (for the "
        "validator holding the run): the whole problem of the suite file, answers included",
    )

    @classmethod
    def whole(cls, found: RunProblem) -> ProblemPublic:
        return cls(problem_id=found.problem.id, suite_id=found.problem.suite_id, metadata=found.metadata)

    @classmethod
    def of(cls, problem: Problem) -> ProblemPublic:
        metadata = {
            "title": problem.title,
            "category": problem.category,
            "difficulty": problem.difficulty,
            "query": problem.query,
        }
        return cls(problem_id=problem.id, suite_id=problem.suite_id, metadata=metadata)


class RunProblemsResponse(Schema):
    problems: list[ProblemPublic]

    @classmethod
    def of(cls, found: list[RunProblem]) -> RunProblemsResponse:
        return cls(problems=[ProblemPublic.whole(p) for p in found])


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


class LeaderboardEntry(Schema):
    rank: int
    agent_version_id: uuid.UUID
    agent_name: str
    miner_hotkey: str
    version_number: int
    final_score: float
    race_score: float | None = None
    eligible_at: datetime | None = None
    is_discarded: bool = False
    is_current_top: bool = False
    was_top: bool = False
    top_at: datetime | None = None

    @classmethod
    def of(cls, row: BoardRow) -> LeaderboardEntry:
        return cls(
            rank=row.rank,
            agent_version_id=row.agent_version_id,
            agent_name=row.agent_name,
            miner_hotkey=row.miner_hotkey,
            version_number=row.version_number,
            final_score=row.final_score or 0.0,
            race_score=row.race_score,
            eligible_at=row.eligible_at,
            is_discarded=row.is_discarded,
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
