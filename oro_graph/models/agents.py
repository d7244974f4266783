"""Agents, their versions and the work item that gathers each version's evaluations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel, col

from oro_graph.models.base import AgentVersionState, enum_field, new_id, time_field, utcnow


class Agent(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("miner_hotkey", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    miner_hotkey: str = Field(foreign_key="miner.hotkey", index=True, max_length=64)
    name: str = Field(max_length=64)
    created_at: datetime = time_field(default_factory=utcnow)


class AgentVersion(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("agent_id", "version_number"),
        Index("ix_agentversion_board", "suite_id", "state", "final_score"),
        # a suite's versions by submission time (the default order of Suite.versions and its range filter)
        Index("ix_agentversion_suite_submitted", "suite_id", "submitted_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    agent_id: uuid.UUID = Field(foreign_key="agent.id", index=True)
    version_number: int
    suite_id: int = Field(foreign_key="suite.id", index=True)
    state: str = enum_field(AgentVersionState.QUEUED, index=True)
    submitted_at: datetime = time_field(default_factory=utcnow, index=True)
    eligible_at: datetime | None = time_field(nullable=True)
    discarded_at: datetime | None = time_field(nullable=True)
    final_score: float | None = None
    code_key: str
    code_sha256: str = Field(max_length=64)
    code_size: int


class WorkItem(SQLModel, table=True):
    """What a version needs from validators: X successful runs by distinct validators.

    Qualifying work (``race_id`` null, one per version) has no cap on attempts; race work (one per
    qualifier of a race) gets at most ``max_attempts`` finished runs, so X of Y.
    """

    __table_args__ = (
        Index(
            "ux_workitem_qualifying",
            "agent_version_id",
            unique=True,
            postgresql_where=text("race_id IS NULL"),
            sqlite_where=text("race_id IS NULL"),
        ),
        Index(
            "ux_workitem_race",
            "race_id",
            "agent_version_id",
            unique=True,
            postgresql_where=text("race_id IS NOT NULL"),
            sqlite_where=text("race_id IS NOT NULL"),
        ),
        # A claim's order over open items (services.evaluations.claim._candidates: race work first, then
        # the oldest): walked from its head, a claim stops at the first item it may take, where
        # without it each claim read and sorted every open item (6.9 ms of PostgreSQL per claim at
        # 5,847 open items, 0.58 ms with it).
        Index(
            "ix_workitem_claim_order",
            text("(race_id IS NULL)"),
            "created_at",
            "id",
            postgresql_where=text("is_closed IS false"),
            sqlite_where=text("is_closed IS 0"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    agent_version_id: uuid.UUID = Field(foreign_key="agentversion.id")
    suite_id: int = Field(foreign_key="suite.id", index=True)
    race_id: uuid.UUID | None = Field(default=None, foreign_key="race.id")
    required_successes: int
    included_successes: int = 0
    active_runs: int = 0
    max_attempts: int | None = None  # race work: finished runs (successful or not) it may take
    failed_attempts: int = 0
    is_closed: bool = Field(default=False, index=True)
    created_at: datetime = time_field(default_factory=utcnow, index=True)
    closed_at: datetime | None = time_field(nullable=True)


class TopAgentHistory(SQLModel, table=True):
    """Each reign of a top agent; the current one has ``replaced_at`` null."""

    id: int | None = Field(default=None, primary_key=True)
    suite_id: int = Field(foreign_key="suite.id", index=True)
    agent_version_id: uuid.UUID = Field(foreign_key="agentversion.id", index=True)
    score: float
    top_at: datetime = time_field(index=True)
    replaced_at: datetime | None = time_field(nullable=True)


# The board in its own order (score desc, eligible_at, id) over eligible versions only: a page of
# the leaderboard and the rank of its first row are index range reads, however large the board.
Index(
    "ix_agentversion_eligible_board",
    AgentVersion.suite_id,
    col(AgentVersion.final_score).desc(),
    AgentVersion.eligible_at,
    AgentVersion.id,
    postgresql_where=text("state = 'ELIGIBLE'"),
    sqlite_where=text("state = 'ELIGIBLE'"),
)
