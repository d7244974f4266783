"""Request budgets shared by both surfaces (the policy: who is charged, how much, under which limit).

- **Per client, in points** (``ORO_RATE_LIMIT_PER_MINUTE`` points a minute, like GitHub's GraphQL
  budget). The client is the hotkey of a request carrying a fresh signature, else the address. A
  REST request costs one point; a GraphQL request ``max(1, ceil(cost / ORO_GRAPHQL_COST_PER_POINT))``
  where cost is its static cost (the sum over a batch), capped at the whole budget. An answer from
  a cache costs the same as a computed one: the budget is the client's claim on the server.
- **Per hotkey and signed write** (claim, heartbeat, progress, complete, presign, credentials:
  ``ORO_WRITE_RATE_LIMIT`` each; submissions: ``ORO_SUBMIT_RATE_LIMIT``).

Every charge goes through ``RateLimits.charge`` (N points to a key, in a window; the answer says
the limit, what remains and when the window resets), the one place that touches the counter
store. Counters live in Redis when ORO_REDIS_URL is set, so every server process draws on the same
budget, and in the database while Redis is unreachable (``oro_graph.edge.ratestore``); in process
without Redis. If the counters cannot be stored at all the request goes through (logged): a limit
protects capacity, it is not a security boundary like the nonce store, which fails closed.

Redis is asked from the event loop, with the asyncio client the app's lifespan opens
(``ratestore.LoopCharges``): a hop to a worker thread and back, per request, cost a busy machine
about a tenth of its cached reads.
While the breaker is open (an outage), and without a lifespan, a charge is asked from a worker thread
with a blocking socket timeout, which falls back to the database. A charge that times out on the
loop is asked again from a thread, whose timeout is Redis's own and alone trips the breaker: no
request goes uncounted, and a held-up loop cannot move the counters to the database.

What a request costs here, measured as server CPU per cached answer (``python -m benchmarks.edgecost``):
each charge is one script in Redis (``ratestore.charge``), not two; a request a response cache
may answer reads the data versions in that same round trip (``EdgeRequest.versions``); and a
GraphQL request the gate admitted before is charged all its points at once (``gate.Verdicts``).
So a cached answer costs one round trip, where it took two and two thread hops plus a blocking round
trip on the event loop for the versions (about 0.5 ms of CPU instead of 1.5 ms).
Likewise a signed write of the validator loop (``PRECHARGED_WRITES``) is charged its point and its
write budget in one script, and its route takes the write's verdict (``RateLimits.write_charge``):
a write with a body the route then refuses (422) has spent its write budget too.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph.auth import SignatureVerifier
from oro_graph.edge import ratestore
from oro_graph.edge.request import EdgeRequest, checked_signature, reply
from oro_graph.errors import RateLimitExceeded, Unauthenticated
from oro_graph.observability import RATE_LIMIT_REFUSALS
from oro_graph.settings import Settings
from oro_graph.threads import to_thread

if TYPE_CHECKING:
    from oro_graph.dataversion import DataVersion

log = logging.getLogger("oro_graph.edge.ratelimit")

KEY_PREFIX = "oro:ratelimit"
# The signed writes with a per-hotkey budget of ORO_WRITE_RATE_LIMIT each (submit has its own).
WRITES = ("claim", "heartbeat", "progress", "complete", "presign", "credentials")

# The signed REST writes whose routes take their write charge from the rate limit (``write_of``;
# rest_compat/validator.py), by path: the validator loop's four calls.
PRECHARGED_WRITES = re.compile(
    r"/v1/validator/(?:work/(claim)|evaluation-runs/[^/]+/(heartbeat|progress|complete))"
)


def precharged_write(scope: Scope) -> str | None:
    """The action (one of ``WRITES``) of a request to one of ``PRECHARGED_WRITES``, else None."""
    if scope.get("method") != "POST":
        return None
    found = PRECHARGED_WRITES.fullmatch(scope["path"])
    return (found[1] or found[2]) if found else None


@dataclass(frozen=True)
class Charge:
    """What one charge left in a budget: the ``X-RateLimit-*`` headers and the graph's ``rateLimit``."""

    limit: int  # points in a full window
    remaining: int  # points left once this charge is counted
    reset_at: float  # Unix time when the window has room again
    cost: int  # points this charge asked for
    allowed: bool

    @property
    def reset(self) -> int:
        """``reset_at`` in whole seconds (``X-RateLimit-Reset``)."""
        return math.ceil(self.reset_at)

    @property
    def retry_after(self) -> int:
        """Seconds to wait before retrying (at least 1)."""
        return max(1, math.ceil(self.reset_at - time.time()))


