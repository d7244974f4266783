"""The per-client points budget as ASGI middleware, ahead of routing (the budgets themselves are
``oro_graph.ratelimit.RateLimits``, shared with the graph).

Every request (but the signed ``/artifacts/`` URLs) is charged one point to its client before
anything else runs: the hotkey of a fresh signature, else the address. The graph's gate charges a
costly GraphQL request the rest of its points once it knows the cost (``RateState``). Every answer
carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix seconds);
a refusal is a 429 with ``Retry-After``: the flat REST body on /v1 and elsewhere, a GraphQL answer
(``errors[0].extensions.code`` RATE_LIMITED) on /graphql.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oro_graph.auth import SignatureVerifier
from oro_graph.errors import RateLimitExceeded
from oro_graph.ratelimit import (
    STATE_KEY,
    RateLimits,
    RateState,
    graphql_refusal,
    rate_headers,
    refusal_message,
)
from rest_compat.errors import render

__all__ = ["RateLimitMiddleware", "RateLimits"]

GRAPHQL_PATH = "/graphql"


class RateLimitMiddleware:
    """The per-client budget, ahead of routing so it covers every path (also /health, /graphql)
    except the signed /artifacts/ URLs."""

    def __init__(self, app: ASGIApp, limits: RateLimits, verifier: SignatureVerifier | None = None) -> None:
        self.app = app
        self.limits = limits
        self.verifier = verifier

    def client(self, scope: Scope) -> str:
        """The hotkey of a fresh signature (checked, not the nonce: the route does that), else the address.

        Keyed on a header alone, anyone could spend a validator's budget by naming its hotkey."""
        headers = Headers(scope=scope)
        if self.verifier is not None and "x-signature" in headers:
            hotkey = self.verifier.signed_by(headers)
            if hotkey is not None:
                return f"hotkey:{hotkey}"
        peer = scope.get("client")
        return f"address:{peer[0] if peer else 'unknown'}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Signed artifact URLs are capabilities handed out by rate-limited calls; a validator
        # uploads a log per problem, which would otherwise exhaust its budget mid-run.
        if scope["type"] != "http" or scope["path"].startswith("/artifacts/"):
            await self.app(scope, receive, send)
            return
        state = RateState(self.client(scope), None)
        state.charge = await self.limits.charge_client(state.client)
        scope[STATE_KEY] = state
        charge = state.charge
        if charge is not None and not charge.allowed:
            if scope["path"] == GRAPHQL_PATH or scope["path"].startswith(GRAPHQL_PATH + "/"):
                await _send(send, *graphql_refusal(state, charge))
                return
            exc = RateLimitExceeded(refusal_message(state, charge), remaining_seconds=charge.retry_after)
            response = render(exc, exc.status)
            response.headers.update(rate_headers(charge))
            await response(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and state.charge is not None:
                headers = MutableHeaders(scope=message)
                for name, value in rate_headers(state.charge).items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw: list[Any] = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
