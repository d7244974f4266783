"""Where compiled queries meet Strawberry: the executor's ``execute_operation``.

By then the document is parsed, validated (limits, cost) and its variables coerced, and the request's
deadline is known. A query the compiler covers is answered by one statement through ``Database.run``
(so the response cache records what it read, as for any statement); anything else, and any
compiled answer that would differ (the statement's ``ok`` false, a database error), is executed.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from graphql import ExecutionResult, OperationType
from sqlmodel import Session

from oro_graph.graphql.deadline import BoundedExecutor
from oro_graph.models import utcnow
from oro_graph.sqlcompile.compiler import Compiled, compile_operation
from oro_graph.sqlcompile.mapping import Env

log = logging.getLogger(__name__)

# ORO_SQL_COMPILE=0 turns the compiled path off (every query executes): for comparisons and as a
# way out. Read once per process.
ENABLED = os.environ.get("ORO_SQL_COMPILE", "1").lower() not in {"0", "false", "no", "off"}


def plan(executor: Any) -> Compiled | None:
    """The compiled statement for the executor's operation, or None when it must execute."""
    context = executor.context_value
    runtime = getattr(context, "runtime", None)
    if not ENABLED or runtime is None or runtime.db.is_sqlite:
        return None
    if executor.operation.operation != OperationType.QUERY:
        return None
    # A signer's own or held versions and runs are shown to it alone: only the executor knows them.
    if context.own_versions or context.held_versions or context.held_runs:
        return None
    env = Env(
        variables=dict(executor.variable_values.coerced),
        fragments=executor.fragment_definitions,
        now=utcnow(),
        settings=runtime.settings,
    )
    return compile_operation(executor.schema, executor.operation, env)


def answer(session: Session, compiled: Compiled) -> dict[str, Any] | None:
    data, ok = session.execute(compiled.statement).one()
    return json.loads(data) if ok else None


class CompilingExecutor(BoundedExecutor):
    """``BoundedExecutor`` answering the queries the compiler covers with one statement each."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        try:
            compiled = plan(self)
        except Exception:  # a bug in the compiler must not cost an answer: the executor gives it
            log.exception("compiling a query failed; executing it instead")
            compiled = None
        if compiled is None:
            return super().execute_operation(serially)
        run = self._compiled(compiled, serially)
        return self._within(run, self.deadline) if self.deadline is not None else run

    async def _compiled(self, compiled: Compiled, serially: bool | None) -> Any:
        try:
            data = await self.context_value.runtime.db.run(answer, compiled)
        except Exception:  # the executor answers, with its own error if there is one
            log.debug("compiled statement failed; executing instead", exc_info=True)
            data = None
        if data is not None:
            return ExecutionResult(data=data)
        result = super().execute_operation(serially)
        return await result if self.is_awaitable(result) else result