@dataclass(frozen=True)
class WriteCharged:
    """A signed write the rate limit charged with its client's point, for the route to take."""

    hotkey: str
    action: str  # one of WRITES
    charge: Charge | None  # None when the counter store was unavailable (let through)


@dataclass(frozen=True)
class PreCharge:
    """The client's charge and, when the client was within its budget, the write's."""

    client: Charge | None
    write: WriteCharged | None


@dataclass
class RateState:
    """The request's client and its latest charge, for the headers and the graph's ``rateLimit``."""

    client: str  # "hotkey:<ss58>" or "address:<ip>"
    charge: Charge | None  # None when the counter store was unavailable
    points: int = 1  # what the rate-limit middleware charged (the gate charges what is left)

    @property
    def kind(self) -> str:
        return self.client.split(":", 1)[0]


def rate_headers(charge: Charge) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(charge.limit),
        "X-RateLimit-Remaining": str(charge.remaining),
        "X-RateLimit-Reset": str(charge.reset),
    }
    if not charge.allowed:
        headers["Retry-After"] = str(charge.retry_after)
    return headers


def refusal_message(state: RateState, charge: Charge) -> str:
    asked = f"; this request costs {charge.cost}" if charge.cost > 1 else ""
    return (
        f"more than {charge.limit} points per minute from this {state.kind}{asked} and {charge.remaining} "
        f"remain; retry in {charge.retry_after} s"
    )


def graphql_refusal(state: RateState, charge: Charge) -> tuple[int, dict[str, str], bytes]:
    """The 429 of /graphql: a GraphQL answer, with the rate-limit headers."""
    error = {
        "message": refusal_message(state, charge),
        "extensions": {
            "code": "RATE_LIMITED",
            "retryAfter": charge.retry_after,
            "limit": charge.limit,
            "remaining": charge.remaining,
            "cost": charge.cost,
        },
    }
    body = json.dumps({"data": None, "errors": [error]}).encode()
    return 429, {**rate_headers(charge), "content-type": "application/json"}, body


