"""Answers kept per data version: what the graph's and the REST layer's response caches share.

Every committed write changes the data version (oro_graph.dataversion), so an entry is never served
after the data it was computed from changed. Entries also expire after a TTL, which bounds
staleness from what the version cannot see: writes by a process without Redis, and answers that
depend on the clock (a count over the last 24 hours, a release delay running out).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph.dataversion import DataVersion
from oro_graph.observability import CACHE_LOOKUPS

MAX_ENTRIES = 2_000
MAX_ENTRY_BYTES = 4_000_000


class ResponseCache:
    def __init__(self, version: DataVersion, *, ttl: float, name: str = "rest") -> None:
        self.version = version
        self._hit = CACHE_LOOKUPS.labels(name, "hit")
        self._miss = CACHE_LOOKUPS.labels(name, "miss")
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, body: bytes) -> None:
        if len(body) > MAX_ENTRY_BYTES:
            return
        self._entries[key] = (time.monotonic() + self.ttl, body)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    async def answer(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        version: str,
        storable: Callable[[bytes], bool],
        on_hit: Callable[[], None] | None = None,
    ) -> None:
        """Answer from the cache if ``key`` is there (calling ``on_hit``). Otherwise run ``app`` (marking
        its answer ``x-cache: miss``) and keep a 200 JSON answer that ``storable`` accepts, unless
        something was written while it was computed."""
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            self._hit.inc()
            if on_hit is not None:
                on_hit()
            await send_cached(send, cached)
            return
        self.misses += 1
        self._miss.inc()
        captured: dict[str, Any] = {"status": None, "headers": [], "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", [])) + [(b"x-cache", b"miss")]
                message = {**message, "headers": captured["headers"]}
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        await app(scope, receive, capture)
        answer = b"".join(captured["body"])
        content_type = dict(captured["headers"]).get(b"content-type", b"")
        if (
            captured["status"] == 200
            and content_type.startswith(b"application/json")
            and storable(answer)
            and self.version.current() == version  # nothing was written meanwhile
        ):
            self.put(key, answer)


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
