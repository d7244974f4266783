"""State that Redis normally holds for every server process, kept in the database instead.

``UsedNonce``: every (hotkey, nonce) a signed request used, while its timestamp is still accepted;
the primary key makes a nonce single-use across processes, and a Redis restart cannot forget it.
``RateLimitHit``: rate-limit entries while Redis is unreachable (the counters fall back here).
``EventStream``, ``EventStreamOperation``, ``EventStreamMessage``: graphql-sse single-connection
streams (a reservation, the operations running on it, and the operations and stops sent to the
process that holds it), so any process can take a request for a stream another one holds.
Expired rows are pruned (``services.sharedstate``). Writes to these tables do not change the data
version the response caches key on.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, String, Text
from sqlmodel import Field, SQLModel


class UsedNonce(SQLModel, table=True):
    __table_args__ = (Index("ix_usednonce_expires_at", "expires_at"),)

    hotkey: str = Field(sa_column=Column(String(64), primary_key=True))
    nonce: str = Field(sa_column=Column(String(128), primary_key=True))
    expires_at: float = Field(sa_column=Column(Float, nullable=False))  # Unix seconds


class RateLimitHit(SQLModel, table=True):
    __table_args__ = (
        Index("ix_ratelimithit_key_at", "key", "at"),
        Index("ix_ratelimithit_expires_at", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(255), nullable=False))
    at: float = Field(sa_column=Column(Float, nullable=False))  # Unix seconds
    expires_at: float = Field(sa_column=Column(Float, nullable=False))
    amount: int = 1


class EventStream(SQLModel, table=True):
    """A reserved stream (``PUT /graphql``); ``opened`` once a process holds its ``GET``."""

    __table_args__ = (Index("ix_eventstream_expires_at", "expires_at"),)

    token: str = Field(sa_column=Column(String(64), primary_key=True))
    opened: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    expires_at: float = Field(sa_column=Column(Float, nullable=False))  # Unix seconds; renewed while held


class EventStreamOperation(SQLModel, table=True):
    """An operation submitted to a stream and not yet complete (its id is taken meanwhile)."""

    token: str = Field(sa_column=Column(String(64), primary_key=True))
    operation_id: str = Field(sa_column=Column(String(128), primary_key=True))


class EventStreamMessage(SQLModel, table=True):
    """An operation to run, or one to stop, waiting for the process that holds the stream."""

    __table_args__ = (Index("ix_eventstreammessage_token_id", "token", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(sa_column=Column(String(64), nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))  # JSON
