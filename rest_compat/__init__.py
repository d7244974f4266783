"""The documented /v1 REST paths of the ORO backend, as the official client oro-sdk 7.0.2 speaks
them: thin routers over the same domain services the graph uses, with the contract's error bodies
and status codes, request signing and rate limits."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from oro_graph.responsecache import ResponseCache
from oro_graph.runtime import Runtime
from rest_compat import errors, miner, openapi, public, races, unserved, validator
from rest_compat.cache import TTL, CachedPublicReads
from rest_compat.ratelimit import RateLimitMiddleware
from rest_compat.sizelimit import RequestSizeLimit


def _operation_id(route: APIRoute) -> str:
    return route.name  # the client's own operation names: get_leaderboard, claim_work, ...


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the /v1 routers, the error handler, the cache of hot public reads, the rate limits and
    the size caps to ``app``."""
    limits = runtime.rate_limits
    if limits is None:
        raise ValueError("the runtime has no rate limits: build it with Runtime.build")
    app.state.runtime = runtime
    app.state.rate_limits = limits
    settings = runtime.settings
    # A local data version sees only this process's writes: cache only when it is the only server.
    if settings.response_cache and (runtime.data_version.shared or settings.workers == 1):
        # Inside the rate limit: an answer from the cache still counts against the caller's budget.
        app.add_middleware(CachedPublicReads, cache=ResponseCache(runtime.data_version, ttl=TTL))
    app.add_middleware(RateLimitMiddleware, limits=limits, verifier=runtime.verifier)
    app.add_middleware(RequestSizeLimit, max_agent_bytes=runtime.settings.max_agent_bytes)  # outermost
    errors.install(app)
    openapi.install(app)
    for router in (public.router, races.router, miner.router, races.miner_router, validator.router):
        app.include_router(router, generate_unique_id_function=_operation_id)
    unserved.install(app, operation_id=_operation_id)
