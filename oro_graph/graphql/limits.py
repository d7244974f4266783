"""Safety limits and observability for every operation.

- ``LIMITS``: budgets read from ``ORO_GRAPHQL_*`` (cost, depth, aliases, tokens, length, expanded
  fields, repeated fields, batch, CORS).
- ``limit_errors``: the limit rules (expanded fields, depth, aliases, repeated fields, static
  cost), run on their own; the schema's ``Limits`` extension and the HTTP gate
  (``oro_graph.graphql.gate``) both refuse with them.
- ``Limits``: runs them before the rest of validation, so a refused document never pays for the
  costlier standard rules, and reports ``extensions.cost`` on every response.
- ``lexical_refusal``: the length, token, alias and depth limits judged without parsing
  (``oro_graph.graphql.lexical``).
- ``parse_document``: graphql-core's parse within the token budget, remembered per document.
- ``Observability``: ``extensions.sql`` in debug mode (statements counted at the driver), a stable
  ``extensions.code`` on every error, and unexpected errors masked outside debug, with a request id
  that matches the log line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    parse,
)
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.relay import GlobalIDValueError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from oro_graph.db import StatementCount, statement_counter
from oro_graph.errors import OroError
from oro_graph.graphql.cost import Cost, operation_cost
from oro_graph.graphql.expansion import Expansion
from oro_graph.graphql.lexical import bounds
from oro_graph.observability import record_operation

log = logging.getLogger("oro_graph.graphql")
NO_OPERATION = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


class GraphQLLimits(BaseSettings):
    """Per-operation budgets of the graph, from ``ORO_GRAPHQL_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ORO_GRAPHQL_", extra="ignore", frozen=True)

    max_cost: int = Field(default=25_000, ge=1)
    max_depth: int = Field(default=15, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=2_000, ge=1)  # the project's clients send at most 183 (introspection)
    max_document_chars: int = Field(default=32_768, ge=1)
    max_fields: int = Field(default=1_000, ge=1)  # field selections, fragments expanded
    max_repeated_pairs: int = Field(default=1_000, ge=0)  # pairs of fields at one response path
    max_batch: int = Field(default=10, ge=1)
    cors_origins: list[str] = Field(default_factory=list)


LIMITS = GraphQLLimits()


def cost_message(cost: Cost, budget: int) -> str:
    hints = ", ".join(f"{path} (up to {items} items)" for path, items in cost.biggest())
    lower = f"; lower `first`/`last` on {hints}" if hints else ""
    schema = (
        f"; {cost.introspection} of it is introspection (about one object per type, field and argument "
        "it lists): introspect the schema once, not in aliased or nested copies"
        if cost.introspection
        else ""
    )
    return (
        f"query cost {cost.total} exceeds the budget of {budget} per operation{lower}{schema}, "
        "or select fewer nested connections. Ask `dryRun` for the cost without running."
    )


CACHED_DOCUMENT_CHARS = 4_096


CACHED_DOCUMENTS = 256
_parsed: OrderedDict[tuple[str, int], DocumentNode] = OrderedDict()
_parsed_lock = threading.Lock()


def parse_document(query: str, max_tokens: int, *, remember: bool = True) -> DocumentNode:
    """The parsed document (raises GraphQLSyntaxError), shared by the gate, the cache and the schema.

    Only documents up to 4 KB (every query the project's clients send) are remembered: 256 large
    ones held millions of AST nodes, and the garbage collector's full passes over them paused the
    server for up to 0.85 s. The gate parses with ``remember=False`` and remembers only what it
    admits: a flood of fresh refused documents filled the cache the same way (``/health`` took
    0.4 s, at worst 2.4 s, under 4 senders).
    """
    if len(query) > CACHED_DOCUMENT_CHARS:
        return parse(query, max_tokens=max_tokens)
    with _parsed_lock:
        document = _parsed.get((query, max_tokens))
        if document is not None:
            _parsed.move_to_end((query, max_tokens))
            return document
    document = parse(query, max_tokens=max_tokens)
    if remember:
        remember_document(query, max_tokens, document)
    return document


def remember_document(query: str, max_tokens: int, document: DocumentNode) -> None:
    if len(query) > CACHED_DOCUMENT_CHARS:
        return
    with _parsed_lock:
        _parsed[(query, max_tokens)] = document
        _parsed.move_to_end((query, max_tokens))
        if len(_parsed) > CACHED_DOCUMENTS:
            _parsed.popitem(last=False)


# Documents (text, validation rules) the standard rules found valid: validation depends on the
# document alone, not on its variables, so a document is validated once per process (12% of a
# version page's time was spent validating the same text again).
_valid: OrderedDict[tuple[str, tuple[Any, ...]], None] = OrderedDict()


def _known_valid(query: str, rules: tuple[Any, ...]) -> bool:
    with _parsed_lock:
        if (query, rules) in _valid:
            _valid.move_to_end((query, rules))
            return True
    return False


def _remember_valid(query: str, rules: tuple[Any, ...]) -> None:
    if len(query) > CACHED_DOCUMENT_CHARS:
        return
    with _parsed_lock:
        _valid[(query, rules)] = None
        if len(_valid) > CACHED_DOCUMENTS:
            _valid.popitem(last=False)


def lexical_refusal(query: str) -> str | None:
    """Why the document is over a limit, judged without parsing it; None when it may not be."""
    budget = LIMITS
    if len(query) > budget.max_document_chars:
        return f"the document has {len(query)} characters; at most {budget.max_document_chars} are allowed"
    found = bounds(query)
    if found.tokens > budget.max_tokens:
        return f"Syntax Error: Document contains more than {budget.max_tokens} tokens. Parsing aborted."
    if found.aliases > budget.max_aliases:
        return f"{found.aliases} aliases found. Allowed: {budget.max_aliases}"
    if found.depth > budget.max_depth:
        return f"the operation exceeds maximum operation depth of {budget.max_depth}"
    return None


