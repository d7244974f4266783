"""The time budget of a GraphQL request (``ORO_GRAPHQL_TIME_BUDGET_SECONDS``).

The cost, field and alias budgets are judged before anything runs; this one holds while it runs.
An HTTP request (one operation or a batch, which shares one deadline) gets its deadline from the
limit gate (``REQUEST_DEADLINE``); an operation that comes another way (a websocket, a multipart
upload) gets one of its own when it starts, and each event of a subscription gets its own too
(a subscription is long-lived by design; what it runs per event is not).

``BoundedExecutor`` enforces it twice:

- at every field boundary: once the deadline has passed, no further field is resolved (a field
  error ``TIME_BUDGET_EXCEEDED``). This is what stops a document whose resolvers block the event
  loop or wait on worker threads, which cannot be cancelled;
- for queries and subscription events, the executing coroutine is cancelled at the deadline
  (``asyncio.wait_for``), which frees the worker at once from resolvers awaiting anything.

A query or subscription event over its budget is answered ``data: null`` with one
``TIME_BUDGET_EXCEEDED`` error (HTTP 200, as the other budget refusals). A mutation is never
cancelled part-way: its root fields run one after another, each a transaction of its own, so the
ones that completed keep their answer and the ones after the deadline are not started (each says
so in ``errors``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLObjectType, OperationType
from graphql.execution.executor import Executor
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

CODE = "TIME_BUDGET_EXCEEDED"
clock: Callable[[], float] = time.monotonic  # tests move it by hand


@dataclass(frozen=True)
class Deadline:
    at: float
    budget: float

    @classmethod
    def starting_now(cls, budget: float) -> Deadline:
        return cls(clock() + budget, budget)

    def passed(self) -> bool:
        return clock() >= self.at

    def remaining(self) -> float:
        return max(0.0, self.at - clock())

    def error(self) -> GraphQLError:
        return GraphQLError(
            f"the request ran past its time budget of {self.budget:g} s and was stopped: ask for less "
            "in one request (smaller pages, fewer nested connections, fewer operations per batch)",
            extensions={"code": CODE, "budgetSeconds": self.budget},
        )


REQUEST_DEADLINE: ContextVar[Deadline | None] = ContextVar("oro_graphql_deadline", default=None)


def _budget(context: Any) -> float | None:
    runtime = getattr(context, "runtime", None)
    return runtime.settings.graphql_time_budget_seconds if runtime is not None else None


class BoundedExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, within the request's deadline (see the module's docstring)."""

    deadline: Deadline | None
    _at: float  # the deadline's instant (infinity without one): what every field compares

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.operation.operation == OperationType.SUBSCRIPTION:
            deadline = None  # each event gets its own: build_per_event_executor
        else:
            deadline = REQUEST_DEADLINE.get()
            if deadline is None:
                budget = _budget(self.context_value)
                deadline = Deadline.starting_now(budget) if budget is not None else None
        self._bound(deadline)

    def _bound(self, deadline: Deadline | None) -> None:
        self.deadline = deadline
        self._at = deadline.at if deadline is not None else math.inf

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = super().build_per_event_executor(payload)  # a copy of this one
        budget = _budget(self.context_value)
        executor._bound(Deadline.starting_now(budget) if budget is not None else None)  # type: ignore[attr-defined]
        return executor

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        # Every field passes here: kept to one comparison (a 1,000-row page is 10,000 fields or more).
        if self._at < clock():
            field = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
            if field is not None:
                self.handle_field_error(self.deadline.error(), field.type, field_details_list, path)  # type: ignore[union-attr]
                return None
        return _execute_field(self, parent_type, source, field_details_list, path, position_context)

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = super().execute_operation(serially)
        deadline = self.deadline
        if deadline is None or self.operation.operation == OperationType.MUTATION:
            return result
        if self.is_awaitable(result):
            return self._within(result, deadline)
        return _refused_if_late(result, deadline)

    async def _within(self, result: Awaitable[Any], deadline: Deadline) -> Any:
        try:
            done = await asyncio.wait_for(result, deadline.remaining())
        except TimeoutError:
            return ExecutionResult(data=None, errors=[deadline.error()])
        return _refused_if_late(done, deadline)


_execute_field = StrawberryGraphQLCoreExecutionContext.execute_field


def _refused_if_late(result: Any, deadline: Deadline) -> Any:
    """A query stopped at a field boundary answers as a whole: one error, not one per field it skipped."""
    if isinstance(result, ExecutionResult) and any(
        (error.extensions or {}).get("code") == CODE for error in result.errors or ()
    ):
        return ExecutionResult(data=None, errors=[deadline.error()])
    return result
