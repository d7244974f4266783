"""Where compiled queries meet Strawberry: the executor's ``execute_operation``.

By then the document is parsed, validated (limits, cost) and its variables coerced, and the request's
deadline is known. A query the compiler covers is answered by one statement through ``Database.run``
(so the response cache records what it read, as for any statement); anything else, and any
compiled answer that would differ (the statement's ``ok`` false, a database error), is executed.

A statement is built once per document and values of the variables its shape depends on (``Plans``):
building one costs more than running it. The document is keyed by its canonical form
(``edge.lexical.canonical``): a copy that differs by a comment or its layout shares the plan (its
answer carries no location, and one that would differ is executed from this request's own parse).
The other variables (a version page's id) and the clock are parameters of each execution.

A document the compiler has a plan for is answered before Strawberry sees it
(``sqlcompile.fastpath``): it finds the plan by the request's ``document_key`` (``known_plan``), which
the executor records the first time it plans for such a request (``REQUESTED``). When that answer
cannot be given (the statement's ``ok`` false), the request goes on here, and ``TRIED`` tells the
executor not to run the same statement again.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_variable_values,
)
from sqlmodel import Session

from oro_graph.edge.deadline import BoundedExecutor
from oro_graph.edge.lexical import canonical
from oro_graph.graphql.sqlcompile import driver, wire
from oro_graph.graphql.sqlcompile.compiler import Compiled, compile_operation
from oro_graph.graphql.sqlcompile.driver import Prepared
from oro_graph.graphql.sqlcompile.mapping import Env
from oro_graph.models import utcnow

log = logging.getLogger(__name__)

# ORO_SQL_COMPILE=0 turns the compiled path off (every query executes): for comparisons and as a
# way out. Read once per process.
ENABLED = os.environ.get("ORO_SQL_COMPILE", "1").lower() not in {"0", "false", "no", "off"}
MAX_PLANS = 256


@dataclass(frozen=True)
class Bound:
    """A compiled statement with this request's parameters."""

    compiled: Compiled
    params: dict[str, Any]


# (the document's canonical form, the operation's name, the release delay its plans depend on)
DocumentKey = tuple[str, str | None, int]

# The key of the request the fast path could not answer from a known plan: the executor records
# the operation it plans for under it (``Plans.known``).
REQUESTED: ContextVar[DocumentKey | None] = ContextVar("oro_compiled_requested", default=None)
# Set by the fast path when it ran the compiled statement and it declined: the executor executes.
TRIED: ContextVar[bool] = ContextVar("oro_compiled_tried", default=False)


def document_key(form: str, operation_name: str | None, settings: Any) -> DocumentKey:
    """The key of a document by its canonical form (``edge.lexical.canonical``)."""
    return (form, operation_name, settings.code_release_delay_seconds)


@dataclass(frozen=True)
class Known:
    """What answering a request's document from its plan needs without parsing it: the plan's key
    and the operation (its name and variable definitions)."""

    key: DocumentKey
    operation: OperationDefinitionNode


class Plans:
    """Compiled statements (or the compiler's refusal, None) by document and the values of the
    variables their shape depends on; at most ``MAX_PLANS``, least recently used dropped first."""

    def __init__(self) -> None:
        self._plans: OrderedDict[tuple[DocumentKey, str], Compiled | None] = OrderedDict()
        self._shapes: dict[DocumentKey, frozenset[str]] = {}
        self._known: OrderedDict[DocumentKey, Known] = OrderedDict()  # by the requests' keys

    def known(self, requested: DocumentKey) -> Known | None:
        return self._known.get(requested)

    def remember(self, requested: DocumentKey, known: Known) -> None:
        self._known[requested] = known
        self._known.move_to_end(requested)
        while len(self._known) > MAX_PLANS:
            self._known.popitem(last=False)

    def get(self, document: DocumentKey, variables: dict[str, Any]) -> tuple[bool, Compiled | None]:
        shape = self._shapes.get(document)
        if shape is None:
            return False, None
        key = (document, _freeze(variables, shape))
        if key not in self._plans:
            return False, None
        self._plans.move_to_end(key)
        return True, self._plans[key]

    def put(self, document: DocumentKey, variables: dict[str, Any], compiled: Compiled | None) -> None:
        # A refusal may come before every variable was looked at: it is kept under all of them.
        shape = compiled.structural if compiled is not None else frozenset(variables)
        self._shapes[document] = shape
        self._plans[(document, _freeze(variables, shape))] = compiled
        while len(self._plans) > MAX_PLANS:
            (dropped, _), _ = self._plans.popitem(last=False)
            if not any(d == dropped for d, _ in self._plans):
                self._shapes.pop(dropped, None)


