"""Races: the competition among qualifiers that decides who the validators pay."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from oro_graph.models.base import RaceStatus, enum_field, json_field, new_id, time_field, utcnow


class Race(SQLModel, table=True):
    """One race on one suite. The settings it ran under are copied in when it opens, so a later
    change of configuration never changes a race already under way."""

    __table_args__ = (
        Index("ix_race_suite_status", "suite_id", "status"),
        UniqueConstraint("race_number", name="uq_race_race_number"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    race_number: int
    suite_id: int = Field(foreign_key="suite.id", index=True)
    status: str = enum_field(RaceStatus.QUALIFYING_OPEN, index=True)
    qualifying_threshold: float = 0.0
    max_qualifiers: int
    problem_count: int
    required_successes: int
    max_attempts: int
    created_at: datetime = time_field(default_factory=utcnow)
    qualifying_closes_at: datetime = time_field()
    race_started_at: datetime | None = time_field(nullable=True)
    race_deadline_at: datetime | None = time_field(nullable=True)
    race_completed_at: datetime | None = time_field(nullable=True)
    cancelled_at: datetime | None = time_field(nullable=True)
    # Commit-reveal draw: the sha256 of the secret is public from the start, the secret only once the
    # race is over; the drawn problems follow from the secret and the final qualifier list.
    seed_commitment: str = Field(max_length=64)
    secret: str = Field(max_length=64)
    secret_revealed: bool = False
    draw_seed: str | None = Field(default=None, max_length=64)
    problem_ids: list[str] | None = json_field()
    winner_agent_version_id: uuid.UUID | None = Field(default=None, foreign_key="agentversion.id")
    winner_score: float | None = None
    qualifier_count: int = 0
    scored_count: int | None = None
    updated_at: datetime = time_field(default_factory=utcnow)


class RaceQualifier(SQLModel, table=True):
    """A version entered in a race: one per miner."""

    race_id: uuid.UUID = Field(foreign_key="race.id", primary_key=True)
    agent_version_id: uuid.UUID = Field(foreign_key="agentversion.id", primary_key=True, index=True)
    miner_hotkey: str = Field(max_length=64, index=True)
    qualification_type: str = enum_field()
    qualifying_score: float | None = None
    entered_at: datetime = time_field(default_factory=utcnow)
    race_score: float | None = None
    race_rank: int | None = None
    finished_at: datetime | None = time_field(nullable=True)
    did_not_finish: bool = False
    eliminated_at: datetime | None = time_field(nullable=True)
    details: dict[str, Any] | None = json_field()


class RaceSelection(SQLModel, table=True):
    """The version a miner pinned to race (without one, its best qualifying version races)."""

    miner_hotkey: str = Field(foreign_key="miner.hotkey", primary_key=True, max_length=64)
    agent_version_id: uuid.UUID = Field(foreign_key="agentversion.id")
    updated_at: datetime = time_field(default_factory=utcnow)


class SchedulerLease(SQLModel, table=True):
    """Which server process may act for a periodic job (one row per job), until when."""

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime = time_field()
