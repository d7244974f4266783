"""The documented /v1 REST paths of the ORO backend, as the official client oro-sdk 7.0.2 speaks
them: thin routers over the same domain services the graph uses, with the contract's error bodies
and status codes, request signing and rate limits."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from oro_graph.runtime import Runtime
from rest_compat import errors, miner, openapi, public, races, unserved, validator


def _operation_id(route: APIRoute) -> str:
    return route.name  # the client's own operation names: get_leaderboard, claim_work, ...


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the /v1 routers and their error handler to ``app`` (the rate limits, size caps and the
    cache of hot public reads in front of them are the edge's: ``oro_graph.edge.install``)."""
    limits = runtime.rate_limits
    if limits is None:
        raise ValueError("the runtime has no rate limits: build it with Runtime.build")
    app.state.runtime = runtime
    app.state.rate_limits = limits
    errors.install(app)
    openapi.install(app)
    for router in (public.router, races.router, miner.router, races.miner_router, validator.router):
        app.include_router(router, generate_unique_id_function=_operation_id)
    unserved.install(app, operation_id=_operation_id)
