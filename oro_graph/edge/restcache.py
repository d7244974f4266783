"""The hot public reads (leaderboard, top agent, suites, a version's runs and problems) answered from
a cache keyed by what they read.

Frontends poll these paths; between two writes to the tables an answer read, every poll gets the
same bytes, so only the first one after such a write runs the service (oro_graph.edge.responsecache). A
write to one of them (through either API, any server process sharing Redis) invalidates the answer;
a write elsewhere (a heartbeat) does not. Entries live at most ``TTL`` seconds, which bounds
what the version cannot see: the leaderboard's count of agents submitted in the last 24 hours and a
code-release delay running out are functions of the clock, not of a write.
"""

from __future__ import annotations

import hashlib
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.edge.responsecache import ResponseCache

TTL = 30.0
CACHED_PATHS = re.compile(
    r"^/v1/public/(leaderboard|top|suites/current|suites/[0-9]{1,18}/problems"
    r"|agent-versions/[0-9a-fA-F-]{32,36}/(runs|problems))$"  # a version's page: its runs, its matrix
)


class CachedPublicReads:
    """ASGI middleware for the GET paths in ``CACHED_PATHS``; everything else passes through."""

    def __init__(self, app: ASGIApp, cache: ResponseCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not CACHED_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        query = "&".join(sorted(scope.get("query_string", b"").decode("latin-1").split("&")))
        key = hashlib.sha256(f"rest\0{scope['path']}\0{query}".encode()).hexdigest()
        await self.cache.answer(self.app, scope, receive, send, key, lambda _: True)
