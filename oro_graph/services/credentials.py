"""Miners' inference credentials: encrypted at rest with a key derived from the server secret.

A miner keeps at most one credential per provider: a Chutes OAuth refresh token or an OpenRouter
API key. Claims mint from the miner's *usable* credential (not refused by its provider, of a
provider this server can mint for): the default one if it is usable, else the most recently
stored. Nothing here ever returns a secret; ``reveal_credential`` is for server-side use only.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import exists
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.errors import ValidationFailed
from oro_graph.models import InferenceCredential, utcnow
from oro_graph.settings import Settings

MAX_TOKEN_LENGTH = 8192
CHUTES = "chutes"
OPENROUTER = "openrouter"
PROVIDERS = (CHUTES, OPENROUTER)


class Readiness(StrEnum):
    """Whether a miner's versions can be offered to validators, and if not, why."""

    READY = "READY"
    NO_CREDENTIAL = "NO_CREDENTIAL"
    REFRESH_REFUSED = "REFRESH_REFUSED"
    PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"


def cipher(secret: bytes) -> Fernet:
    key = hashlib.sha256(b"oro-graph inference credentials\0" + secret).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise ValidationFailed(f"unknown inference provider {provider!r}; use one of: {', '.join(PROVIDERS)}")
    return provider


def mintable_providers(settings: Settings) -> tuple[str, ...]:
    """Providers this server can turn a stored credential into a token for."""
    return tuple(p for p in PROVIDERS if p != CHUTES or settings.chutes_client_id)


def usable_clause(miner_hotkey: Any, settings: Settings) -> Any:
    """SQL: the miner named by ``miner_hotkey`` (a column) has a credential a claim can mint from."""
    return exists().where(
        InferenceCredential.miner_hotkey == miner_hotkey,
        col(InferenceCredential.error_code).is_distinct_from(Readiness.REFRESH_REFUSED.value),
        col(InferenceCredential.provider).in_(mintable_providers(settings)),
    )


@dataclass(frozen=True)
class CredentialStatus:
    """What a miner may see of one credential: never the secret."""

    connected: bool
    updated_at: datetime | None
    provider: str = CHUTES
    is_default: bool = False
    usable: bool = False
    last_refreshed_at: datetime | None = None
    error_code: str | None = None
    error_detail: str | None = None
    error_at: datetime | None = None

    @classmethod
    def of(
        cls, row: InferenceCredential | None, provider: str, settings: Settings | None = None
    ) -> CredentialStatus:
        if row is None:
            return cls(False, None, provider)
        refused = row.error_code == Readiness.REFRESH_REFUSED
        mintable = settings is None or provider in mintable_providers(settings)
        return cls(
            connected=True,
            updated_at=row.updated_at,
            provider=provider,
            is_default=row.is_default,
            usable=not refused and mintable,
            last_refreshed_at=row.last_refreshed_at,
            error_code=row.error_code,
            error_detail=row.error_detail,
            error_at=row.error_at,
        )


@dataclass(frozen=True)
class MinerInference:
    """A miner's credentials, its default provider and whether its versions are offered."""

    credentials: list[CredentialStatus]  # one per known provider, connected or not
    default_provider: str | None
    readiness: Readiness
    detail: str


def _rows(session: Session, hotkey: str) -> dict[str, InferenceCredential]:
    stmt = select(InferenceCredential).where(InferenceCredential.miner_hotkey == hotkey)
    return {row.provider: row for row in session.exec(stmt)}


def _default(rows: dict[str, InferenceCredential]) -> str | None:
    return next((p for p, row in rows.items() if row.is_default), None)


@writes
def store_credential(
    session: Session,
    *,
    hotkey: str,
    token: str,
    secret: bytes,
    provider: str = CHUTES,
    access_token: str | None = None,
    access_expires_at: datetime | None = None,
    now: datetime | None = None,
) -> CredentialStatus:
    """Store (or replace) the miner's credential for ``provider``. A new one clears a refusal and the
    cached access token; the miner's first credential becomes its default."""
    check_provider(provider)
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise ValidationFailed(f"the credential must be 1-{MAX_TOKEN_LENGTH} characters")
    now = now or utcnow()
    rows = _rows(session, hotkey)
    row = rows.get(provider) or InferenceCredential(miner_hotkey=hotkey, provider=provider, ciphertext=b"")
    box = cipher(secret)
    row.ciphertext = box.encrypt(token.encode())
    row.updated_at = now
    row.access_ciphertext = box.encrypt(access_token.encode()) if access_token else None
    row.access_expires_at = access_expires_at if access_token else None
    row.last_refreshed_at = now if access_token else None
    row.error_code = row.error_detail = row.error_at = None
    if _default(rows) is None:
        row.is_default = True
    session.add(row)
    session.flush()
    return CredentialStatus.of(row, provider)


