"""ASGI assembly: one FastAPI app serving /health, /graphql, the /v1 REST paths and artifacts."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from oro_graph import __version__, edge, web
from oro_graph.errors import FileTooLarge
from oro_graph.graphql import install as install_graphql
from oro_graph.graphql.schema import schema
from oro_graph.graphql.sqlcompile.fastpath import CompiledAnswers
from oro_graph.graphql.stream import GraphQLSSE
from oro_graph.health import deep_check
from oro_graph.migrations import upgrade
from oro_graph.observability import mark_process_dead
from oro_graph.runtime import Runtime
from oro_graph.scrape import install_metrics
from oro_graph.services import evaluations, events, races
from oro_graph.settings import Settings, load_settings
from oro_graph.storage import LocalStorage
from rest_compat import install as install_rest

log = logging.getLogger("oro_graph")


async def _drive_races(runtime: Runtime) -> None:
    """The race scheduler: every process ticks, the one holding the database lease acts."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    while True:
        try:
            report = await runtime.db.run(races.tick, settings=runtime.settings, holder=holder)
            for what in ("opened", "closed", "completed"):
                if getattr(report, what) is not None:
                    log.info("race scheduler: race %s %s", getattr(report, what), what)
        except Exception:  # keep driving; the next tick retries
            log.exception("race scheduler tick failed")
        await asyncio.sleep(runtime.settings.race_scheduler_seconds)


async def _sweep_leases(runtime: Runtime) -> None:
    """Periodically mark runs whose lease passed as STALE (claims also sweep, this covers quiet times)."""
    while True:
        await asyncio.sleep(runtime.settings.lease_sweep_seconds)
        try:
            report = await runtime.db.run(evaluations.expire_leases)
            if report.expired:
                log.info("lease sweep: %d run(s) marked STALE", len(report.expired))
        except Exception:  # keep sweeping; the next tick retries
            log.exception("lease sweep failed")