class RateLimits:
    def __init__(
        self,
        storage: Storage,
        *,
        per_client: RateLimitItem,
        per_submitter: RateLimitItem,
        per_write: RateLimitItem | None = None,
        cost_per_point: int = 500,
    ) -> None:
        self.storage = storage
        self.per_client = per_client
        self.per_submitter = per_submitter
        self.per_write = per_write or parse("120/minute")
        self.cost_per_point = cost_per_point

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage | None = None) -> RateLimits:
        """The budgets of ``settings`` over ``storage`` (``oro_graph.edge.ratestore``: Redis with the
        database as its fallback, as ``Runtime`` builds it), or over Redis alone or this process."""
        if storage is None:
            storage = (
                ratestore.redis_storage(
                    settings.redis_url, timeout=settings.redis_timeout_seconds, key_prefix=KEY_PREFIX
                )
                if settings.redis_url
                else MemoryStorage()
            )
        return cls(
            storage,
            per_client=RateLimitItemPerMinute(settings.rate_limit_per_minute),
            per_submitter=parse(settings.submit_rate_limit),  # validated by Settings
            per_write=parse(settings.write_rate_limit),
            cost_per_point=settings.graphql_cost_per_point,
        )

    # The one storage seam: N points to a key in a window.
    def _charge(
        self, item: RateLimitItem, points: int, identifiers: tuple[str, ...], versions: Sequence[str] = ()
    ) -> tuple[Charge | None, ratestore.Versions]:
        """Charge ``points`` to the key; None when the counter store is unavailable (let through).
        With ``versions`` (the data version's keys), what Redis holds there, read in the same call."""
        try:  # one round trip to Redis: take the points and read the window (ratestore.charge)
            window, read = ratestore.charge(self.storage, *self._ask(item, points, identifiers), versions)
        except StorageError:
            log.warning("rate-limit store unavailable; letting the request through", exc_info=True)
            return None, None
        return self._verdict(item, points, identifiers, window), read

    @staticmethod
    def _ask(item: RateLimitItem, points: int, identifiers: tuple[str, ...]) -> ratestore.Ask:
        return item.key_for(*identifiers), item.amount, item.get_expiry(), points

    @staticmethod
    def _verdict(
        item: RateLimitItem, points: int, identifiers: tuple[str, ...], window: ratestore.Window
    ) -> Charge:
        allowed, start, count = window
        if not allowed:
            RATE_LIMIT_REFUSALS.labels(identifiers[0]).inc()  # client, submit or write: bounded
        remaining = item.amount - count
        reset = start + item.get_expiry() if remaining < item.amount else time.time() + item.get_expiry()
        return Charge(item.amount, max(0, remaining), reset, points, allowed)

    def _charge_client_and_write(self, client: str, points: int, hotkey: str, action: str) -> PreCharge:
        """The client's points, then (if they fit) one signed write of ``action``: one round trip."""
        on_client, on_write = ("client", client), ("write", action, hotkey)
        try:
            first, second = ratestore.charge_both(
                self.storage,
                self._ask(self.per_client, points, on_client),
                self._ask(self.per_write, 1, on_write),
            )
        except StorageError:
            log.warning("rate-limit store unavailable; letting the request through", exc_info=True)
            return PreCharge(None, WriteCharged(hotkey, action, None))
        return self._pre_charge(client, points, hotkey, action, first, second)

    def _pre_charge(
        self,
        client: str,
        points: int,
        hotkey: str,
        action: str,
        first: ratestore.Window,
        second: ratestore.Window | None,
    ) -> PreCharge:
        charged = self._verdict(self.per_client, points, ("client", client), first)
        if second is None:
            return PreCharge(charged, None)
        on_write = ("write", action, hotkey)
        return PreCharge(
            charged, WriteCharged(hotkey, action, self._verdict(self.per_write, 1, on_write, second))
        )

    async def charge(self, item: RateLimitItem, points: int, *identifiers: str) -> Charge | None:
        return (await self._charged(item, points, identifiers))[0]

    async def _charged(
        self, item: RateLimitItem, points: int, identifiers: tuple[str, ...], versions: Sequence[str] = ()
    ) -> tuple[Charge | None, ratestore.Versions]:
        if isinstance(self.storage, MemoryStorage):  # no I/O: no reason to leave the loop
            return self._charge(item, points, identifiers)
        on_loop = await ratestore.charge_on_loop(
            self.storage, *self._ask(item, points, identifiers), versions
        )
        if on_loop is not None:
            window, read = on_loop
            return self._verdict(item, points, identifiers, window), read
        return await to_thread(self._charge, item, points, identifiers, versions)

    def open_loop(self) -> None:
        """Ask Redis from the running event loop from now on (``ratestore.LoopCharges``), not from a
        worker thread: the app's lifespan opens it on the loop that serves its requests."""
        if isinstance(self.storage, ratestore.FailoverStorage):
            self.storage.open_loop()

    async def close_loop(self) -> None:
        if isinstance(self.storage, ratestore.FailoverStorage):
            await self.storage.close_loop()

    # The policy.
    def points(self, cost: int) -> int:
        """Points a GraphQL request of this static cost is charged: at least 1, at most the whole budget."""
        return min(max(1, math.ceil(cost / self.cost_per_point)), self.per_client.amount)

    async def charge_client(self, client: str, points: int = 1) -> Charge | None:
        """Charge the client's points budget; ``client`` is ``hotkey:<ss58>`` or ``address:<ip>``."""
        return await self.charge(self.per_client, points, "client", client)

    async def charge_client_reading(
        self, client: str, points: int, versions: Sequence[str]
    ) -> tuple[Charge | None, ratestore.Versions]:
        """``charge_client``, and the data versions at ``versions`` read in the same round trip to
        Redis (None without Redis, or in the database while it is unreachable)."""
        return await self._charged(self.per_client, points, ("client", client), versions)

    async def charge_client_and_write(self, client: str, points: int, hotkey: str, action: str) -> PreCharge:
        """``charge_client``, then, if the client is within its budget, one signed write of ``action``
        (one of ``WRITES``) by ``hotkey``, in the same round trip to Redis; the route takes the write's
        verdict (``write_charge``) rather than charging it again."""
        if isinstance(self.storage, MemoryStorage):
            return self._charge_client_and_write(client, points, hotkey, action)
        on_client, on_write = ("client", client), ("write", action, hotkey)
        on_loop = await ratestore.charge_both_on_loop(
            self.storage,
            self._ask(self.per_client, points, on_client),
            self._ask(self.per_write, 1, on_write),
        )
        if on_loop is None:
            return await to_thread(self._charge_client_and_write, client, points, hotkey, action)
        return self._pre_charge(client, points, hotkey, action, *on_loop)

    async def hit_client(self, address: str) -> int | None:
        """One point to an address; None within budget, else the seconds to wait."""
        charge = await self.charge_client(f"address:{address}")
        return None if charge is None or charge.allowed else charge.retry_after

    async def hit_submitter(self, hotkey: str) -> int | None:
        charge = await self.charge(self.per_submitter, 1, "submit", hotkey)
        return None if charge is None or charge.allowed else charge.retry_after

    async def charge_write(self, hotkey: str, action: str) -> None:
        """One signed write of ``action`` (one of ``WRITES``) by ``hotkey``; RateLimitExceeded over budget."""
        if isinstance(self.storage, MemoryStorage):  # no I/O: no reason to leave the loop
            self.charge_write_now(hotkey, action)
        else:
            await to_thread(self.charge_write_now, hotkey, action)

    def charge_write_now(self, hotkey: str, action: str) -> None:
        """``charge_write`` on this thread, which may wait for Redis: a worker thread's."""
        charge, _ = self._charge(self.per_write, 1, ("write", action, hotkey))
        self.refuse_over_budget(action, charge)

    def refuse_over_budget(self, action: str, charge: Charge | None) -> None:
        """RateLimitExceeded if ``charge`` (a signed write of ``action``) did not fit its budget."""
        if charge is not None and not charge.allowed:
            raise RateLimitExceeded(
                f"more than {self.per_write} {action} requests from this hotkey; "
                f"retry in {charge.retry_after} s",
                remaining_seconds=charge.retry_after,
            )

    def write_charge(self, hotkey: str, action: str, scope: Scope | None = None) -> Callable[[], None]:
        """``charge_write_now`` for later, on the worker thread of the write itself
        (``SignatureVerifier.call_charged``): one thread hop for a signed write, not two. When the rate
        limit charged this write already, with the client's point (``RateLimitMiddleware``, for the
        request of ``scope``), its verdict: the charge is not made twice."""
        edge = EdgeRequest.get(scope) if scope is not None else None
        if edge is not None and edge.write is not None:
            charged, edge.write = edge.write, None  # taken once
            if (charged.hotkey, charged.action) == (hotkey, action):
                return functools.partial(self.refuse_over_budget, action, charged.charge)
        return functools.partial(self.charge_write_now, hotkey, action)