def limit_errors(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
) -> tuple[list[GraphQLError], Cost | None]:
    """The document's limit errors (each says which limit and what to lower), and its cost.

    Every count expands fragments once (``expansion``); a document too large once expanded is
    refused before anything else walks it.
    """
    expansion = Expansion(document)
    errors: list[GraphQLError] = []
    aliases = fields = 0
    for operation in expansion.operations:
        totals = expansion.totals(operation)
        if operation_name is None or (operation.name and operation.name.value == operation_name):
            fields = max(fields, totals.fields)
        name = operation.name.value if operation.name else "anonymous"
        if totals.fields > LIMITS.max_fields:
            message = (
                f"'{name}' selects {totals.fields} fields once its fragments are expanded; "
                f"at most {LIMITS.max_fields} are allowed"
            )
            return [GraphQLError(message, [operation])], None
        aliases += totals.aliases
        if totals.depth > LIMITS.max_depth:
            message = f"'{name}' exceeds maximum operation depth of {LIMITS.max_depth}"
            errors.append(GraphQLError(message, [operation]))
        pairs, path, most = expansion.repeated_pairs(operation)
        if pairs > LIMITS.max_repeated_pairs:
            message = (
                f"`{path}` is selected {most} times at the same place; the repeated fields of '{name}' "
                f"make {pairs} pairs to merge, over the budget of {LIMITS.max_repeated_pairs}: "
                "select each field once"
            )
            errors.append(GraphQLError(message, [operation]))
    if aliases > LIMITS.max_aliases:
        errors.insert(0, GraphQLError(f"{aliases} aliases found. Allowed: {LIMITS.max_aliases}"))
    if errors:
        return errors, None
    cost = operation_cost(schema, document, variables, operation_name)
    cost.fields = fields
    for message in cost.page_errors:
        errors.append(GraphQLError(message, extensions={"code": "BAD_PAGE_ARGUMENT"}))
    if cost.total > LIMITS.max_cost:
        budget = LIMITS.max_cost
        extensions = {"code": "QUERY_TOO_COSTLY", "cost": cost.total, "budget": budget}
        errors.append(GraphQLError(cost_message(cost, budget), extensions=extensions))
    return errors, cost


class Limits(SchemaExtension):
    """Refuses what the lexical bounds already show is over a limit, parses within the token budget
    (once per document), then runs the limit rules alone, before the specified rules.

    Validation runs every rule in one pass, so a document over the alias limit still paid for
    rules that are quadratic in the number of fields (overlapping fields). Here an over-limit
    document is refused after the cheap pass alone (Strawberry skips its own validation once
    errors are set); a document within the limits is validated by the standard rules as before.
    """

    def __init__(self) -> None:
        self.cost: Cost | None = None

    def on_operation(self) -> Iterator[None]:
        yield
        execution = self.execution_context
        result = execution.result
        if execution.pre_execution_errors or (result is not None and result.data is None and result.errors):
            outcome = "refused" if execution.pre_execution_errors or self.cost is None else "error"
        else:
            outcome = "error" if result is not None and result.errors else "ok"
        try:
            kind = execution.operation_type.value
        except Exception:  # no document, or no such operation: nothing to name
            kind = "unknown"
        record_operation(execution.operation_name, kind, outcome, self.cost.total if self.cost else None)

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        if execution.query and execution.graphql_document is None:
            refusal = lexical_refusal(execution.query)
            if refusal is not None:  # Strawberry answers an error raised here as the operation's only error
                raise GraphQLError(refusal)
            execution.graphql_document = parse_document(execution.query, LIMITS.max_tokens)
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        if execution.graphql_document is not None:
            errors, self.cost = limit_errors(
                execution.schema._schema,
                execution.graphql_document,
                execution.variables,
                execution.operation_name,
            )
            if errors:
                execution.pre_execution_errors = errors
            elif execution.query and _known_valid(execution.query, tuple(execution.validation_rules)):
                execution.pre_execution_errors = []  # Strawberry then skips its own validation
        yield
        if execution.query and execution.pre_execution_errors == [] and self.cost is not None:
            _remember_valid(execution.query, tuple(execution.validation_rules))

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost.total, "budget": LIMITS.max_cost}}


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
    if original is None or isinstance(original, NO_OPERATION):
        return "GRAPHQL_VALIDATION_FAILED"  # parse and validation errors, no such operation (websocket, SSE)
    return "INTERNAL_SERVER_ERROR"


class Observability(SchemaExtension):
    """SQL statement counts (debug), stable error codes, masking of unexpected errors."""

    def __init__(self) -> None:
        self.count = StatementCount()
        self.started = 0.0
        self.streamed = False

    def on_operation(self) -> Iterator[None]:
        self.started = time.perf_counter()
        token = statement_counter.set(self.count)
        try:
            yield
        finally:
            # A stream the loop's finalizer closes runs this in another context, where the token is unknown.
            with contextlib.suppress(ValueError):
                statement_counter.reset(token)
        result = self.execution_context.result
        if result is not None and result.errors and not self.streamed:
            result.errors = [self._shape(error) for error in result.errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each result of a subscription (websocket or SSE) is shaped before it is sent: the operation
        only ends when the stream does."""
        self.streamed = True
        if getattr(result, "errors", None):
            result.errors = [self._shape(error) for error in result.errors]
        yield

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
