"""The graph: a Strawberry GraphQL API at /graphql over the same services as the REST paths."""

from __future__ import annotations

from fastapi import FastAPI

from oro_graph.runtime import Runtime


def install(app: FastAPI, runtime: Runtime) -> None:
    """Mount /graphql (GraphiQL on GET from a browser, multipart uploads on POST) and /graphql/stream
    on ``app``; the layers in front of them are the edge's (``oro_graph.edge.install``)."""
    from oro_graph.graphql.context import context_getter
    from oro_graph.graphql.router import Router
    from oro_graph.graphql.schema import schema
    from oro_graph.graphql.stream import GraphQLSSE, install_stream

    router = Router(
        schema,
        context_getter=context_getter(runtime),
        graphql_ide="graphiql",
        multipart_uploads_enabled=True,
        max_batch=runtime.settings.graphql_max_batch,
    )
    # before the router, so /graphql/stream is not taken for /graphql
    install_stream(app, GraphQLSSE(router, runtime))
    app.include_router(router, prefix="/graphql", include_in_schema=False)
