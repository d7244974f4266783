"""Answers kept under the versions of what they read: the mechanism every response cache shares.

An answer is stored with the tables its execution read (``oro_graph.db.reads``) and their versions
as they stood *before* it began (``oro_graph.dataversion``), and served only while none of those
tables has changed since. So a write to a table an answer did not read (a heartbeat's event row,
lease and validator state, for a leaderboard) leaves it cached, and an answer computed while a
write lands is kept under the older versions: invalid at once, never stale.

With Redis the answers are shared by the server processes (each entry expires after the TTL), and a
miss computes once: in a process, later misses on the same key wait for the first (one future per
key); across processes the first takes a short Redis lock and the others poll for its answer for at
most ``WAIT_SECONDS``, then compute themselves. A miss costs two round trips to Redis besides the
versions: the lookup takes the lock in the same script when it finds no valid answer, and the
answer is stored as the lock is let go. A waiter takes another's answer only if it is still
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
# A miss's first round trip. KEYS: the answer, the claim. ARGV: token, claim ms, then the caller's
# versions (epoch, then table and version pairs). Returns {the stored answer if it is valid under
# them, else nil; 1 if the key was free and is now claimed for the token, else 0}. The check mirrors
# ``Snapshot.valid`` only to decide whether to claim: Python checks the answer again in any case.
LOOKUP = """
local raw = redis.call('GET', KEYS[1])
local function valid()
  local nl = string.find(raw, '\\n', 1, true)
  if not nl then return false end
  local ok, head = pcall(cjson.decode, string.sub(raw, 1, nl - 1))
  if not ok or type(head) ~= 'table' or head[1] ~= ARGV[3] or type(head[2]) ~= 'table' then
    return false
  end
  local now = {}
  for i = 4, #ARGV, 2 do now[ARGV[i]] = tonumber(ARGV[i + 1]) end
  for _, dep in ipairs(head[2]) do
    if type(dep) ~= 'table' or (now[dep[1]] or 0) ~= dep[2] then return false end
  end
  return true