async def _prune_events(runtime: Runtime) -> None:
    """Keep the event log to its retention (every process offers; the one holding the lease acts),
    a batch per transaction until a batch comes back short."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    while True:
        await asyncio.sleep(events.PRUNE_SECONDS)
        try:
            while (
                report := await runtime.db.run(events.prune, settings=runtime.settings, holder=holder)
            ).full:
                await asyncio.sleep(0)  # let requests in between batches
            if report.heartbeats or report.run_events:
                log.info(
                    "event retention: %d heartbeat(s), %d other run event(s) pruned",
                    report.heartbeats,
                    report.run_events,
                )
        except Exception:  # keep pruning; the next round retries
            log.exception("event retention failed")


async def _probe_redis(runtime: Runtime) -> None:
    """While Redis is unreachable, try it again every pause even if no request does, so the
    process returns to Redis (and /health says so) as soon as it is back."""
    link = runtime.redis_link
    assert link is not None
    while True:
        await asyncio.sleep(runtime.settings.redis_retry_seconds)
        if link.breaker.is_open:
            await run_in_threadpool(link.ping)


def create_app(
    settings: Settings | None = None, *, runtime: Runtime | None = None, migrate: bool = True
) -> FastAPI:
    settings = settings or (runtime.settings if runtime else load_settings())
    runtime = runtime or Runtime.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await run_in_threadpool(upgrade, settings.database_url)
        await runtime.notifier.start(runtime.db, redis_url=settings.redis_url, link=runtime.redis_link)
        if runtime.rate_limits is not None:
            runtime.rate_limits.open_loop()  # charges from this loop, not a worker thread each
        tasks = [asyncio.create_task(_sweep_leases(runtime)), asyncio.create_task(_prune_events(runtime))]
        if runtime.redis_link is not None:
            tasks.append(asyncio.create_task(_probe_redis(runtime)))
        if settings.race_scheduler is not False:
            tasks.append(asyncio.create_task(_drive_races(runtime)))
        try:
            yield
        finally:
            await runtime.notifier.stop()
            if runtime.rate_limits is not None:
                await runtime.rate_limits.close_loop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            runtime.close()
            mark_process_dead()

    app = FastAPI(
        title="oro-graph",
        version=__version__,
        summary="GraphQL-first backend for the ORO subnet (SN15), with the documented /v1 REST paths.",
        lifespan=lifespan,
        docs_url=None,  # oro_graph.web serves /docs and /redoc with assets of its own, not a CDN's
        redoc_url=None,
    )
    app.state.runtime = runtime

    @app.get(
        "/health",
        tags=["public"],
        summary="Liveness, database reachability and Redis state",
        description=(
            "`database`: `ok` or `unreachable` (then 503). `redis`: `ok`; `degraded` while Redis is "
            "unreachable (the server keeps serving: rate-limit counters are kept in the database and "
            "the response caches pause until Redis answers again); `off` without `ORO_REDIS_URL`. "
            "Redis is not asked here: the state is what this process's last use of it found."
        ),
        responses={
            503: {"description": "The database is unreachable: `{status: degraded, database: unreachable}`"}
        },
    )
    async def health() -> JSONResponse:
        def ping() -> None:
            with runtime.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        redis_state = runtime.redis_state()
        try:
            await run_in_threadpool(ping)
        except Exception:
            body = {
                "status": "degraded",
                "database": "unreachable",
                "redis": redis_state,
                "version": __version__,
            }
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "redis": redis_state, "version": __version__})

    @app.get("/health/deep", tags=["public"], summary="Every dependency checked; 503 naming what failed")
    async def deep_health_check() -> JSONResponse:
        """Database, Redis, the race scheduler and storage, each checked for real."""
        checked = await run_in_threadpool(deep_check, runtime)
        headers = {"Retry-After": "10"} if checked.failed else {}
        body = checked.body(__version__)
        if checked.failed:
            body["detail"] = "failed: " + ", ".join(checked.failed)
        return JSONResponse(body, status_code=503 if checked.failed else 200, headers=headers)

    install_metrics(app, runtime)
    _mount_artifacts(app, runtime)
    install_graphql(app, runtime)
    install_rest(app, runtime)
    web.install(app, runtime)
    # Every layer in front of the routers, in order; the gate judges documents against the graph's schema.
    edge.install(app, runtime, schema=schema._schema, streams=GraphQLSSE, compiled=CompiledAnswers)
    return app


def _mount_artifacts(app: FastAPI, runtime: Runtime) -> None:
    storage = runtime.storage
    if not isinstance(storage, LocalStorage):
        return

    @app.get("/artifacts/{key:path}", include_in_schema=False)
    async def download(
        key: str, expires: Annotated[int, Query()], signature: Annotated[str, Query(max_length=128)]
    ) -> Response:
        storage.verify("GET", key, expires, signature)
        data = await run_in_threadpool(storage.get, key)
        return Response(data, media_type="application/octet-stream")

    @app.put("/artifacts/{key:path}", include_in_schema=False)
    async def upload(
        request: Request,
        key: str,
        expires: Annotated[int, Query()],
        signature: Annotated[str, Query(max_length=128)],
        max_bytes: Annotated[int, Query(gt=0)],
    ) -> JSONResponse:
        storage.verify("PUT", key, expires, signature, max_bytes)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise FileTooLarge(f"upload exceeds the {max_bytes} bytes this URL was signed for")
            chunks.append(chunk)
        await run_in_threadpool(storage.put, key, b"".join(chunks))
        return JSONResponse({"key": key, "size": size})


def main_app() -> FastAPI:
    """Factory for ``uvicorn --factory oro_graph.app:main_app`` (what ``oro-graph serve`` runs)."""
    app = create_app(load_settings())
    # Everything built so far (modules, the schema, the runtime) lives as long as the server process:
    # keep it out of the garbage collector's full passes, which otherwise scan it all and paused
    # requests (p99 of a refused 1,500-token document: 107 ms before, 18 ms after).
    gc.collect()
    gc.freeze()
    return app
