"""Request signing: SR25519 signatures over ``{hotkey}:{timestamp}:{nonce}``, replay protection.

Written once and used by both adapters. It knows nothing about FastAPI or Strawberry: it takes a
mapping of headers and returns the verified hotkey or raises ``Unauthenticated``. Whether that
hotkey may call a path is the registry's business (``services.registry.require_role``).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Protocol, TypeVar

from substrateinterface import Keypair

from oro_graph.errors import ServiceUnavailable, Unauthenticated

if TYPE_CHECKING:
    from sqlmodel import Session

    from oro_graph.db import Database

P = ParamSpec("P")
T = TypeVar("T")

HEADER_HOTKEY = "X-Hotkey"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
SIGNED_HEADERS = (HEADER_HOTKEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
MAX_NONCE_LENGTH = 128
_REPLAYED = "this nonce was already used; sign every request with a fresh nonce"
_NO_NONCE_STORE = "replay protection is unavailable (the nonce store did not answer); retry shortly"


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

    def spent_here(self, hotkey: str, nonce: str) -> bool:
        """Whether this process knows (hotkey, nonce) spent, without asking anyone: a replay it is
        sent is refused for nothing. False does not make a nonce fresh: ``claim`` decides that."""


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

    def spent_here(self, hotkey: str, nonce: str) -> bool:
        expires = self._seen.get((hotkey, nonce))
        return expires is not None and expires > time.monotonic()


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
        self._here = MemoryNonceStore()  # the nonces this process saw spent (``spent_here``)

    def claim(self, hotkey: str, nonce: str, ttl_seconds: int) -> bool:
        from oro_graph.services import sharedstate

        now = self.prune_due()
        fresh = self._db.call(sharedstate.claim_nonce, hotkey, nonce, now=now, expires_at=now + ttl_seconds)
        self._here.claim(hotkey, nonce, ttl_seconds)
        return fresh

    def spent_here(self, hotkey: str, nonce: str) -> bool:
        """Whether this process spent the nonce, or saw it spent (a replay sent to another process is
        refused by the database, as is one racing its original)."""
        return self._here.spent_here(hotkey, nonce)

    def spent(self, hotkey: str, nonce: str, ttl_seconds: int) -> None:
        """Remember a nonce that ``claim_in`` spent, once its transaction committed."""
        self._here.claim(hotkey, nonce, ttl_seconds)

    def claim_in(self, session: Session, hotkey: str, nonce: str, ttl_seconds: int) -> bool:
        """``claim`` inside the caller's transaction: the nonce is spent if, and when, it commits.
        The caller prunes (``prune_due``) before its transaction: on SQLite a prune in a transaction of
        its own would wait for the caller's write lock."""
        from oro_graph.services import sharedstate

        now = time.time()
        return sharedstate.claim_nonce(session, hotkey, nonce, now=now, expires_at=now + ttl_seconds)

    def prune_due(self) -> float:
        """Now; expired nonces are deleted (their own transaction) once a ``PRUNE_EVERY`` per process."""
        from oro_graph.services import sharedstate

        now = time.time()
        if now >= self._next_prune:
            self._next_prune = now + self.PRUNE_EVERY
            self._db.call(sharedstate.prune_nonces, now=now)
        return now


@functools.lru_cache(maxsize=4096)
def _public_keypair(hotkey: str) -> Keypair:
    """The hotkey's ``Keypair`` (its public key decoded from SS58), built once per hotkey rather than on
    every request. Raises for a bad address (nothing is cached then). Bounded: a flood of made-up
    hotkeys only evicts."""
    return Keypair(ss58_address=hotkey)


