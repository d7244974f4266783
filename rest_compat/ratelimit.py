"""The global per-address budget as ASGI middleware, ahead of routing (the budgets themselves are
``oro_graph.ratelimit.RateLimits``, shared with the graph)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from oro_graph.errors import RateLimitExceeded
from oro_graph.ratelimit import RateLimits
from rest_compat.errors import render

__all__ = ["RateLimitMiddleware", "RateLimits"]


class RateLimitMiddleware:
    """The global per-address limit, ahead of routing so it covers every path (also /health, /graphql)
    except the signed /artifacts/ URLs."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Signed artifact URLs are capabilities handed out by rate-limited calls; a validator
        # uploads a log per problem, which would otherwise exhaust its budget mid-run.
        if scope["type"] == "http" and not scope["path"].startswith("/artifacts/"):
            client = scope.get("client")
            wait = await self.limits.hit_client(client[0] if client else "unknown")
            if wait is not None:
                exc = RateLimitExceeded(
                    f"more than {self.limits.per_client.amount} requests per minute from this address; "
                    f"retry in {wait} s",
                    remaining_seconds=wait,
                )
                await render(exc, exc.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
