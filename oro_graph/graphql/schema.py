"""The schema: every domain's queries and mutations merged, with limits and error handlers."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types.execution import PreExecutionError

from oro_graph.edge.cost import operation_cost
from oro_graph.edge.limits import Limits, limits_of, parse_document
from oro_graph.edge.request import EdgeRequest
from oro_graph.graphql.agents import AgentQuery
from oro_graph.graphql.aggregates import AggregateQuery
from oro_graph.graphql.context import Info
from oro_graph.graphql.error_types import EXCEPTION_HANDLERS
from oro_graph.graphql.evaluations import EvaluationQuery
from oro_graph.graphql.extensions import Observability
from oro_graph.graphql.feeds import FeedSubscription
from oro_graph.graphql.leaderboard import LeaderboardQuery
from oro_graph.graphql.leases import EvaluationMutation
from oro_graph.graphql.pagination import MAX_PAGE_SIZE
from oro_graph.graphql.racechanges import RaceSubscription
from oro_graph.graphql.races import RaceQuery
from oro_graph.graphql.raceselections import RaceMutation
from oro_graph.graphql.scalars import SCALAR_OVERRIDES
from oro_graph.graphql.sqlcompile.executor import CompilingExecutor
from oro_graph.graphql.submissions import AgentMutation
from oro_graph.graphql.subscriptions import SUBSCRIPTION_HELP
from oro_graph.graphql.subscriptions import Subscription as RunAndBoardSubscription
from oro_graph.graphql.suites import SuiteQuery
from oro_graph.graphql.validators import ValidatorQuery
from oro_graph.graphql.viewer import ViewerQuery
from oro_graph.settings import DEFAULT_GRAPHQL_LIMITS


@strawberry.type(description="Items a connection in the document may return.")
class ConnectionCost:
    path: str = strawberry.field(description="The connection's path in the document (aliases not applied).")
    items: int = strawberry.field(description="How many items it may return, page sizes multiplied.")


@strawberry.type(description="What a document would cost, computed without running it.")
class QueryCost:
    cost: int = strawberry.field(
        description="The document's cost (objects it may return, page sizes multiplied)."
    )
    budget: int = strawberry.field(description="The most one operation may cost.")
    within_budget: bool = strawberry.field(description="Whether the document would be accepted.")
    connections: list[ConnectionCost] = strawberry.field(
        description="The costliest connections, largest first."
    )


@strawberry.type(
    description="The caller's rate-limit budget, in points a minute (as GitHub's `rateLimit`). The client is "
    "the hotkey of a signed request, else the address. A REST request costs one point, a GraphQL request "
    "max(1, ceil(cost / ORO_GRAPHQL_COST_PER_POINT)) of its static cost (summed over a batch), and an "
    "answer from a cache as much as a computed one. Every HTTP answer carries the same figures as "
    "`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`."
)
class RateLimit:
    limit: int = strawberry.field(description="Points a client may spend in a minute.")
    cost: int = strawberry.field(description="Points this request was charged.")
    remaining: int = strawberry.field(description="Points left in the current window, after this request.")
    reset_at: datetime = strawberry.field(description="When the window has room again.")


@strawberry.type(
    description=f"Everything that can be read. Lists are Relay connections of at most "
    f"{MAX_PAGE_SIZE} items a page; "
    f"an operation may cost at most {DEFAULT_GRAPHQL_LIMITS.max_cost} (see `dryRun`)."
)
class Query(
    SuiteQuery,
    AgentQuery,
    EvaluationQuery,
    ValidatorQuery,
    LeaderboardQuery,
    RaceQuery,
    ViewerQuery,
    AggregateQuery,
):
    node: relay.Node | None = relay.node(description="Any object by its global id.")
    nodes: list[relay.Node | None] = relay.node(description=f"Objects by global id, at most {MAX_PAGE_SIZE}.")

    @strawberry.field(
        description="The caller's rate-limit budget after this request. Null when the request was not "
        "counted (a subscription over a websocket) or the counter store is unreachable."
    )
    def rate_limit(self, info: Info) -> RateLimit | None:
        request = getattr(info.context, "request", None)
        edge = EdgeRequest.get(request.scope) if request is not None else None
        state = edge.rate if edge is not None else None
        if state is None or state.charge is None:
            return None
        charge = state.charge
        return RateLimit(
            limit=charge.limit,
            cost=charge.cost,
            remaining=charge.remaining,
            reset_at=datetime.fromtimestamp(charge.reset, UTC),
        )

    @strawberry.field(description="The cost of a document without running it (a dry run of the cost rule).")
    def dry_run(
        self,
        info: Info,
        query: Annotated[str, strawberry.argument(description="The GraphQL document.")],
        variables: Annotated[JSON | None, strawberry.argument(description="Its variables.")] = None,
        operation_name: Annotated[
            str | None, strawberry.argument(description="The operation to cost.")
        ] = None,
    ) -> QueryCost:
        limits = limits_of(info.context)
        try:
            document = parse_document(query, limits.max_tokens)
        except GraphQLError as exc:
            raise GraphQLError(
                f"the document does not parse: {exc.message}", extensions={"code": "BAD_USER_INPUT"}
            ) from None
        if variables is not None and not isinstance(variables, dict):
            raise GraphQLError(
                "`variables` must be a JSON object of variable values", extensions={"code": "BAD_USER_INPUT"}
            )
        cost = operation_cost(info.schema._schema, document, variables or {}, operation_name)
        return QueryCost(
            cost=cost.total,
            budget=limits.max_cost,
            within_budget=cost.total <= limits.max_cost and not cost.page_errors,
            connections=[ConnectionCost(path=p, items=n) for p, n in cost.biggest(10)],
        )


@strawberry.type(
    description="Signed writes: miners submit and pin their racing version, validators claim and report."
)
class Mutation(AgentMutation, EvaluationMutation, RaceMutation):
    pass


@strawberry.type(description=SUBSCRIPTION_HELP)
class Subscription(RunAndBoardSubscription, FeedSubscription, RaceSubscription):
    pass


class OroSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Errors are logged by the Observability extension, with the request id, only when unexpected."""

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        """Subscriptions (websocket, SSE) with a document ``Limits`` refuses while parsing (over a limit, or
        not parsing at all) answer with that error: Strawberry's stream lets it escape, so the websocket
        logged it and completed the operation without a word."""
        return _refused_in_parse(await super().stream(*args, **kwargs))


async def _refused_in_parse(results: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    answered = False
    async with aclosing(results):
        try:
            async for result in results:
                answered = True
                yield result
        except GraphQLError as error:
            if answered:
                raise
            error.extensions = {"code": "GRAPHQL_VALIDATION_FAILED", **(error.extensions or {})}
            yield PreExecutionError(data=None, errors=[error])


schema = OroSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        Limits,
        Observability,
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    scalar_overrides=SCALAR_OVERRIDES,
    execution_context_class=CompilingExecutor,  # the deadline's executor, compiling what it can
    config=StrawberryConfig(
        # The router holds a batch to the server's own ORO_GRAPHQL_MAX_BATCH (graphql/router.py).
        relay_max_results=MAX_PAGE_SIZE,
        batching_config={"max_operations": DEFAULT_GRAPHQL_LIMITS.max_batch},
    ),
)
