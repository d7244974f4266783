"""Answers kept under the versions of what they read: the mechanism every response cache shares.

An answer is stored with the tables its execution read (``oro_graph.db.reads``) and their versions
as they stood *before* it began (``oro_graph.dataversion``), and served only while none of those
tables has changed since. So a write to a table an answer did not read (a heartbeat's event row,
lease and validator state, for a leaderboard) leaves it cached, and an answer computed while a
write lands is kept under the older versions: invalid at once, never stale.

With Redis the answers are shared by the server processes (each entry expires after the TTL), and a
miss computes once: in a process, later misses on the same key wait for the first (one future per
key); across processes the first takes a short Redis lock and the others poll for its answer for at
most ``WAIT_SECONDS``, then compute themselves. A waiter takes another's answer only if it is still
valid under versions read after the waiter arrived. Each process also keeps the answers it saw in a
bounded LRU (``MAX_ENTRIES`` answers, ``MAX_BYTES`` in all). Entries expire after a TTL in any
case, which bounds what the versions cannot see: writes by a process without Redis, and answers
that depend on the clock (a count over the last 24 hours, a release delay running out).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph import dataversion, db
from oro_graph.dataversion import DataVersion, Snapshot
from oro_graph.edge.request import EdgeRequest
from oro_graph.observability import CACHE_LOOKUPS
from oro_graph.redislink import RedisUnavailable

MAX_ENTRIES = 2_000
MAX_ENTRY_BYTES = 4_000_000
MAX_BYTES = 64_000_000  # the answers one process keeps, all together
WAIT_SECONDS = 2.0  # how long a miss waits for another request (here or elsewhere) computing its answer
POLL_SECONDS = 0.02
LOCK_SECONDS = 5.0  # a computing process's claim on a key lapses after this, should it die

Deps = tuple[str, tuple[tuple[str, int], ...]]

# Delete the lock only if it is still ours (it may have lapsed and been taken by another process).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Entry:
    deps: Deps
    body: bytes
    expires: float  # time.monotonic()

    def encode(self) -> bytes:
        epoch, versions = self.deps
        expires_at = time.time() + (self.expires - time.monotonic())  # the processes share a wall clock
        return json.dumps([epoch, versions, expires_at]).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        header, body = raw.split(b"\n", 1)
        epoch, versions, expires_at = json.loads(header)
        expires = time.monotonic() + (expires_at - time.time())
        return cls((epoch, tuple((t, int(v)) for t, v in versions)), body, expires)


class ResponseCache:
    def __init__(self, version: DataVersion, *, ttl: float, name: str = "rest") -> None:
        self.version = version
        self.name = name
        self._hit = CACHE_LOOKUPS.labels(name, "hit")
        self._miss = CACHE_LOOKUPS.labels(name, "miss")
        self.ttl = ttl
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._flights: dict[str, asyncio.Future[Entry | None]] = {}
        link = version.link
        self._release = link.client.register_script(RELEASE) if link is not None else None
        self.hits = self.misses = 0
        self.executions = 0  # answers computed here (a hit, or another's answer, is not one)

    # -- the stores ------------------------------------------------------------------------------

    def _shared_key(self, key: str, kind: str = "answer") -> str:
        return f"{dataversion.KEY}:{kind}:{self.name}:{key}"  # beside the versions it is keyed on

    def get(self, key: str, snapshot: Snapshot) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires >= time.monotonic() and snapshot.valid(entry.deps):
            self._entries.move_to_end(key)
            return entry
        entry = self._fetch(key, snapshot)
        if entry is not None:
            self._keep(key, entry)
        return entry

    def _fetch(self, key: str, snapshot: Snapshot) -> Entry | None:
        link = self.version.link
        if link is None:
            return None
        try:
            raw = link.run("the response cache", lambda client: client.get(self._shared_key(key)))
        except RedisUnavailable:
            return None
        if raw is None:
            return None
        try:
            entry = Entry.decode(raw)
        except (ValueError, TypeError):  # not an answer this version of the server stored
            return None
        return entry if entry.expires >= time.monotonic() and snapshot.valid(entry.deps) else None

    def _keep(self, key: str, entry: Entry) -> None:
        old = self._entries.pop(key, None)
        self._bytes += len(entry.body) - (len(old.body) if old else 0)
        self._entries[key] = entry
        while len(self._entries) > MAX_ENTRIES or self._bytes > MAX_BYTES:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.body)

    def put(self, key: str, entry: Entry) -> None:
        if len(entry.body) > MAX_ENTRY_BYTES:
            return
        self._keep(key, entry)
        link = self.version.link
        if link is not None:
            try:
                link.run(
                    "the response cache",
                    lambda client: client.set(self._shared_key(key), entry.encode(), px=int(self.ttl * 1000)),
                )
            except RedisUnavailable:
                pass

    # -- the cross-process claim on a key ---------------------------------------------------------

    def _claim(self, key: str, token: str) -> bool:
        """True when this process computes ``key`` (or Redis cannot say: then compute anyway)."""
        link = self.version.link
        if link is None:
            return True
        try:
            return bool(
                link.run(
                    "the response cache",
                    lambda client: client.set(
                        self._shared_key(key, "computing"), token, nx=True, px=int(LOCK_SECONDS * 1000)
                    ),
                )
            )
        except RedisUnavailable:
            return True

    def _claimed(self, key: str) -> bool:
        link = self.version.link
        if link is None:
            return False
        try:
            return bool(
                link.run("the response cache", lambda c: c.exists(self._shared_key(key, "computing")))
            )
        except RedisUnavailable:
            return False

    def _unclaim(self, key: str, token: str) -> None:
        link, release = self.version.link, self._release
        if link is None or release is None:
            return
        try:
            link.run(
                "the response cache",
                lambda client: release(
                    keys=[self._shared_key(key, "computing")], args=[token], client=client
                ),
            )
        except RedisUnavailable:
            pass  # it lapses by itself

    async def _another_process(self, key: str) -> Entry | None:
        """Wait (bounded) for the process that claimed ``key`` to store its answer."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            snapshot = self.version.snapshot()
            if snapshot is None:
                return None
            entry = self.get(key, snapshot)
            if entry is not None:
                return entry
            if not self._claimed(key):  # it finished without a storable answer, or gave up
                return None
        return None

    # -- answering -------------------------------------------------------------------------------

    async def answer(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        storable: Callable[[bytes], bool],
        on_hit: Callable[[], None] | None = None,
    ) -> None:
        """Answer from the cache if ``key`` has an answer valid now (calling ``on_hit``). Otherwise
        compute it once (see the module's docstring), marking the answer ``x-cache: miss``, and keep a
        200 JSON answer that ``storable`` accepts under the versions read before it was computed."""
        # The versions the rate limit read in its round trip to Redis, during this request: an
        # answer valid under them is what the data was while this request ran. Else ask now.
        request = EdgeRequest.get(scope)
        snapshot = None
        if request is not None and request.versions is not None:
            snapshot, request.versions = request.versions, None  # taken once: a miss reads them afresh
        if snapshot is None:
            snapshot = self.version.snapshot()
        if snapshot is None:  # the versions are unknowable (Redis down): never serve a possibly stale answer
            await app(scope, receive, send)
            return
        entry = self.get(key, snapshot)
        if entry is None and key in self._flights:
            try:
                computed = await asyncio.wait_for(asyncio.shield(self._flights[key]), WAIT_SECONDS)
            except TimeoutError:
                computed = None
            now = self.version.snapshot()
            if computed is not None and now is not None and now.valid(computed.deps):
                entry = computed
        if entry is not None:
            self.hits += 1
            self._hit.inc()
            if on_hit is not None:
                on_hit()
            await send_cached(send, entry.body)
            return
        self.misses += 1
        self._miss.inc()
        if key in self._flights:  # another request here is computing it again: do not wait twice
            await self._compute(app, scope, receive, send, key, storable, snapshot)
            return
        flight: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        token = secrets.token_hex(8)
        computed = None
        try:
            if self._claim(key, token):
                # The process that held the claim may have stored its answer and let go just now.
                snapshot = self.version.snapshot()
                computed = self.get(key, snapshot) if snapshot is not None else None
            else:
                computed = await self._another_process(key)
                if computed is None:
                    self._claim(key, token)
            if computed is not None:
                self.hits += 1  # counted twice (a miss, then a hit): it was both
                if on_hit is not None:
                    on_hit()
                await send_cached(send, computed.body)
                return
            computed = await self._compute(app, scope, receive, send, key, storable, snapshot)
        finally:
            self._unclaim(key, token)
            del self._flights[key]
            flight.set_result(computed)

    async def _compute(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        storable: Callable[[bytes], bool],
        snapshot: Snapshot | None,
    ) -> Entry | None:
        """Run the app, keeping its answer under ``snapshot``: versions read before any statement
        runs (the lookup's, not read again: a write since then only makes the entry invalid at once)."""
        captured: dict[str, Any] = {"status": None, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", [])) + [(b"x-cache", b"miss")]
                message = {**message, "headers": captured["headers"]}
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        tables: set[str] = set()
        token = db.reads.set(tables)
        try:
            self.executions += 1
            await app(scope, receive, capture)
        finally:
            db.reads.reset(token)
        answer = b"".join(captured["body"])
        content_type = dict(captured["headers"]).get(b"content-type", b"")
        if (
            snapshot is None
            or captured["status"] != 200
            or not content_type.startswith(b"application/json")
            or not storable(answer)
        ):
            return None
        entry = Entry(snapshot.of(tables), answer, time.monotonic() + self.ttl)
        self.put(key, entry)
        return entry


async def send_cached(send: Send, body: bytes) -> None:
    """Answer with a stored JSON body (marked ``x-cache: hit``)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-cache", b"hit"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
