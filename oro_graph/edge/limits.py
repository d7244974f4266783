"""The graph's limit rules, judged once per operation.

- ``GraphQLLimits`` (``Settings.graphql_limits``): the budgets (cost, depth, aliases, tokens,
  length, expanded fields, repeated fields, batch), each an ``ORO_GRAPHQL_MAX_*`` setting.
- ``lexical_refusal``: the length, token, alias and depth limits judged without parsing
  (``oro_graph.edge.lexical``).
- ``parse_document``: graphql-core's parse within the token budget, remembered per document.
- ``limit_errors``: the limit rules (expanded fields, depth, aliases, repeated fields, static
  cost), run on their own.
- ``Limits``: the schema extension that applies them where the HTTP gate (``oro_graph.edge.gate``)
  did not: an operation the gate admitted keeps the gate's verdict (its parsed document and cost,
  ``EdgeRequest.admitted``); any other (a websocket, a multipart upload) is judged here, before the
  rest of validation, so a refused document never pays for the costlier standard rules. It
  reports ``extensions.cost`` on every response.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    parse,
)
from strawberry.extensions import SchemaExtension

from oro_graph.edge.cost import Cost, operation_cost
from oro_graph.edge.expansion import Expansion
from oro_graph.edge.lexical import bounds, canonical
from oro_graph.edge.request import Admission, EdgeRequest
from oro_graph.observability import record_operation
from oro_graph.settings import DEFAULT_GRAPHQL_LIMITS, GraphQLLimits

__all__ = ["DEFAULT_GRAPHQL_LIMITS", "GraphQLLimits", "Limits", "limit_errors", "parse_document"]


def limits_of(context: Any) -> GraphQLLimits:
    """The budgets of the server an operation runs on (its context's runtime), else the defaults."""
    runtime = getattr(context, "runtime", None)
    return runtime.settings.graphql_limits if runtime is not None else DEFAULT_GRAPHQL_LIMITS


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


# Documents (canonical text, validation rules) the standard rules found valid: validation depends on
# the document's tokens alone, not on its variables, comments or layout, so a document is validated
# once per process (12% of a version page's time was spent validating the same text again, and a
# deep query with a new comment on each request spent 14% of its time validating).
_valid: OrderedDict[tuple[str, tuple[Any, ...]], None] = OrderedDict()


def _known_valid(key: str, rules: tuple[Any, ...]) -> bool:
    """Whether the document of this canonical form (``lexical.canonical``) was found valid."""
    with _parsed_lock:
        if (key, rules) in _valid:
            _valid.move_to_end((key, rules))
            return True
    return False


def _remember_valid(key: str, rules: tuple[Any, ...]) -> None:
    if len(key) > CACHED_DOCUMENT_CHARS:
        return
    with _parsed_lock:
        _valid[(key, rules)] = None
        if len(_valid) > CACHED_DOCUMENTS:
            _valid.popitem(last=False)


def lexical_refusal(query: str, budget: GraphQLLimits = DEFAULT_GRAPHQL_LIMITS) -> str | None:
    """Why the document is over a limit, judged without parsing it; None when it may not be."""
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
    limits: GraphQLLimits = DEFAULT_GRAPHQL_LIMITS,
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
        if totals.fields > limits.max_fields:
            message = (
                f"'{name}' selects {totals.fields} fields once its fragments are expanded; "
                f"at most {limits.max_fields} are allowed"
            )
            return [GraphQLError(message, [operation])], None
        aliases += totals.aliases
        if totals.depth > limits.max_depth:
            message = f"'{name}' exceeds maximum operation depth of {limits.max_depth}"
            errors.append(GraphQLError(message, [operation]))
        pairs, path, most = expansion.repeated_pairs(operation)
        if pairs > limits.max_repeated_pairs:
            message = (
                f"`{path}` is selected {most} times at the same place; the repeated fields of '{name}' "
                f"make {pairs} pairs to merge, over the budget of {limits.max_repeated_pairs}: "
                "select each field once"
            )
            errors.append(GraphQLError(message, [operation]))
    if aliases > limits.max_aliases:
        errors.insert(0, GraphQLError(f"{aliases} aliases found. Allowed: {limits.max_aliases}"))
    if errors:
        return errors, None
    cost = operation_cost(schema, document, variables, operation_name)
    cost.fields = fields
    for message in cost.page_errors:
        errors.append(GraphQLError(message, extensions={"code": "BAD_PAGE_ARGUMENT"}))
    if cost.total > limits.max_cost:
        budget = limits.max_cost
        extensions = {"code": "QUERY_TOO_COSTLY", "cost": cost.total, "budget": budget}
        errors.append(GraphQLError(cost_message(cost, budget), extensions=extensions))
    return errors, cost


class Limits(SchemaExtension):
    """Takes the gate's verdict on an operation it admitted; judges any other: refuses what the
    lexical bounds already show is over a limit, parses within the token budget (once per
    document), then runs the limit rules alone, before the specified rules.

    Validation runs every rule in one pass, so a document over the alias limit still paid for
    rules that are quadratic in the number of fields (overlapping fields). Here an over-limit
    document is refused after the cheap pass alone (Strawberry skips its own validation once
    errors are set); a document within the limits is validated by the standard rules as before.
    """

    def __init__(self) -> None:
        self.cost: Cost | None = None
        self.admission: Admission | None = None

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        if execution.query:
            request = getattr(execution.context, "request", None)
            state = EdgeRequest.get(getattr(request, "scope", None) or {})
            if state is not None:
                self.admission = state.admission(
                    execution.query, execution.operation_name, execution.variables
                )
        yield
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
            limits = limits_of(execution.context)
            if self.admission is not None:
                execution.graphql_document = self.admission.document or parse_document(
                    execution.query, limits.max_tokens
                )
            else:
                refusal = lexical_refusal(execution.query, limits)
                if (
                    refusal is not None
                ):  # Strawberry answers an error raised here as the operation's only error
                    raise GraphQLError(refusal)
                execution.graphql_document = parse_document(execution.query, limits.max_tokens)
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        key: str | None = None
        if execution.graphql_document is not None:
            errors: list[GraphQLError] = []
            if self.admission is not None:
                self.cost = self.admission.cost
            else:
                errors, self.cost = limit_errors(
                    execution.schema._schema,
                    execution.graphql_document,
                    execution.variables,
                    execution.operation_name,
                    limits_of(execution.context),
                )
            if errors:
                execution.pre_execution_errors = errors
            elif execution.query:
                key = canonical(execution.query)  # the document parsed: its canonical form is its tokens
                if _known_valid(key, tuple(execution.validation_rules)):
                    execution.pre_execution_errors = []  # Strawberry then skips its own validation
        yield
        if key is not None and execution.pre_execution_errors == [] and self.cost is not None:
            _remember_valid(key, tuple(execution.validation_rules))

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {
            "cost": {
                "requested": self.cost.total,
                "budget": limits_of(self.execution_context.context).max_cost,
            }
        }
