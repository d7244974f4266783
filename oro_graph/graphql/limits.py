"""Safety limits and observability for every operation.

- ``LIMITS``: budgets read from ``ORO_GRAPHQL_*`` (cost, depth, aliases, tokens, batch, CORS).
- ``CostLimit``: the static cost rule; refuses over-budget documents during validation, before
  any SQL runs, and reports ``extensions.cost`` on every response.
- ``LimitsFirst``: runs the limit rules (depth, aliases, cost) on their own before the rest of
  validation, so a refused document never pays for the costlier standard rules.
- ``Observability``: ``extensions.sql`` in debug mode (statements counted at the driver), a stable
  ``extensions.code`` on every error, and unexpected errors masked outside debug, with a request id
  that matches the log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, ValidationContext, ValidationRule, specified_rules, validate
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from strawberry.extensions import SchemaExtension
from strawberry.relay import GlobalIDValueError

from oro_graph.db import StatementCount, statement_counter
from oro_graph.errors import OroError
from oro_graph.graphql.cost import Cost, operation_cost

log = logging.getLogger("oro_graph.graphql")


class GraphQLLimits(BaseSettings):
    """Per-operation budgets of the graph, from ``ORO_GRAPHQL_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ORO_GRAPHQL_", extra="ignore", frozen=True)

    max_cost: int = Field(default=25_000, ge=1)
    max_depth: int = Field(default=15, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=5_000, ge=1)
    max_batch: int = Field(default=10, ge=1)
    cors_origins: list[str] = Field(default_factory=list)


LIMITS = GraphQLLimits()


def cost_message(cost: Cost, budget: int) -> str:
    hints = ", ".join(f"{path} (up to {items} items)" for path, items in cost.biggest())
    lower = f"; lower `first`/`last` on {hints}" if hints else ""
    return (
        f"query cost {cost.total} exceeds the budget of {budget} per operation{lower}, "
        "or select fewer nested connections. Ask `dryRun` for the cost without running."
    )


class CostLimit(SchemaExtension):
    """Computes the operation's cost during validation and refuses it when over budget."""

    def __init__(self) -> None:
        self.cost: Cost | None = None

    def on_operation(self) -> Iterator[None]:
        extension = self
        execution = self.execution_context

        class CostRule(ValidationRule):
            def __init__(self, context: ValidationContext) -> None:
                super().__init__(context)
                cost = operation_cost(
                    context.schema, context.document, execution.variables, execution.operation_name
                )
                extension.cost = cost
                for message in cost.page_errors:
                    context.report_error(GraphQLError(message, extensions={"code": "BAD_PAGE_ARGUMENT"}))
                if cost.total > LIMITS.max_cost:
                    context.report_error(
                        GraphQLError(
                            cost_message(cost, LIMITS.max_cost),
                            extensions={
                                "code": "QUERY_TOO_COSTLY",
                                "cost": cost.total,
                                "budget": LIMITS.max_cost,
                            },
                        )
                    )

        execution.validation_rules = (*execution.validation_rules, CostRule)
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost.total, "budget": LIMITS.max_cost}}


class LimitsFirst(SchemaExtension):
    """Validates with the rules the limit extensions added, alone, before the specified rules.

    Validation runs every rule in one pass, so a document over the alias limit still paid for
    rules that are quadratic in the number of fields (overlapping fields). Here an over-limit
    document is refused after the cheap pass alone (Strawberry skips its own validation once
    errors are set); a document within the limits is validated by the other rules as before.
    """

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        standard = set(specified_rules)
        limit_rules = tuple(rule for rule in execution.validation_rules if rule not in standard)
        if limit_rules and execution.graphql_document is not None:
            errors = validate(execution.schema._schema, execution.graphql_document, limit_rules)
            if errors:
                execution.pre_execution_errors = errors
            else:
                execution.validation_rules = tuple(r for r in execution.validation_rules if r in standard)
        yield


def _debug(execution_context: Any) -> bool:
    runtime = getattr(execution_context.context, "runtime", None)
    return bool(runtime and runtime.settings.graphql_debug)


def _code(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, OroError):
        return original.code.value
    if isinstance(original, GraphQLError) and original.extensions and "code" in original.extensions:
        return str(original.extensions["code"])
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    if isinstance(original, GlobalIDValueError | GraphQLError):
        return "BAD_USER_INPUT"  # a value the client sent could not be read (a variable, a global id)
    if original is None:
        return "GRAPHQL_VALIDATION_FAILED"  # parse and validation errors
    return "INTERNAL_SERVER_ERROR"


class Observability(SchemaExtension):
    """SQL statement counts (debug), stable error codes, masking of unexpected errors."""

    def __init__(self) -> None:
        self.count = StatementCount()
        self.started = 0.0

    def on_operation(self) -> Iterator[None]:
        self.started = time.perf_counter()
        token = statement_counter.set(self.count)
        try:
            yield
        finally:
            statement_counter.reset(token)
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self._shape(error) for error in result.errors]

    def _shape(self, error: GraphQLError) -> GraphQLError:
        code = _code(error)
        extensions = {**(error.extensions or {}), "code": code}
        original = error.original_error
        if isinstance(original, OroError):
            extensions.update({_camel(k): v for k, v in original.extra.items()})
        if code != "INTERNAL_SERVER_ERROR":
            error.extensions = extensions
            return error
        request_id = getattr(self.execution_context.context, "request_id", "-")
        log.error("unexpected error in GraphQL operation (request id %s)", request_id, exc_info=original)
        extensions["requestId"] = request_id
        if _debug(self.execution_context):
            error.extensions = extensions
            return error
        return GraphQLError(
            f"Unexpected error; quote request id {request_id} when reporting it.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=extensions,
        )

    def get_results(self) -> dict[str, Any]:
        if not _debug(self.execution_context):
            return {}
        return {"sql": {"statements": self.count.statements, "ms": round(self.count.seconds * 1000, 3)}}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