end
if raw and valid() then return {raw, 0} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, 1} end
return {false, 0}
"""
# A computed answer stored and the claim let go (if still ours) in one round trip. KEYS: the answer,
# the claim. ARGV: the entry, its ms to live, the token.
STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
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
        self._lookup_script = link.client.register_script(LOOKUP) if link is not None else None
        self._store = link.client.register_script(STORE) if link is not None else None
        self.hits = self.misses = 0
        self.executions = 0  # answers computed here (a hit, or another's answer, is not one)

    # -- the stores ------------------------------------------------------------------------------

    def _shared_key(self, key: str, kind: str = "answer") -> str:
        return f"{dataversion.KEY}:{kind}:{self.name}:{key}"  # beside the versions it is keyed on

    def get(self, key: str, snapshot: Snapshot) -> Entry | None:
        entry = self._local(key, snapshot)
        if entry is not None:
            return entry
        entry = self._fetch(key, snapshot)
        if entry is not None:
            self._keep(key, entry)
        return entry

    def _local(self, key: str, snapshot: Snapshot) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires >= time.monotonic() and snapshot.valid(entry.deps):
            self._entries.move_to_end(key)
            return entry
        return None

    def _lookup(self, key: str, snapshot: Snapshot, token: str) -> tuple[Entry | None, bool | None]:
        """``get``, claiming ``key`` for ``token`` in the same round trip to Redis when no valid
        answer is stored and no one else holds the claim: the answer (or None), and whether this
        process computes it (None when Redis did not answer: compute anyway, but keep nothing,
        since writes meanwhile may have gone unrecorded)."""
        entry = self._local(key, snapshot)
        link, script = self.version.link, self._lookup_script
        if entry is not None or link is None or script is None:
            return entry, entry is None
        versions = [part for pair in snapshot.versions.items() for part in pair]
        args = [token, int(LOCK_SECONDS * 1000), snapshot.epoch, *versions]
        keys = [self._shared_key(key), self._shared_key(key, "computing")]
        try:
            raw, claimed = link.run(
                "the response cache", lambda client: script(keys=keys, args=args, client=client)
            )
        except RedisUnavailable:
            return None, None
        entry = self._decoded(raw, snapshot)
        if entry is not None:
            self._keep(key, entry)
        return entry, bool(claimed)

    def _fetch(self, key: str, snapshot: Snapshot) -> Entry | None:
        link = self.version.link
        if link is None:
            return None
        try:
            raw = link.run("the response cache", lambda client: client.get(self._shared_key(key)))
        except RedisUnavailable:
            return None
        return self._decoded(raw, snapshot)

    @staticmethod
    def _decoded(raw: bytes | None, snapshot: Snapshot) -> Entry | None:
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

    def put(self, key: str, entry: Entry, token: str | None = None) -> None:
        """Keep ``entry`` here and in Redis; with ``token``, let go of the claim on ``key`` in the
        same round trip (if the claim is still the token's)."""
        if len(entry.body) > MAX_ENTRY_BYTES:
            if token is not None:
                self._unclaim(key, token)
            return
        self._keep(key, entry)
        link, store = self.version.link, self._store
        if link is None or store is None:
            return
        ttl = int(self.ttl * 1000)
        try:
            if token is None:
                link.run(
                    "the response cache",
                    lambda client: client.set(self._shared_key(key), entry.encode(), px=ttl),
                )
            else:
                keys = [self._shared_key(key), self._shared_key(key, "computing")]
                link.run(
                    "the response cache",
                    lambda client: store(keys=keys, args=[entry.encode(), ttl, token], client=client),
                )
        except RedisUnavailable:
            pass  # a claim lapses by itself

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

    async def _another_process(self, key: str, token: str) -> tuple[Entry | None, bool | None]:
        """Wait (bounded) for the process that claimed ``key`` to store its answer: the answer, or
        None and whether the claim is now ``token``'s (it finished without a storable answer, or
        gave up)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            snapshot = self.version.snapshot()
            if snapshot is None:  # Redis went away: compute, keep nothing
                return None, None
            entry, claimed = self._lookup(key, snapshot, token)
            if entry is not None or claimed is not False:
                return entry, claimed
        return None, False

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
        token = secrets.token_hex(8)
        claimed: bool | None = False
        if key not in self._flights:  # this request computes it on a miss: claim it in the lookup
            entry, claimed = self._lookup(key, snapshot, token)
        else:
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
            if claimed:  # the script's check and ours disagreed (an entry expiring just now)
                self._unclaim(key, token)
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
        computed = None
        released = False
        try:
            if claimed is None:
                snapshot = None  # Redis did not answer: compute, keep nothing
            elif claimed:
                pass  # the lookup saw no valid answer and claimed the key in one step: nothing to look again
            elif self._claim(key, token):
                # The process that held the claim may have stored its answer and let go just now.
                snapshot = self.version.snapshot()
                computed = self.get(key, snapshot) if snapshot is not None else None
            else:
                computed, claimed = await self._another_process(key, token)
                if claimed is None:
                    snapshot = None
                elif computed is None and not claimed:
                    self._claim(key, token)
            if computed is not None:
                self.hits += 1  # counted twice (a miss, then a hit): it was both
                if on_hit is not None:
                    on_hit()
                await send_cached(send, computed.body)
                return
            computed = await self._compute(app, scope, receive, send, key, storable, snapshot, token)
            released = computed is not None  # stored with the claim let go, in one round trip
        finally:
            if not released:
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
        token: str | None = None,
    ) -> Entry | None:
        """Run the app, keeping its answer under ``snapshot``: versions read before any statement
        runs (the lookup's, not read again: a write since then only makes the entry invalid at once).
        With ``token``, the claim it holds on ``key`` is let go as the answer is stored."""
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
        reading = db.reads.set(tables)
        try:
            self.executions += 1
            await app(scope, receive, capture)
        finally:
            db.reads.reset(reading)
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
        self.put(key, entry, token)
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
