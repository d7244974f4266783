"""Validators as the public sees them, and the queue of running and pending evaluations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from oro_graph.models import RunStatus
from oro_graph.services.validators import PendingPage, PendingView, RunningView, ValidatorView
from rest_compat.schemas.base import JsonObject, Schema


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
