"""Problem suites and their problems."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from oro_graph.models.base import ExecutionKind, JSONType, enum_field, json_field, new_id, time_field, utcnow


class Suite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    version: int = 1
    is_active: bool = Field(default=False, index=True)
    execution_kind: str = enum_field(ExecutionKind.LEGACY_SHOPPINGBENCH)
    environment: dict[str, Any] | None = json_field()
    benchmark_name: str | None = None
    benchmark_number: int | None = None
    source_sha256: str | None = Field(default=None, index=True)
    created_at: datetime = time_field(default_factory=utcnow)


class Problem(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("suite_id", "position"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    suite_id: int = Field(foreign_key="suite.id", index=True)
    position: int
    title: str
    category: str | None = None
    difficulty: str | None = None
    query: str | None = None
    extra: dict[str, Any] | None = json_field()


class ProblemSource(SQLModel, table=True):
    """A problem exactly as its suite file had it, answers included (``reward``, ``voucher``,
    ``reward_title_embeddings``). Kept apart from ``Problem`` so public reads never load it: only the
    validator holding a run of the suite reads it (``GET /v1/validator/evaluation-runs/{id}/problems``)."""

    __tablename__ = "problemsource"

    problem_id: uuid.UUID = Field(foreign_key="problem.id", primary_key=True)
    body: dict[str, Any] = Field(sa_type=JSONType, nullable=False)