@writes
def delete_credential(session: Session, *, hotkey: str, provider: str) -> tuple[bool, str | None]:
    """Forget the miner's credential for ``provider``: (whether there was one, the default after)."""
    check_provider(provider)
    rows = _rows(session, hotkey)
    row = rows.pop(provider, None)
    if row is not None:
        session.delete(row)
        session.flush()
    return row is not None, _default(rows)


@writes
def set_default_provider(session: Session, *, hotkey: str, provider: str) -> str:
    """Make ``provider`` the one claims mint from; it must be connected."""
    check_provider(provider)
    rows = _rows(session, hotkey)
    if provider not in rows:
        raise ValidationFailed(
            f"no {provider} credential is stored for this hotkey; connect it before making it the default"
        )
    for name, row in rows.items():
        if row.is_default != (name == provider):
            row.is_default = name == provider
            session.add(row)
    session.flush()
    return provider


def credential_status(
    session: Session, *, hotkey: str, provider: str = CHUTES, settings: Settings | None = None
) -> CredentialStatus:
    check_provider(provider)
    return CredentialStatus.of(session.get(InferenceCredential, (hotkey, provider)), provider, settings)


def miner_inference(session: Session, *, hotkey: str, settings: Settings) -> MinerInference:
    """Every provider's status for this miner and whether claims can mint for it (and if not, why)."""
    rows = _rows(session, hotkey)
    statuses = [CredentialStatus.of(rows.get(p), p, settings) for p in PROVIDERS]
    chosen = pick(rows, settings)
    if chosen is not None:
        if chosen.error_code == Readiness.PROVIDER_UNAVAILABLE:
            readiness, detail = (
                Readiness.PROVIDER_UNAVAILABLE,
                (f"the last {chosen.provider} token refresh failed: {chosen.error_detail}; claims retry it"),
            )
        else:
            readiness, detail = (
                Readiness.READY,
                f"validators get a {chosen.provider} token minted from this credential",
            )
    elif not rows:
        readiness, detail = (
            Readiness.NO_CREDENTIAL,
            (
                "no inference credential is stored: versions wait until one is (POST /v1/miner/chutes-auth "
                "or /v1/miner/inference-auth/{provider})"
            ),
        )
    elif any(row.error_code == Readiness.REFRESH_REFUSED for row in rows.values()):
        refused = next(row for row in rows.values() if row.error_code == Readiness.REFRESH_REFUSED)
        readiness, detail = (
            Readiness.REFRESH_REFUSED,
            (
                f"{refused.provider} refused the stored refresh token ({refused.error_detail}); "
                "versions wait until a new one is stored"
            ),
        )
    else:
        readiness, detail = (
            Readiness.PROVIDER_NOT_CONFIGURED,
            (
                f"this server cannot mint tokens for {', '.join(sorted(rows))} (no OAuth client configured); "
                "versions wait until a usable credential is stored"
            ),
        )
    return MinerInference(statuses, _default(rows), readiness, detail)


def pick(rows: dict[str, InferenceCredential], settings: Settings) -> InferenceCredential | None:
    """The credential a claim mints from: the default if usable, else the most recently stored usable one."""
    mintable = mintable_providers(settings)
    usable = [
        r for r in rows.values() if r.provider in mintable and r.error_code != Readiness.REFRESH_REFUSED
    ]
    usable.sort(key=lambda r: (not r.is_default, -r.updated_at.timestamp()))
    return usable[0] if usable else None


def reveal_credential(session: Session, *, hotkey: str, secret: bytes, provider: str = CHUTES) -> str | None:
    """Decrypt for server-side use only (handing inference tokens to validators); never serve it."""
    row = session.get(InferenceCredential, (hotkey, provider))
    return cipher(secret).decrypt(row.ciphertext).decode() if row else None
