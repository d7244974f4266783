"""Everything in front of the routers: size caps, rate limits, persisted queries, the graph's budget
gate, response caches and the HTTP habits every answer shares, installed in one place (``install``).

The modules: ``sizecap`` (header and body caps), ``ratelimit`` (the budgets and their middleware)
over ``ratestore`` (where counters live), ``apq`` (persisted queries), ``gate`` (the graph's
budgets before parsing) with ``limits`` (the rules, and the schema extension for other ways in),
``lexical``, ``expansion`` and ``cost`` (what the rules count), ``deadline`` (the time budget while
an operation runs), ``responsecache`` (answers kept under data versions) with ``restcache`` and
``graphcache`` (which answers each surface keeps), and ``request`` (what one request's layers
share: its body, read once, the client's charge and the gate's verdict), and ``capacity`` (graph
executions in a bounded line; signed writes on threads of their own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

if TYPE_CHECKING:
    from fastapi import FastAPI
    from graphql import GraphQLSchema

    from oro_graph.runtime import Runtime


def install(
    app: FastAPI,
    runtime: Runtime,
    *,
    schema: GraphQLSchema,
    streams: type[Any],
    compiled: type[Any] | None = None,
) -> None:
    """Install the layers every request passes, in order: the first listed sees a request first and
    its answer last. Nothing else adds middleware to the app.

    ``schema`` is the graph's (the gate judges documents against it), ``streams`` its graphql-sse
    middleware and ``compiled`` the layer answering compiled queries without the graph's view
    (``graphql.sqlcompile.fastpath``): the app passes them, so the edge never imports the adapters."""
    from oro_graph.edge.apq import PersistedQueries, QueryStore
    from oro_graph.edge.capacity import CapacityGate, WriteLane, lanes_for
    from oro_graph.edge.gate import LimitGate, Verdicts
    from oro_graph.edge.graphcache import CachedResponses, QueryCache
    from oro_graph.edge.ratelimit import RateLimitMiddleware, precharged_write
    from oro_graph.edge.responsecache import ResponseCache
    from oro_graph.edge.restcache import TTL, CachedPublicReads
    from oro_graph.edge.sizecap import RequestSizeLimit
    from oro_graph.http import Compression, ConditionalGet, PathCORS
    from oro_graph.observability import RequestObserver, install_tracing

    settings = runtime.settings
    if runtime.rate_limits is None:
        raise ValueError("the runtime has no rate limits: build it with Runtime.build")
    # A local data version sees only this process's writes: cache only when it is the only server.
    cacheable = settings.response_cache and (runtime.data_version.shared or settings.workers == 1)
    graph_ttl = 300.0 if runtime.data_version.shared else 30.0
    app.state.capacity = lanes = lanes_for(settings)
    verdicts = Verdicts()  # the gate's memory, which the rate limit prices known requests by
    layers: list[tuple[Any, dict[str, Any]] | None] = [
        # A signed write's blocking work runs on threads of its own from the start (edge.capacity).
        (WriteLane, {"lanes": lanes}),
        # Every answer (a 429 or a 413 too) is counted, logged and has a request id.
        (RequestObserver, {"router": app.router, "access_log": settings.log_format == "json"}),
        # Brotli or gzip, over what the tagging below saw uncompressed.
        (Compression, {}),
        # ETag and public Cache-Control on unsigned public GETs; 304 for a matching If-None-Match.
        (ConditionalGet, {"max_age": settings.http_max_age_seconds}),
        # Outside the caps and limits, so their refusals carry CORS headers too.
        (
            PathCORS,
            {"graph_origins": settings.graphql_cors_origins, "rest_origins": settings.rest_cors_origins},
        ),
        # Headers and bodies over the caps are refused before anything reads them.
        (RequestSizeLimit, {"max_agent_bytes": settings.max_agent_bytes}),
        # One point per request to its client; a 429 over the budget, before any work.
        # With the charge, for a request a cache may answer, the data versions it looks up under.
        (
            RateLimitMiddleware,
            {
                "limits": runtime.rate_limits,
                "verifier": runtime.verifier,
                "versions": runtime.data_version if cacheable else None,
                "reads_versions": _cache_may_answer(graph=not settings.graphql_debug),
                "cost_of": verdicts.cost_of,
                # The validator loop's writes: the hotkey's write budget too, in the same round trip.
                "write_of": precharged_write,
            },
        ),
        # Hot public REST reads; inside the rate limit: an answer from the cache still counts.
        (CachedPublicReads, {"cache": ResponseCache(runtime.data_version, ttl=TTL)}) if cacheable else None,
        # A persisted hash becomes its document, for the gate, the cache and the schema.
        (PersistedQueries, {"store": QueryStore(runtime.redis_link)}),
        # The graph's budgets: a document over a limit is refused before a parser sees it; the rest
        # is charged its cost and given its time budget.
        (
            LimitGate,
            {
                "schema": schema,
                "limits": settings.graphql_limits,
                "debug": settings.graphql_debug,
                "rate_limits": runtime.rate_limits,
                "time_budget": settings.graphql_time_budget_seconds,
                "verdicts": verdicts,
            },
        ),
        # graphql-sse on /graphql: inside the gate (a stream's document is judged like any other),
        # outside the cache (an event stream is never answered from it).
        (streams, {"runtime": runtime}),
        # Answers of graph queries by data version (never in debug: those carry SQL counts).
        (
            CachedResponses,
            {
                "cache": QueryCache(
                    runtime.data_version, ttl=graph_ttl, max_tokens=settings.graphql_max_tokens
                )
            },
        )
        if cacheable and not settings.graphql_debug
        else None,
        # Graph executions take a read slot (or wait in a bounded line, or get a 503): innermost, so a
        # cached answer or a refusal takes none.
        (CapacityGate, {"lanes": lanes}),
        # A query the compiler has a plan for, answered by its statement without the graph's view:
        # inside the caches and the read slots, so it replaces only the execution of a miss.
        (compiled, {"runtime": runtime, "schema": schema}) if compiled is not None else None,
    ]
    for layer in reversed(layers):  # Starlette runs the middleware added last first
        if layer is not None:
            cls, options = layer
            app.add_middleware(cls, **options)
    # OpenTelemetry spans, when OTEL_* asks for them: its instrumentation wraps the whole stack above.
    install_tracing(app, runtime)


def _cache_may_answer(*, graph: bool) -> Callable[[Scope], bool]:
    """Whether a response cache (``restcache``, ``graphcache``) may answer a request: what the rate
    limit reads the data versions for. A request the cache then passes by only costs a few more
    bytes in the same round trip."""
    from oro_graph.edge.restcache import CACHED_PATHS

    def may(scope: Scope) -> bool:
        path, method = scope["path"], scope["method"]
        if path == "/graphql":
            return graph and method in ("GET", "POST") and not _signed(scope)
        return method == "GET" and CACHED_PATHS.match(path) is not None

    return may


def _signed(scope: Scope) -> bool:
    return any(name == b"x-signature" for name, _ in scope["headers"])
