"""The hotkey registry (who may call what) and per-hotkey state kept by the server."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from oro_graph.models.base import Role, enum_field, json_field, time_field, utcnow


class Hotkey(SQLModel, table=True):
    ss58: str = Field(primary_key=True, max_length=64)
    role: str = enum_field(Role.MINER, index=True)
    validator_permit: bool = False
    name: str | None = None
    banned: bool = False
    uid: int | None = None
    registered_at: datetime = time_field(default_factory=utcnow)


class Miner(SQLModel, table=True):
    """A miner that has submitted at least once; its row is the lock that orders its submissions."""

    hotkey: str = Field(primary_key=True, max_length=64)
    created_at: datetime = time_field(default_factory=utcnow)
    last_submitted_at: datetime | None = time_field(nullable=True)


class ValidatorState(SQLModel, table=True):
    hotkey: str = Field(primary_key=True, max_length=64)
    last_claim_at: datetime | None = time_field(nullable=True)
    last_seen_at: datetime | None = time_field(nullable=True)
    cpu_pct: float | None = None
    ram_pct: float | None = None
    disk_pct: float | None = None
    docker_container_count: int | None = None
    service_versions: dict[str, Any] | None = json_field()
    metrics_reported_at: datetime | None = time_field(nullable=True)


class InferenceCredential(SQLModel, table=True):
    """A miner's inference credential (a refresh token or an API key), encrypted at rest; never
    returned or logged. Its row is also the lock that makes refreshes of it single-flight."""

    miner_hotkey: str = Field(primary_key=True, max_length=64)
    provider: str = Field(default="chutes", primary_key=True, max_length=32)
    ciphertext: bytes
    updated_at: datetime = time_field(default_factory=utcnow)
    is_default: bool = False  # the provider claims mint from (else the most recently stored usable one)
    access_ciphertext: bytes | None = None  # the cached access token, encrypted
    access_expires_at: datetime | None = time_field(nullable=True)
    last_refreshed_at: datetime | None = time_field(nullable=True)
    # Why the last mint failed: REFRESH_REFUSED makes the credential unusable until a new one is
    # stored; PROVIDER_UNAVAILABLE is informational (the next claim tries again).
    error_code: str | None = Field(default=None, max_length=32)
    error_detail: str | None = Field(default=None, max_length=500)
    error_at: datetime | None = time_field(nullable=True)
