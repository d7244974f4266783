"""Miners' inference credentials: encrypted at rest with a key derived from the server secret."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet
from sqlmodel import Session, select

from oro_graph.db import writes
from oro_graph.errors import ValidationFailed
from oro_graph.models import InferenceCredential, utcnow

MAX_TOKEN_LENGTH = 8192


def cipher(secret: bytes) -> Fernet:
    key = hashlib.sha256(b"oro-graph inference credentials\0" + secret).digest()
    return Fernet(base64.urlsafe_b64encode(key))


@dataclass(frozen=True)
class CredentialStatus:
    connected: bool
    updated_at: datetime | None


@writes
def store_credential(
    session: Session, *, hotkey: str, token: str, secret: bytes, provider: str = "chutes", now: datetime | None = None
) -> CredentialStatus:
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise ValidationFailed(f"the token must be 1-{MAX_TOKEN_LENGTH} characters")
    row = session.get(InferenceCredential, (hotkey, provider)) or InferenceCredential(
        miner_hotkey=hotkey, provider=provider, ciphertext=b""
    )
    row.ciphertext = cipher(secret).encrypt(token.encode())
    row.updated_at = now or utcnow()
    session.add(row)
    session.flush()
    return CredentialStatus(True, row.updated_at)


def credential_status(session: Session, *, hotkey: str, provider: str = "chutes") -> CredentialStatus:
    row = session.exec(
        select(InferenceCredential).where(
            InferenceCredential.miner_hotkey == hotkey, InferenceCredential.provider == provider
        )
    ).first()
    return CredentialStatus(row is not None, row.updated_at if row else None)


def reveal_credential(session: Session, *, hotkey: str, secret: bytes, provider: str = "chutes") -> str | None:
    """Decrypt for server-side use only (handing inference tokens to validators); never serve it."""
    row = session.get(InferenceCredential, (hotkey, provider))
    return cipher(secret).decrypt(row.ciphertext).decode() if row else None
