"""The graph: a Strawberry GraphQL API at /graphql over the same services as the REST paths."""

from __future__ import annotations

from fastapi import FastAPI

from oro_graph.runtime import Runtime


def install(app: FastAPI, runtime: Runtime) -> None:
    """Mount /graphql (GraphiQL on GET from a browser, multipart uploads on POST) on ``app``."""
    from oro_graph.graphql.apq import PersistedQueries, QueryStore
    from oro_graph.graphql.cache import CachedResponses, QueryCache
    from oro_graph.graphql.context import context_getter
    from oro_graph.graphql.gate import LimitGate
    from oro_graph.graphql.limits import LIMITS
    from oro_graph.graphql.router import Router
    from oro_graph.graphql.schema import schema
    from oro_graph.graphql.stream import GraphQLSSE, install_stream

    router = Router(
        schema,
        context_getter=context_getter(runtime),
        graphql_ide="graphiql",
        multipart_uploads_enabled=True,
    )
    # before the router, so /graphql/stream is not taken for /graphql
    install_stream(app, GraphQLSSE(router, runtime))
    app.include_router(router, prefix="/graphql", include_in_schema=False)
    settings = runtime.settings
    # A local data version sees only this process's writes: cache only when it is the only server.
    cacheable = settings.response_cache and not settings.graphql_debug
    if cacheable and (runtime.data_version.shared or settings.workers == 1):
        ttl = 300.0 if runtime.data_version.shared else 30.0
        app.add_middleware(CachedResponses, cache=QueryCache(runtime.data_version, ttl=ttl))
    # graphql-sse on /graphql itself: before the cache (an event stream is never answered from it),
    # after the gate and persisted queries (a stream's document is judged and expanded like any other).
    app.add_middleware(GraphQLSSE, runtime=runtime)
    # Added after the cache, so it runs before it: a document over a limit never reaches a parser.
    app.add_middleware(
        LimitGate,
        schema=schema._schema,
        debug=settings.graphql_debug,
        rate_limits=runtime.rate_limits,
        time_budget=settings.graphql_time_budget_seconds,
    )
    # Added last, so it runs first: the gate and the cache see the document a persisted hash stands for.
    app.add_middleware(PersistedQueries, store=QueryStore(runtime.redis_link))
    app.state.graphql_cors_origins = LIMITS.cors_origins  # applied by oro_graph.http.PathCORS
