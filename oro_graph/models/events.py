"""An append-only log of lifecycle events, written in the same transaction as the change.

Subscriptions replay it from a cursor (the event id), so a client that reconnects misses nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer
from sqlmodel import Field, SQLModel

from oro_graph.models.base import json_field, time_field, utcnow


class Event(SQLModel, table=True):
    __table_args__ = (
        Index("ix_event_run_id", "run_id", "id"),
        Index("ix_event_suite_board", "suite_id", "topic", "id"),
    )

    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that type aliases the rowid (autoincrement)
    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite")
    )
    topic: str = Field(max_length=16)  # "run" or "board"
    kind: str = Field(max_length=32)
    run_id: uuid.UUID | None = None
    suite_id: int | None = None
    agent_version_id: uuid.UUID | None = None
    payload: dict[str, Any] | None = json_field()
    created_at: datetime = time_field(default_factory=utcnow)