# -- the per-client budget, ahead of routing ------------------------------------------------------

GRAPHQL_PATH = "/graphql"


class RateLimitMiddleware:
    """Every request (but the signed ``/artifacts/`` URLs) is charged one point to its client before
    anything else runs: the hotkey of a fresh signature, else the address. The gate charges a
    costly GraphQL request the rest of its points once it knows the cost (``RateState``). Every
    answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix
    seconds); a refusal is a 429 with ``Retry-After``: the flat REST body on /v1 and elsewhere, a
    GraphQL answer (``errors[0].extensions.code`` RATE_LIMITED) on /graphql."""

    def __init__(
        self,
        app: ASGIApp,
        limits: RateLimits,
        verifier: SignatureVerifier | None = None,
        versions: DataVersion | None = None,
        reads_versions: Callable[[Scope], bool] | None = None,
        cost_of: Callable[[Scope, Receive], Awaitable[tuple[int | None, Receive]]] | None = None,
        write_of: Callable[[Scope], str | None] | None = None,
    ) -> None:
        """``versions`` and ``reads_versions``: for a request a response cache may answer
        (``reads_versions``), the charge also reads the data versions the cache looks up under, in
        the same round trip to Redis (``EdgeRequest.versions``): one round trip per cached answer,
        asked from the event loop (``ratestore.LoopCharges``), instead of two and two thread hops.

        ``cost_of``: the static cost of a GraphQL request the gate admitted before (``gate.Verdicts``),
        charged here in full, not one point here and the rest at the gate.

        ``write_of``: the signed write (one of ``WRITES``) a request is, if its route takes its write
        charge from here (``RateLimits.write_charge``): the hotkey's write budget is charged with its
        point, in the same round trip to Redis, not in a round trip of its own before the work."""
        self.app = app
        self.write_of = write_of
        self.cost_of = cost_of
        self.limits = limits
        self.verifier = verifier
        self.versions = versions
        self.reads_versions = reads_versions

    def client(self, scope: Scope) -> str:
        """The hotkey of a fresh signature (checked, once per request; not the nonce: the route spends
        it), else the address.

        Keyed on a header alone, anyone could spend a validator's budget by naming its hotkey."""
        if self.verifier is not None and "x-signature" in Headers(scope=scope):
            try:
                return f"hotkey:{checked_signature(scope, self.verifier)[0]}"
            except Unauthenticated:
                pass  # the route refuses it (401); until then it is the address's
        peer = scope.get("client")
        return f"address:{peer[0] if peer else 'unknown'}"

    def _signed_write(self, scope: Scope, state: RateState) -> tuple[str, str] | None:
        """(hotkey, action) of a signed write whose route takes its charge from here, unless this
        process knows its nonce spent: a replay is refused (401) without spending the write budget."""
        if self.write_of is None or self.verifier is None or state.kind != "hotkey":
            return None
        action = self.write_of(scope)
        if action is None:
            return None
        hotkey, nonce = checked_signature(scope, self.verifier)  # the verdict ``client`` kept
        return None if self.verifier.nonces.spent_here(hotkey, nonce) else (hotkey, action)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Signed artifact URLs are capabilities handed out by rate-limited calls; a validator
        # uploads a log per problem, which would otherwise exhaust its budget mid-run.
        if scope["type"] != "http" or scope["path"].startswith("/artifacts/"):
            await self.app(scope, receive, send)
            return
        state = RateState(self.client(scope), None)
        edge = EdgeRequest.of(scope)
        if self.cost_of is not None:
            cost, receive = await self.cost_of(scope, receive)
            if cost is not None:
                state.points = self.limits.points(cost)
        versions = self.versions
        if versions is not None and versions.shared and self.reads_versions and self.reads_versions(scope):
            state.charge, read = await self.limits.charge_client_reading(
                state.client, state.points, versions.keys
            )
            edge.versions = versions.snapshot_from(read)
        elif (action := self._signed_write(scope, state)) is not None:
            charged = await self.limits.charge_client_and_write(state.client, state.points, *action)
            state.charge, edge.write = charged.client, charged.write
        else:
            state.charge = await self.limits.charge_client(state.client, state.points)
        if state.charge is not None and not state.charge.allowed and state.points > 1:
            # Over the budget by the rest of its points: as when the gate charged them, the request's
            # first point is spent (unless that one is over too), and the refusal names its cost.
            first = await self.limits.charge_client(state.client)
            if first is not None:
                state.charge = replace(first, cost=state.points, allowed=False) if first.allowed else first
        edge.rate = state
        charge = state.charge
        if charge is not None and not charge.allowed:
            if scope["path"] == GRAPHQL_PATH or scope["path"].startswith(GRAPHQL_PATH + "/"):
                status, headers, body = graphql_refusal(state, charge)
                await reply(send, body, status, headers)
                return
            exc = RateLimitExceeded(refusal_message(state, charge), remaining_seconds=charge.retry_after)
            response = JSONResponse(exc.to_body(), status_code=exc.status, headers=rate_headers(charge))
            await response(scope, receive, send)  # the flat REST body
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and state.charge is not None:
                _add_rate_headers(message, state.charge)
            await send(message)

        await self.app(scope, receive, with_headers)


_RATE_NAMES = frozenset(
    {b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset", b"retry-after"}
)


def _add_rate_headers(start: Message, charge: Charge) -> None:
    """The ``X-RateLimit-*`` headers (and ``Retry-After`` over the budget) on an answer's start, in
    place. Appended as raw pairs when the answer has none of them (nearly every answer: a few
    microseconds, where ``MutableHeaders`` took about ten times that); set over them otherwise."""
    raw = start.get("headers") or []
    if not any(name in _RATE_NAMES for name, _ in raw):
        ours = [
            (b"x-ratelimit-limit", str(charge.limit).encode()),
            (b"x-ratelimit-remaining", str(charge.remaining).encode()),
            (b"x-ratelimit-reset", str(charge.reset).encode()),
        ]
        if not charge.allowed:
            ours.append((b"retry-after", str(charge.retry_after).encode()))
        start["headers"] = [*raw, *ours]  # a new list, as MutableHeaders makes: the old may be shared
        return
    headers = MutableHeaders(scope=start)
    for name, value in rate_headers(charge).items():
        headers[name] = value