def _freeze(variables: dict[str, Any], names: frozenset[str]) -> str:
    return json.dumps({k: variables.get(k) for k in sorted(names)}, sort_keys=True, default=str)


PLANS = Plans()


def plan(executor: Any) -> Bound | None:
    """The compiled statement for the executor's operation, or None when it must execute."""
    context = executor.context_value
    runtime = getattr(context, "runtime", None)
    operation = executor.operation
    if not ENABLED or runtime is None or runtime.db.is_sqlite or operation.operation != OperationType.QUERY:
        return None
    if TRIED.get():  # the fast path ran this statement already, and it declined
        return None
    # A signer's own or held versions and runs are shown to it alone: only the executor knows them.
    if context.own_versions or context.held_versions or context.held_runs:
        return None
    variables = dict(executor.variable_values.coerced)
    now = utcnow()
    settings = runtime.settings
    source = operation.loc.source.body if operation.loc is not None else None
    name = operation.name.value if operation.name else None
    document = document_key(canonical(source), name, settings) if source is not None else None
    found, compiled = PLANS.get(document, variables) if document is not None else (False, None)
    if not found:
        env = Env(variables=variables, fragments=executor.fragment_definitions, now=now, settings=settings)
        compiled = compile_operation(executor.schema, operation, env)
        if document is not None:
            PLANS.put(document, variables, compiled)
    if compiled is None:
        return None
    requested = REQUESTED.get()
    if requested is not None and document is not None:
        PLANS.remember(requested, Known(document, operation))
    return _bound(compiled, variables, now)


def known_plan(schema: GraphQLSchema, requested: DocumentKey, variables: Any) -> tuple[Bound, Known] | None:
    """The compiled statement for a request (its document's key and its variables as sent) whose
    document the executor planned for before, or None: unknown, declined by the compiler, or
    variables the executor would refuse (it then answers with the error)."""
    known = PLANS.known(requested)
    if known is None or not isinstance(variables, dict | None):
        return None
    coerced = get_variable_values(schema, known.operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        return None
    values = dict(coerced.coerced)
    found, compiled = PLANS.get(known.key, values)
    if not found or compiled is None:
        return None
    return _bound(compiled, values, utcnow()), known


def _bound(compiled: Compiled, variables: dict[str, Any], now: datetime) -> Bound:
    return Bound(compiled, {name: value(variables, now) for name, value in compiled.params.items()})


def answer(session: Session, bound: Bound) -> dict[str, Any] | wire.Answer | None:
    compiled = bound.compiled
    if not compiled.prepared:  # its text, once (two threads may both make it: the same text)
        per_run = frozenset(compiled.params)
        compiled.prepared.append(Prepared.of(compiled.statement, session.get_bind().dialect, per_run))
    row = driver.run(session, compiled.prepared[0], bound.params)
    if row is None:
        return None
    data, ok = row
    if not ok:
        return None
    return wire.Answer(data) if wire.SPLICED.get() and wire.sent_as_is(data) else json.loads(data)


class CompilingExecutor(BoundedExecutor):
    """``BoundedExecutor`` answering the queries the compiler covers with one statement each."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        try:
            bound = plan(self)
        except Exception:  # a bug in the compiler must not cost an answer: the executor gives it
            log.exception("compiling a query failed; executing it instead")
            bound = None
        if bound is None:
            return super().execute_operation(serially)
        run = self._compiled(bound, serially)
        return self._within(run, self.deadline) if self.deadline is not None else run

    async def _compiled(self, bound: Bound, serially: bool | None) -> Any:
        try:
            data = await self.context_value.runtime.db.run(answer, bound)
        except Exception:  # the executor answers, with its own error if there is one
            log.debug("compiled statement failed; executing instead", exc_info=True)
            data = None
        if data is not None:
            return ExecutionResult(data=data)
        result = super().execute_operation(serially)
        return await result if self.is_awaitable(result) else result
