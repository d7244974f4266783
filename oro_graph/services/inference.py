"""Inference tokens for validators: minted from the miner's stored credential after a claim commits.

A Chutes credential is an OAuth 2.0 refresh token. A claim needs an access token that outlives its
lease: a cached one if it does, else one from the refresh-token grant (RFC 6749 section 6) against
``ORO_CHUTES_TOKEN_URL``. Refresh tokens rotate, so a refresh holds the credential's row lock
(``SELECT ... FOR UPDATE``; on SQLite the write lock) across the provider call, stores the rotated
refresh token and the new access token (both encrypted) and commits before the token is handed
out: a second process waiting on that lock finds the fresh token and makes no call. An OpenRouter
credential is an API key, granted as it is.

The provider call has a timeout; a failure that is the provider's (timeout, network, 5xx, 429)
opens a circuit breaker for ``ORO_INFERENCE_BREAKER_SECONDS`` (in Redis when configured, so every
process sees it), during which mints fail at once. A refusal of the refresh token
(``invalid_grant``) marks the credential unusable until the miner stores a new one.

``claim_with_grant`` composes the claim's transaction, the mint, and, when minting fails, a second
short transaction that releases the run (it counts as no attempt) before answering 503.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import String, bindparam
from sqlmodel import Session, select

from oro_graph.db import Database, writes
from oro_graph.errors import ServiceUnavailable, ValidationFailed
from oro_graph.models import InferenceCredential, utcnow
from oro_graph.services import agents, credentials, evaluations
from oro_graph.services.credentials import CHUTES, OPENROUTER, Readiness, cipher
from oro_graph.services.providers import Grant, Inference, MintFailed, ProviderRefused, ProviderUnavailable
from oro_graph.settings import Settings
from oro_graph.storage import Storage

log = logging.getLogger("oro_graph.inference")

API_KEY_GRANT_SECONDS = 86_400  # an API key does not expire; a grant names a day ahead
_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


# --- minting -------------------------------------------------------------------------------------


def _chutes_grant(access_token: str, expires_at: datetime, settings: Settings) -> Grant:
    return Grant(CHUTES, access_token, settings.chutes_base_url, expires_at)


def _needed_until(settings: Settings, now: datetime) -> datetime:
    """A cached access token is handed out only if it outlives a fresh lease by the margin."""
    return now + timedelta(seconds=settings.lease_seconds + settings.inference_token_margin_seconds)


@dataclass(frozen=True)
class _Chosen:
    provider: str
    secret_plain: str | None  # only for API keys (granted as they are)
    cached: Grant | None


# A miner's credentials, read by every claim: built once (a select built per call was a third of it).
_CREDENTIALS = select(InferenceCredential).where(
    InferenceCredential.miner_hotkey == bindparam("miner_hotkey", type_=String)
)


def _choose(session: Session, *, miner_hotkey: str, settings: Settings, now: datetime) -> _Chosen | None:
    """Read-only: the credential to mint from and, when it can be used without a call, the grant."""
    rows = {row.provider: row for row in session.scalars(_CREDENTIALS, {"miner_hotkey": miner_hotkey})}
    row = credentials.pick(rows, settings)
    if row is None:
        return None
    box = cipher(settings.secret)
    try:
        if row.provider == OPENROUTER:
            return _Chosen(OPENROUTER, box.decrypt(row.ciphertext).decode(), None)
        if (
            row.access_ciphertext
            and row.access_expires_at
            and row.access_expires_at >= _needed_until(settings, now)
        ):
            token = box.decrypt(row.access_ciphertext).decode()
            return _Chosen(CHUTES, None, _chutes_grant(token, row.access_expires_at, settings))
    except InvalidToken:
        pass  # the server secret changed: the locked refresh marks it unusable
    return _Chosen(row.provider, None, None)


def _mark(row: InferenceCredential, readiness: Readiness, detail: str, now: datetime) -> None:
    row.error_code, row.error_detail, row.error_at = readiness.value, detail[:500], now


@dataclass(frozen=True)
class _Refreshed:
    grant: Grant | None = None
    failure: MintFailed | None = None


@writes
def refresh_chutes(
    session: Session,
    *,
    miner_hotkey: str,
    settings: Settings,
    inference: Inference,
    now: datetime | None = None,
) -> _Refreshed:
    """Under the credential's row lock: reuse a token another process just minted, or refresh.

    Returns (rather than raises) a failure, so what it marks on the credential is committed.
    """
    now = now or utcnow()
    row = session.exec(
        select(InferenceCredential)
        .where(InferenceCredential.miner_hotkey == miner_hotkey, InferenceCredential.provider == CHUTES)
        .with_for_update()
    ).first()
    if row is None or row.error_code == Readiness.REFRESH_REFUSED:
        detail = "the miner's Chutes credential was removed or refused meanwhile"
        return _Refreshed(failure=MintFailed(Readiness.NO_CREDENTIAL, detail, 1))
    box = cipher(settings.secret)
    try:
        refresh_token = box.decrypt(row.ciphertext).decode()
        if (
            row.access_ciphertext
            and row.access_expires_at
            and row.access_expires_at >= _needed_until(settings, now)
        ):
            return _Refreshed(
                grant=_chutes_grant(
                    box.decrypt(row.access_ciphertext).decode(), row.access_expires_at, settings
                )
            )
    except InvalidToken:
        detail = "the stored credential cannot be decrypted (the server secret changed); store it again"
        _mark(row, Readiness.REFRESH_REFUSED, detail, now)
        session.add(row)
        return _Refreshed(failure=MintFailed(Readiness.REFRESH_REFUSED, detail, 1))
    wait = inference.breaker.remaining(CHUTES)
    if wait:
        detail = f"Chutes is unavailable (circuit open for {wait} s more)"
        return _Refreshed(failure=MintFailed(Readiness.PROVIDER_UNAVAILABLE, detail, wait))
    try:
        tokens = inference.oauth.refresh(refresh_token)
    except ProviderRefused as exc:
        detail = f"Chutes refused the refresh token ({exc})"
        log.warning("inference: Chutes refused the refresh token of miner %s (%s)", miner_hotkey, exc)
        _mark(row, Readiness.REFRESH_REFUSED, detail, now)
        row.access_ciphertext = row.access_expires_at = None
        session.add(row)
        return _Refreshed(failure=MintFailed(Readiness.REFRESH_REFUSED, detail, 1))
    except ProviderUnavailable as exc:
        inference.breaker.open(CHUTES)
        detail = f"Chutes token endpoint failed: {exc}"
        log.warning("inference: %s; circuit open for %s s", detail, settings.inference_breaker_seconds)
        _mark(row, Readiness.PROVIDER_UNAVAILABLE, detail, now)
        session.add(row)
        return _Refreshed(
            failure=MintFailed(Readiness.PROVIDER_UNAVAILABLE, detail, settings.inference_breaker_seconds)
        )
    inference.breaker.close(CHUTES)
    if tokens.refresh_token:  # rotation: the old one is spent, keep the new one before handing anything out
        row.ciphertext = box.encrypt(tokens.refresh_token.encode())
    row.access_ciphertext = box.encrypt(tokens.access_token.encode())
    row.access_expires_at = tokens.expires_at
    row.last_refreshed_at = now
    row.error_code = row.error_detail = row.error_at = None
    session.add(row)
    session.flush()
    return _Refreshed(grant=_chutes_grant(tokens.access_token, tokens.expires_at, settings))


def mint(
    db: Database, inference: Inference, *, miner_hotkey: str, now: datetime | None = None
) -> Grant | None:
    """A token for a claim from the miner's credential; None if it has no usable one.

    Raises ``MintFailed`` when it has one but no token can be had now.
    """
    now = now or utcnow()
    chosen = db.call(_choose, miner_hotkey=miner_hotkey, settings=inference.settings, now=now)
    return _grant(db, inference, chosen, miner_hotkey=miner_hotkey, now=now)


def _grant(
    db: Database, inference: Inference, chosen: _Chosen | None, *, miner_hotkey: str, now: datetime
) -> Grant | None:
    """The grant of the credential ``_choose`` read: at once for an API key or a cached access token,
    else from a refresh (its own transaction, under the credential's lock, with the provider call)."""
    settings = inference.settings
    if chosen is None:
        return None
    if chosen.provider == OPENROUTER:
        assert chosen.secret_plain is not None
        expires = now + timedelta(seconds=API_KEY_GRANT_SECONDS)
        return Grant(OPENROUTER, chosen.secret_plain, settings.openrouter_base_url, expires)
    if chosen.cached is not None:
        return chosen.cached
    wait = inference.breaker.remaining(CHUTES)
    if wait:  # answer at once: no lock, no call
        raise MintFailed(
            Readiness.PROVIDER_UNAVAILABLE, f"Chutes is unavailable (circuit open for {wait} s more)", wait
        )
    outcome = db.call(
        refresh_chutes, miner_hotkey=miner_hotkey, settings=settings, inference=inference, now=now
    )
    if outcome.failure is not None:
        raise outcome.failure
    return outcome.grant


@dataclass(frozen=True)
class ClaimGrant:
    claim: evaluations.Claim
    grant: Grant | None


@dataclass(frozen=True)
class _Claimed:
    claim: evaluations.Claim
    chosen: _Chosen | None


@writes
def _claim_and_choose(
    session: Session,
    *,
    validator_hotkey: str,
    settings: Settings,
    storage: Storage,
    metrics: evaluations.Metrics | None,
) -> _Claimed | None:
    """The claim, and the credential its token is minted from, read in the claim's transaction (a
    read and a decryption, no call: the provider is called, if at all, after the commit)."""
    claim = evaluations.claim_work(
        session, validator_hotkey=validator_hotkey, settings=settings, storage=storage, metrics=metrics
    )
    if claim is None:
        return None
    chosen = _choose(session, miner_hotkey=claim.miner_hotkey, settings=settings, now=claim.run.claimed_at)
    return _Claimed(claim, chosen)


def claim_with_grant(
    db: Database,
    inference: Inference,
    *,
    validator_hotkey: str,
    settings: Settings,
    storage: Storage,
    metrics: evaluations.Metrics | None = None,
    call: Callable[..., Any] | None = None,
) -> ClaimGrant | None:
    """Claim (one transaction, which also reads the miner's credential), then mint outside it; if
    minting fails, release the run (a second transaction: no attempt counted, the slot given back) and
    raise SERVICE_UNAVAILABLE.

    ``call`` runs the claim's transaction: ``db.call`` unless the caller has its own (a signed REST
    claim passes ``SignatureVerifier.call_signed`` bound to its signature, which spends the request's
    nonce in that transaction)."""
    run = call or db.call
    claimed: _Claimed | None = run(
        _claim_and_choose,
        validator_hotkey=validator_hotkey,
        settings=settings,
        storage=storage,
        metrics=metrics,
    )
    if claimed is None:
        return None
    claim = claimed.claim
    try:
        grant = _grant(db, inference, claimed.chosen, miner_hotkey=claim.miner_hotkey, now=utcnow())
    except MintFailed as exc:
        db.call(
            evaluations.release_run,
            run_id=claim.run.id,
            reason=f"released: no inference token ({exc.readiness.value}: {exc.detail})",
        )
        raise ServiceUnavailable(
            f"no inference token could be minted for this work ({exc.detail}); the run was released, "
            f"claim again in {exc.retry_after} s",
            remaining_seconds=exc.retry_after,
        ) from None
    if grant is None and settings.require_inference_credential:  # its credential went away after the claim
        db.call(
            evaluations.release_run,
            run_id=claim.run.id,
            reason="released: the miner's credential was removed",
        )
        raise ServiceUnavailable(
            "the miner's inference credential was removed while this work was claimed; the run was released, "
            "claim again",
            remaining_seconds=1,
        )
    return ClaimGrant(claim, grant)


def exchange_chutes_code(
    db: Database, inference: Inference, *, hotkey: str, code: str, code_verifier: str, redirect_uri: str
) -> credentials.CredentialStatus:
    """The authorization-code grant (with PKCE) on the miner's behalf; stores the refresh token it yields."""
    settings = inference.settings
    if not settings.chutes_client_id:
        raise ValidationFailed("this server has no Chutes OAuth client (ORO_CHUTES_CLIENT_ID is unset)")
    if redirect_uri not in settings.redirect_uris:
        raise ValidationFailed("redirect_uri is not one this server allows (ORO_CHUTES_REDIRECT_URIS)")
    if not _PKCE_VERIFIER.match(code_verifier):
        raise ValidationFailed("code_verifier must be 43-128 characters of [A-Za-z0-9-._~] (RFC 7636)")
    if not code or len(code) > credentials.MAX_TOKEN_LENGTH:
        raise ValidationFailed(f"code must be 1-{credentials.MAX_TOKEN_LENGTH} characters")
    wait = inference.breaker.remaining(CHUTES)
    if wait:
        raise ServiceUnavailable(f"Chutes is unavailable; retry in {wait} s", remaining_seconds=wait)
    try:
        tokens = inference.oauth.exchange_code(code, code_verifier, redirect_uri)
    except ProviderRefused as exc:
        raise ValidationFailed(
            f"Chutes refused the authorization code ({exc}); start the sign-in again"
        ) from None
    except ProviderUnavailable as exc:
        inference.breaker.open(CHUTES)
        raise ServiceUnavailable(
            f"Chutes token endpoint failed: {exc}; retry shortly",
            remaining_seconds=settings.inference_breaker_seconds,
        ) from None
    if not tokens.refresh_token:
        raise ValidationFailed(
            "Chutes issued no refresh token for this code (was the offline scope granted?)"
        )
    return db.call(
        credentials.store_credential,
        hotkey=hotkey,
        token=tokens.refresh_token,
        secret=settings.secret,
        provider=CHUTES,
        access_token=tokens.access_token,
        access_expires_at=tokens.expires_at,
    )


@dataclass(frozen=True)
class VersionInference:
    """A miner's version with whether it waits for an inference credential, and why."""

    view: agents.VersionView
    miner: credentials.MinerInference
    waiting: bool  # open, and not offered to validators until the miner has a usable credential


def owned_version_status(
    session: Session, version_id: uuid.UUID, *, owner: str, settings: Settings
) -> VersionInference:
    view = agents.version_view(session, version_id, owner=owner)
    miner = credentials.miner_inference(session, hotkey=owner, settings=settings)
    work = view.work_item
    waiting = (
        settings.require_inference_credential
        and work is not None
        and not work.is_closed
        and miner.readiness not in (Readiness.READY, Readiness.PROVIDER_UNAVAILABLE)
    )
    return VersionInference(view, miner, waiting)
