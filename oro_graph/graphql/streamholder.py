"""Single-connection mode's streams held by this process: the operations sent to them (from any
process, through ``services.eventstreams``) are run here and written to the held GET (see ``stream``)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Scope

from oro_graph.graphql.sseprotocol import Operation, run_operation, sse_frame
from oro_graph.runtime import Runtime
from oro_graph.services import eventstreams

log = logging.getLogger("oro_graph.graphql.stream")
STREAM_LEASE_SECONDS = 60.0  # an open stream's reservation, renewed by its holder every third of it
POLL_SECONDS = 1.0  # the holder looks for operations at least this often, woken or not
# Request headers an operation takes to the process that runs it (the signature's among them).
FORWARDED_HEADERS = ("x-hotkey", "x-timestamp", "x-nonce", "x-signature", "x-request-id", "user-agent")


@dataclass
class HeldStream:
    """A single-connection stream this process holds (its GET is open here)."""

    token: str
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    operations: dict[str, asyncio.Task[None]] = field(default_factory=dict)


def forwarded(scope: Scope, method: str, operation: Operation) -> dict[str, Any]:
    """What the holder needs to run an operation as if it had received the request itself."""
    headers = Headers(scope=scope)
    client = scope.get("client")
    return {
        "method": method,
        "headers": [[name, headers[name]] for name in FORWARDED_HEADERS if name in headers],
        "client": list(client) if client else None,
        "query": operation.query,
        "variables": operation.variables,
        "operationName": operation.operation_name,
        "extensions": operation.extensions,
    }


def _request_of(forwarded: dict[str, Any]) -> Request:
    client = forwarded.get("client")
    return Request(
        {
            "type": "http",
            "method": forwarded["method"],
            "scheme": "http",
            "path": "/graphql",
            "root_path": "",
            "query_string": b"",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in forwarded["headers"]],
            "client": tuple(client) if client else None,
        }
    )


class StreamHolder:
    """This process's open single-connection streams, and the loop that brings them their operations."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.held: dict[str, HeldStream] = {}
        self._wake: asyncio.Event | None = None
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def hold(self, token: str) -> HeldStream:
        stream = self.held[token] = HeldStream(token)
        if self._poller is None or self._poller.done():
            self._wake = asyncio.Event()
            self._poller = asyncio.create_task(self._poll())
        return stream

    def wake(self) -> None:
        """Something was sent to a stream from this process: look now."""
        if self._wake is not None:
            self._wake.set()

    def release(self, stream: HeldStream) -> None:
        """The stream's client went away: its operations end with it, and its reservation goes."""
        if self.held.get(stream.token) is stream:
            del self.held[stream.token]
        for task in stream.operations.values():
            task.cancel()
        self._spawn(self.runtime.db.run(eventstreams.close, stream.token))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll(self) -> None:
        renew_at = 0.0
        while self.held:
            assert self._wake is not None
            self._wake.clear()
            now = time.time()
            renew = now + STREAM_LEASE_SECONDS if now >= renew_at else None
            tokens = list(self.held)
            try:
                # A read first: most looks find nothing, and a write transaction each time would
                # queue behind every writer on SQLite.
                if renew is None and not await self.runtime.db.run(eventstreams.waiting, tokens):
                    messages = []
                else:
                    messages = await self.runtime.db.run(eventstreams.take, tokens, renew_until=renew)
            except Exception:  # the database is away: try again on the next round
                log.warning("could not read the event streams' operations", exc_info=True)
                messages = []
            else:
                if renew is not None:
                    renew_at = now + STREAM_LEASE_SECONDS / 3
            for token, message in messages:
                stream = self.held.get(token)
                if stream is not None:
                    self._dispatch(stream, message)
            await self._sleep()

    async def _sleep(self) -> None:
        assert self._wake is not None
        local = asyncio.ensure_future(self._wake.wait())
        remote = asyncio.ensure_future(self.runtime.notifier.wait(POLL_SECONDS))
        try:
            await asyncio.wait({local, remote}, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            local.cancel()
            remote.cancel()

    def _dispatch(self, stream: HeldStream, message: dict[str, Any]) -> None:
        if "stop" in message:
            task = stream.operations.pop(message["stop"], None)
            if task is not None:
                task.cancel()
            stream.queue.put_nowait(sse_frame("complete", {"id": message["stop"]}))
            return
        operation_id, forwarded = message["run"], message["request"]
        operation = Operation(
            forwarded["query"], forwarded["variables"], forwarded["operationName"], forwarded["extensions"]
        )
        stream.operations[operation_id] = asyncio.create_task(
            self._run(
                stream, operation_id, _request_of(forwarded), operation, via_get=forwarded["method"] == "GET"
            )
        )

    async def _run(
        self, stream: HeldStream, operation_id: str, request: Request, operation: Operation, *, via_get: bool
    ) -> None:
        try:
            async for payload, _ in run_operation(
                self.runtime, request, operation, resume=None, via_get=via_get
            ):
                stream.queue.put_nowait(sse_frame("next", {"id": operation_id, "payload": payload}))
            stream.queue.put_nowait(sse_frame("complete", {"id": operation_id}))
        finally:
            if stream.operations.get(operation_id) is asyncio.current_task():
                del stream.operations[operation_id]
                self._spawn(self.runtime.db.run(eventstreams.finish, stream.token, operation_id))
