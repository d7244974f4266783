"""The inference providers' side of minting: the OAuth 2.0 token endpoint's client, the circuit breaker
that stops calling a provider that is down, and the ``Inference`` bundle each server process holds.
Minting itself (``services.inference``) decides when to call them."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from oro_graph.models import utcnow
from oro_graph.services.credentials import Readiness
from oro_graph.settings import Settings

log = logging.getLogger("oro_graph.inference")


@dataclass(frozen=True)
class Grant:
    """The token a validator presents at ``base_url`` on the miner's behalf."""

    provider: str
    access_token: str = ""
    base_url: str = ""
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # never print the token
        return (
            f"Grant(provider={self.provider!r}, base_url={self.base_url!r}, expires_at={self.expires_at!r})"
        )


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime

    def __repr__(self) -> str:
        return f"TokenSet(expires_at={self.expires_at!r})"


class ProviderRefused(Exception):
    """The provider answered and refused the grant (``invalid_grant``: revoked, used or expired)."""


class ProviderUnavailable(Exception):
    """The provider did not answer usefully (timeout, network, 5xx, 429, an unreadable answer)."""


class MintFailed(Exception):
    """No token for this claim; ``retry_after`` seconds until trying again makes sense."""

    def __init__(self, readiness: Readiness, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.readiness, self.detail, self.retry_after = readiness, detail, retry_after


# --- the provider: an OAuth 2.0 token endpoint ---------------------------------------------------


class OAuthClient:
    """The token endpoint's two grants, with client credentials in the body (client_secret_post)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._http = httpx.Client(timeout=httpx.Timeout(settings.inference_timeout_seconds))

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._post({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def exchange_code(self, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        return self._post(
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": code_verifier,
                "redirect_uri": redirect_uri,
            }
        )

    def _post(self, form: dict[str, str]) -> TokenSet:
        settings = self.settings
        form = {**form, "client_id": settings.chutes_client_id or ""}
        if settings.chutes_client_secret:
            form["client_secret"] = settings.chutes_client_secret
        started = utcnow()
        try:
            response = self._http.post(
                settings.chutes_token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TimeoutException:
            raise ProviderUnavailable(f"no answer within {settings.inference_timeout_seconds:g} s") from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"unreachable ({type(exc).__name__})") from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code in (400, 401) and body.get("error") == "invalid_grant":
            raise ProviderRefused(_error_text(body))
        if response.status_code != 200:
            raise ProviderUnavailable(f"answered HTTP {response.status_code} ({_error_text(body)})")
        access, expires_in = body.get("access_token"), body.get("expires_in", 3600)
        if not isinstance(access, str) or not access or not isinstance(expires_in, int | float):
            raise ProviderUnavailable("answered without an access_token and a numeric expires_in")
        rotated = body.get("refresh_token")
        return TokenSet(
            access_token=access,
            refresh_token=rotated if isinstance(rotated, str) and rotated else None,
            expires_at=started + timedelta(seconds=float(expires_in)),
        )

    def close(self) -> None:
        self._http.close()


def _error_text(body: dict[str, Any]) -> str:
    """The provider's OAuth error code only (its description may quote what we sent)."""
    error = body.get("error")
    if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,64}", error):
        return error
    return "no OAuth error code"


# --- the circuit breaker -------------------------------------------------------------------------


class Breaker:
    """Open for ``seconds`` after a provider failure; shared through Redis when there is one."""

    def __init__(self, seconds: int, redis: Any | None = None) -> None:
        self.seconds = seconds
        self.redis = redis
        self._open_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _key(self, provider: str) -> str:
        return f"oro:inference:breaker:{provider}"

    def remaining(self, provider: str) -> int:
        """Seconds the breaker stays open (0: closed)."""
        if self.redis is not None:
            try:
                ttl_ms = int(self.redis.pttl(self._key(provider)))
                return math.ceil(ttl_ms / 1000) if ttl_ms > 0 else 0
            except Exception:  # Redis down: this process's own view
                log.warning("inference breaker: Redis unavailable, using this process's state")
        with self._lock:
            left = self._open_until.get(provider, 0.0) - time.monotonic()
        return math.ceil(left) if left > 0 else 0

    def open(self, provider: str) -> None:
        with self._lock:
            self._open_until[provider] = time.monotonic() + self.seconds
        if self.redis is not None:
            try:
                self.redis.set(self._key(provider), b"1", px=self.seconds * 1000)
            except Exception:
                log.warning("inference breaker: Redis unavailable, opened in this process only")

    def close(self, provider: str) -> None:
        with self._lock:
            self._open_until.pop(provider, None)
        if self.redis is not None:
            try:
                self.redis.delete(self._key(provider))
            except Exception:
                pass


class Inference:
    """One per server process: the provider's client and the breaker (see ``Runtime``)."""

    def __init__(self, settings: Settings, redis: Any | None = None) -> None:
        self.settings = settings
        self.oauth = OAuthClient(settings)
        self.breaker = Breaker(settings.inference_breaker_seconds, redis)

    def close(self) -> None:
        self.oauth.close()
