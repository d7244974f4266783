"""Column types and helpers shared by every table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def time_field(*, nullable: bool = False, index: bool = False, **kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index, **kwargs)


def enum_field(default: Any = ..., *, index: bool = False) -> Any:
    return Field(default=default, sa_type=String(32), nullable=False, index=index)


def json_field() -> Any:
    return Field(default=None, sa_type=JSONType, nullable=True)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class AgentVersionState(StrEnum):
    RECEIVED = "RECEIVED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    ELIGIBLE = "ELIGIBLE"
    DISCARDED = "DISCARDED"
    CANCELLED = "CANCELLED"

    @classmethod
    def evaluating(cls) -> tuple[AgentVersionState, ...]:
        """Versions validators may still claim runs of."""
        return (cls.QUEUED, cls.RUNNING)

    @classmethod
    def settled(cls) -> tuple[AgentVersionState, ...]:
        """Versions whose runs can no longer change: eligible, discarded or cancelled."""
        return (cls.ELIGIBLE, cls.DISCARDED, cls.CANCELLED)


class RunStatus(StrEnum):
    CLAIMED = "CLAIMED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    STALE = "STALE"
    CANCELLED = "CANCELLED"

    @classmethod
    def live(cls) -> tuple[RunStatus, ...]:
        """A validator holds the run's lease."""
        return (cls.CLAIMED, cls.RUNNING)

    @classmethod
    def finished(cls) -> tuple[RunStatus, ...]:
        """Its validator reported an outcome (the run has a duration and, for a success, a score)."""
        return (cls.SUCCESS, cls.FAILED, cls.TIMED_OUT)

    @classmethod
    def failed(cls) -> tuple[RunStatus, ...]:
        """Its validator reported a failure."""
        return (cls.FAILED, cls.TIMED_OUT)

    @classmethod
    def ended(cls) -> tuple[RunStatus, ...]:
        """Terminal: finished, lapsed (STALE) or withdrawn (CANCELLED); nothing happens to it after."""
        return (*cls.finished(), cls.STALE, cls.CANCELLED)

    @property
    def is_live(self) -> bool:
        return self in RunStatus.live()

    @property
    def is_ended(self) -> bool:
        return self in RunStatus.ended()


class RaceStatus(StrEnum):
    QUALIFYING_OPEN = "QUALIFYING_OPEN"
    RACE_RUNNING = "RACE_RUNNING"
    RACE_COMPLETE = "RACE_COMPLETE"
    CANCELLED = "CANCELLED"

    @classmethod
    def live(cls) -> tuple[RaceStatus, ...]:
        """Races that have not ended: at most one per server at a time."""
        return (cls.QUALIFYING_OPEN, cls.RACE_RUNNING)

    @classmethod
    def ended(cls) -> tuple[RaceStatus, ...]:
        """Races that completed or were cancelled: nothing happens to them after."""
        return (cls.RACE_COMPLETE, cls.CANCELLED)


class QualificationType(StrEnum):
    SCORED = "SCORED"  # its qualifying score reached the race's threshold
    INCUMBENT = "INCUMBENT"  # the reigning winner, entered automatically


class ProblemStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    SKIPPED = "SKIPPED"

    @classmethod
    def finished(cls) -> tuple[ProblemStatus, ...]:
        """A final status: the problem was scored (or skipped)."""
        return (cls.SUCCESS, cls.FAILED, cls.TIMED_OUT, cls.SKIPPED)

    @property
    def is_finished(self) -> bool:
        return self in ProblemStatus.finished()


class Role(StrEnum):
    MINER = "miner"
    VALIDATOR = "validator"


class ExecutionKind(StrEnum):
    LEGACY_SHOPPINGBENCH = "legacy_shoppingbench"
    ENVPACK = "envpack"
