"""State that Redis normally holds for every server process, kept in the database instead.

``UsedNonce``: every (hotkey, nonce) a signed request used, while its timestamp is still accepted;
the primary key makes a nonce single-use across processes, and a Redis restart cannot forget it.
``RateLimitHit``: rate-limit entries while Redis is unreachable (the counters fall back here).
Expired rows are pruned (``services.sharedstate``). Writes to these tables do not change the data
version the response caches key on.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String
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