@dataclass(frozen=True)
class SignatureVerifier:
    skew_seconds: int
    nonces: NonceStore

    @property
    def nonce_ttl(self) -> int:
        """Twice the skew: a nonce must stay unique for as long as its timestamp is accepted."""
        return 2 * self.skew_seconds + 1

    def verify(self, headers: Mapping[str, str], *, now: float | None = None) -> str:
        """Return the hotkey that signed these headers, or raise ``Unauthenticated`` saying why."""
        hotkey, nonce = self.check_signature(headers, now=now)
        self.spend(hotkey, nonce)
        return hotkey

    def spend(self, hotkey: str, nonce: str) -> None:
        """Spend the nonce of a signature ``check_signature`` accepted: 401 if it was spent before,
        503 if the nonce store did not answer (a replay could not be ruled out)."""
        if self.nonces.spent_here(hotkey, nonce):
            raise Unauthenticated(_REPLAYED)
        try:
            fresh = self.nonces.claim(hotkey, nonce, ttl_seconds=self.nonce_ttl)
        except Exception as exc:  # fail closed: without the nonce store a replay cannot be ruled out
            raise ServiceUnavailable(_NO_NONCE_STORE) from exc
        if not fresh:
            raise Unauthenticated(_REPLAYED)

    def call_signed(
        self,
        db: Database,
        signed: tuple[str, str],
        fn: Callable[Concatenate[Session, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``call_charged`` without a rate-limit charge."""
        return self.call_charged(db, signed, None, fn, *args, **kwargs)

    def call_charged(
        self,
        db: Database,
        signed: tuple[str, str],
        charge: Callable[[], object] | None,
        fn: Callable[Concatenate[Session, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``db.call(fn, ...)`` for a request whose signature ``check_signature`` accepted as ``signed``
        (hotkey, nonce), spending its nonce in the transaction of the work (``fn`` must be ``@writes``).

        Why: the nonce's own transaction was a pool checkout, a ping, two statements and a commit on
        every signed write. Here the nonce row is the transaction's last statement, so the work and
        the nonce commit together: a replay (even one racing the original on another process, which
        waits for the original's row) finds the nonce spent after doing the work, and rolls it back.
        If the work refuses (or fails), its transaction is rolled back with the nonce, so the nonce is
        then spent in a transaction of its own; a replay refused that way is 401, like any replay.
        Last rather than first because a claim that sweeps lapsed leases rolls its transaction back
        once and goes on in a new one (``evaluations.claim_work``): a nonce inserted first would be
        lost with it. With the in-process store (one server process) the nonce is spent before.
        A replay this process knows of (``NonceStore.spent_here``) is refused before anything else.

        ``charge`` (the write's rate-limit charge, ``RateLimits.write_charge``, or the verdict on the
        charge the rate limit made with the request's point) runs first, on this worker thread: a
        signed write leaves the event loop once, where charging it from the route was a thread hop
        (and a round trip to Redis) of its own before this one."""
        hotkey, nonce = signed
        store = self.nonces
        if store.spent_here(hotkey, nonce):  # a replay this process knows costs neither budget nor work
            raise Unauthenticated(_REPLAYED)
        if charge is not None:
            charge()
        if not isinstance(store, DatabaseNonceStore):
            self.spend(hotkey, nonce)
            return db.call(fn, *args, **kwargs)
        store.prune_due()

        def work(session: Session, /, *a: P.args, **kw: P.kwargs) -> T:
            done = fn(session, *a, **kw)
            if not store.claim_in(session, hotkey, nonce, self.nonce_ttl):
                raise Unauthenticated(_REPLAYED)
            return done

        work.__oro_writes__ = True  # type: ignore[attr-defined]
        try:
            done = db.call(work, *args, **kwargs)
        except Unauthenticated:
            raise
        except Exception:
            self.spend(hotkey, nonce)  # a replay's refusal is 401; a failed store's, 503
            raise
        store.spent(hotkey, nonce, self.nonce_ttl)
        return done

    def check_signature(self, headers: Mapping[str, str], *, now: float | None = None) -> tuple[str, str]:
        """(hotkey, nonce) when the headers carry a fresh signature by that hotkey; else Unauthenticated.
        The nonce is not spent (``spend``, ``call_signed``). A request's signature is checked once, at
        the edge, which keeps the answer for the routes (``edge.request.checked_signature``)."""
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
            keypair = _public_keypair(hotkey)
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
