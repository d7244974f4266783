"""Request signing: SR25519 signatures over ``{hotkey}:{timestamp}:{nonce}``, replay protection.

Written once and used by both adapters. It knows nothing about FastAPI or Strawberry: it takes a
mapping of headers and returns the verified hotkey or raises ``Unauthenticated``. Whether that
hotkey may call a path is the registry's business (``services.registry.require_role``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from substrateinterface import Keypair

from oro_graph.errors import ServiceUnavailable, Unauthenticated

if TYPE_CHECKING:
    from oro_graph.db import Database

HEADER_HOTKEY = "X-Hotkey"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
SIGNED_HEADERS = (HEADER_HOTKEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
MAX_NONCE_LENGTH = 128


def signing_message(hotkey: str, timestamp: str, nonce: str) -> str:
    return f"{hotkey}:{timestamp}:{nonce}"


def sign_headers(
    keypair: Keypair, *, nonce: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Headers exactly as the official client makes them (used by tests, the CLI and demos)."""
    import uuid

    ts = str(int(time.time()) if timestamp is None else timestamp)
    n = nonce or uuid.uuid4().hex
    signature = keypair.sign(signing_message(keypair.ss58_address, ts, n).encode())
    return {
        HEADER_HOTKEY: keypair.ss58_address,
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: n,
        HEADER_SIGNATURE: "0x" + signature.hex(),
    }


class NonceStore(Protocol):
    def claim(self, hotkey: str, nonce: str, ttl_seconds: int) -> bool:
        """Record (hotkey, nonce); False when it was already seen within the TTL."""


class MemoryNonceStore:
    """In-process nonces, for a single server process (the embedded default)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def claim(self, hotkey: str, nonce: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if now >= self._next_sweep:
                self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
                self._next_sweep = now + 5
            key = (hotkey, nonce)
            expires = self._seen.get(key)
            if expires is not None and expires > now:
                return False
            self._seen[key] = now + ttl_seconds
            return True


class DatabaseNonceStore:
    """Nonces shared by every server process, in the database (``services.sharedstate``).

    Not in Redis: a Redis restarted without persistence forgot the nonces of the last 2 x skew
    seconds (each could be replayed once), and a store that moved to the database only once Redis
    was unreachable could not know the nonces Redis had taken just before. One insert per signed
    request, against a primary key, is both single-use and durable. If the database is down the
    caller fails closed (503), as every signed path does without its database.
    """

    PRUNE_EVERY = 60.0

    def __init__(self, db: Database) -> None:
        self._db = db
        self._next_prune = 0.0

    def claim(self, hotkey: str, nonce: str, ttl_seconds: int) -> bool:
        from oro_graph.services import sharedstate

        now = time.time()
        if now >= self._next_prune:
            self._next_prune = now + self.PRUNE_EVERY
            self._db.call(sharedstate.prune_nonces, now=now)
        return self._db.call(sharedstate.claim_nonce, hotkey, nonce, now=now, expires_at=now + ttl_seconds)


@dataclass(frozen=True)
class SignatureVerifier:
    skew_seconds: int
    nonces: NonceStore

    def verify(self, headers: Mapping[str, str], *, now: float | None = None) -> str:
        """Return the hotkey that signed these headers, or raise ``Unauthenticated`` saying why."""
        hotkey, nonce = self.check_signature(headers, now=now)
        # The window is twice the skew: a nonce must stay unique for as long as its timestamp is accepted.
        try:
            fresh = self.nonces.claim(hotkey, nonce, ttl_seconds=2 * self.skew_seconds + 1)
        except Exception as exc:  # fail closed: without the nonce store a replay cannot be ruled out
            raise ServiceUnavailable(
                "replay protection is unavailable (the nonce store did not answer); retry shortly"
            ) from exc
        if not fresh:
            raise Unauthenticated("this nonce was already used; sign every request with a fresh nonce")
        return hotkey

    def signed_by(self, headers: Mapping[str, str], *, now: float | None = None) -> str | None:
        """The hotkey whose fresh signature these headers carry, None otherwise; the nonce is not claimed
        (the rate limiter charges a signed request to its hotkey before the route verifies it)."""
        try:
            return self.check_signature(headers, now=now)[0]
        except Unauthenticated:
            return None

    def check_signature(self, headers: Mapping[str, str], *, now: float | None = None) -> tuple[str, str]:
        """(hotkey, nonce) when the headers carry a fresh signature by that hotkey; else Unauthenticated."""
        values = {name: headers.get(name) for name in SIGNED_HEADERS}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise Unauthenticated(f"missing authentication headers: {', '.join(missing)}")
        hotkey, timestamp, nonce, signature = (str(values[name]) for name in SIGNED_HEADERS)
        if len(nonce) > MAX_NONCE_LENGTH:
            raise Unauthenticated(f"{HEADER_NONCE} is longer than {MAX_NONCE_LENGTH} characters")
        try:
            ts = int(timestamp)
        except ValueError:
            raise Unauthenticated(f"{HEADER_TIMESTAMP} must be Unix seconds as an integer") from None
        current = time.time() if now is None else now
        # Whole seconds, as the header is: 61 s ahead reads "61 s ahead", not "-60 s away".
        ahead = ts - math.floor(current)
        if abs(ahead) > self.skew_seconds:
            where = f"{ahead} s ahead of" if ahead > 0 else f"{-ahead} s behind"
            raise Unauthenticated(
                f"{HEADER_TIMESTAMP} is {where} server time; the allowed skew is {self.skew_seconds} s"
                " either way: check the client's clock"
            )
        try:
            keypair = Keypair(ss58_address=hotkey)
        except Exception:
            raise Unauthenticated(f"{HEADER_HOTKEY} is not a valid SS58 address") from None
        try:
            raw_signature = bytes.fromhex(signature.removeprefix("0x"))
        except ValueError:
            raise Unauthenticated(f"{HEADER_SIGNATURE} must be 0x-prefixed hex") from None
        try:
            valid = keypair.verify(signing_message(hotkey, timestamp, nonce).encode(), raw_signature)
        except Exception:
            valid = False
        if not valid:
            raise Unauthenticated("signature does not match '{hotkey}:{timestamp}:{nonce}' for this hotkey")
        return hotkey, nonce
