"""Evaluation runs (one validator's lease on one version) and their per-problem results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from oro_graph.models.base import ProblemStatus, RunStatus, enum_field, json_field, new_id, time_field, utcnow


class EvaluationRun(SQLModel, table=True):
    __table_args__ = (
        Index("ix_run_validator_status", "validator_hotkey", "status"),
        Index("ix_run_status_lease", "status", "lease_expires_at"),
        Index("ix_run_version_claimed", "agent_version_id", "claimed_at"),
        Index("ix_run_claimed_id", "claimed_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    work_item_id: uuid.UUID = Field(foreign_key="workitem.id", index=True)
    agent_version_id: uuid.UUID = Field(foreign_key="agentversion.id")
    validator_hotkey: str = Field(max_length=64)
    suite_id: int = Field(foreign_key="suite.id", index=True)
    race_id: uuid.UUID | None = Field(default=None, foreign_key="race.id", index=True)  # race work
    status: str = enum_field(RunStatus.CLAIMED)
    claimed_at: datetime = time_field(default_factory=utcnow)
    lease_expires_at: datetime = time_field()
    last_heartbeat_at: datetime | None = time_field(nullable=True)
    completed_at: datetime | None = time_field(nullable=True)
    validator_score: float | None = None
    score_components: dict[str, Any] | None = json_field()
    failure_reason: str | None = None
    sandbox_metadata: dict[str, Any] | None = json_field()
    service_versions: dict[str, Any] | None = json_field()
    results_key: str | None = None
    is_included: bool = False
    inference_failure_count: int | None = None
    inference_total: int | None = None


class ProblemResult(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("run_id", "problem_id"),
        # per-problem statistics and the leaderboard's category filter read (problem, run, score) only
        Index("ix_problemresult_problem_run_score", "problem_id", "run_id", "score"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    run_id: uuid.UUID = Field(foreign_key="evaluationrun.id", index=True)
    problem_id: uuid.UUID = Field(foreign_key="problem.id", index=True)
    status: str = enum_field(ProblemStatus.PENDING)
    score: float | None = None
    reasoning_score: float | None = None
    score_components: dict[str, Any] | None = json_field()
    logs_key: str | None = None
    execution_time: float | None = None
    inference_failure_count: int | None = None
    inference_total: int | None = None
    updated_at: datetime = time_field(default_factory=utcnow)
