"""The per-request context: the runtime, fresh loaders, a request id and a lazily verified signer."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping

import strawberry
from starlette.requests import HTTPConnection
from starlette.types import Scope
from strawberry.fastapi import BaseContext

from oro_graph.edge import request as edge_request
from oro_graph.graphql.dataloaders import Loaders
from oro_graph.models import Role
from oro_graph.runtime import Runtime
from oro_graph.services import registry
from oro_graph.threads import to_thread

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # it goes into log lines: nothing else is taken


class Context(BaseContext):
    """What every resolver gets as ``info.context``. Signatures are checked only when a field needs one."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        headers: Mapping[str, str],
        request_id: str | None = None,
        scope: Scope | None = None,
    ) -> None:
        """``scope``: an HTTP request's, whose signature the edge checked already (not a websocket's,
        whose signature headers come later, in ``connection_init``)."""
        super().__init__()
        self.runtime = runtime
        self.headers = headers
        self.http_scope = scope
        self.request_id = request_id or uuid.uuid4().hex
        self.loaders = Loaders(runtime.db)
        self._signer: asyncio.Future[str] | None = None
        # Versions this request's signer may see before their release (services.agents.discloses):
        # its own new version (submitAgent) and the one whose run it holds (claimWork).
        self.own_versions: set[uuid.UUID] = set()
        self.held_versions: set[uuid.UUID] = set()
        # Runs whose scores this request's signer sees while their race's are embargoed
        # (services.races.run_scores_disclosed): the run its own lease mutation answers about.
        self.held_runs: set[uuid.UUID] = set()
        self.resume_after: str | None = None  # an SSE client's Last-Event-ID (a log cursor)
        self.event_cursor: str | None = None  # the log cursor of the event a subscription just yielded

    async def signer(self) -> str:
        """The hotkey that signed this request (verified once: the nonce may be claimed only once)."""
        if self._signer is None:
            self._signer = asyncio.ensure_future(self._verified())
        return await self._signer

    async def _verified(self) -> str:
        verifier = self.runtime.verifier
        if self.http_scope is None:  # a websocket's: on a worker thread, as SR25519 verification is CPU work
            return await to_thread(verifier.verify, self.headers)
        hotkey, nonce = edge_request.checked_signature(self.http_scope, verifier)  # the edge's verdict
        await to_thread(verifier.spend, hotkey, nonce)  # the nonce store may be the database
        return hotkey

    async def signed_write(self, write: str) -> str:
        """The signer, charged for a ``write`` whose service checks the signer's role itself, in the
        transaction of the work (claim, heartbeat, progress, complete: ``services.evaluations``)."""
        hotkey = await self.signer()
        if self.runtime.rate_limits is not None:
            await self.runtime.rate_limits.charge_write(hotkey, write)
        return hotkey

    async def require(self, role: Role, *, write: str | None = None) -> str:
        """The signer, if registered with ``role`` and not banned (else FORBIDDEN); for a ``write`` (one
        of ``ratelimit.WRITES``), charged to the hotkey's budget for it (else RATE_LIMIT_EXCEEDED)."""
        hotkey = await self.signer()
        await self.runtime.db.run(registry.require_role, hotkey, role)
        if write is not None and self.runtime.rate_limits is not None:
            await self.runtime.rate_limits.charge_write(hotkey, write)
        return hotkey


Info = strawberry.Info[Context, None]


def build_context(runtime: Runtime, connection: HTTPConnection) -> Context:
    given = connection.headers.get(REQUEST_ID_HEADER, "")
    context = Context(
        runtime,
        headers=connection.headers,
        request_id=given if _SAFE_REQUEST_ID.match(given) else None,
        scope=connection.scope if connection.scope["type"] == "http" else None,
    )
    context.request = connection  # type: ignore[assignment]
    return context


def context_getter(runtime: Runtime) -> Callable[[HTTPConnection], Awaitable[Context]]:
    """A FastAPI dependency building the context of one /graphql request or websocket."""

    async def get_context(connection: HTTPConnection) -> Context:
        return build_context(runtime, connection)

    return get_context
