"""Static query cost: what a document may ask of the server, computed before anything runs.

The count follows GitHub and Shopify: every object costs 1 for each time it can appear, a
connection multiplies what is under it by its page size (`first` or `last`, else the default)
and costs one more per parent for each condition of its `filter`/`scope` and for an `orderBy`
(they narrow or sort in SQL: subqueries, semi-joins),
and a list that is not a connection by its length (`ids`) or an estimate. Scalars are free.

Introspection is priced the same way (it used to be free, so 30 aliased copies of
``__schema { types { fields { type { ... } } } }`` ran for a second and answered 1.6 MB): its
lists are sized from the schema itself (``types`` is the number of types, ``fields`` under a type
the average fields per type, ``args`` under a field the average arguments per field, ...), so the
full introspection query costs about the objects it returns, types x fields x args.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    get_named_type,
    is_leaf_type,
    value_from_ast,
    value_from_ast_untyped,
)

from oro_graph.services.pages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

LIST_ESTIMATE = 20  # items assumed in a plain list of unknown length (a suite's problems, a run's results)
MUTATION_COST = 10
FILTER_COST = 1  # per condition of a connection's `filter` or `scope`, and for an `orderBy`, per parent


@dataclass
class Cost:
    total: int = 0
    by_field: dict[str, int] = field(default_factory=dict)  # connection path -> items it may return
    page_errors: list[str] = field(default_factory=list)
    introspection: int = 0  # the part of ``total`` spent on introspection (``__schema``, ``__type``)
    fields: int = 0  # field selections once fragments are expanded (set by ``limits.limit_errors``)

    def biggest(self, n: int = 3) -> list[tuple[str, int]]:
        return sorted(self.by_field.items(), key=lambda item: -item[1])[:n]


@functools.cache
def introspection_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], float]:
    """Items per parent of each list in the introspection types, averaged over this schema.

    Under ``__schema { types }`` the multiplier is the number of types, so ``fields`` there counts
    exactly the schema's fields, ``args`` under them exactly its arguments, and so on.
    """
    types = list(schema.type_map.values())
    composite = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    fields = [f for t in composite for f in t.fields.values()]
    n_types, n_fields = max(len(types), 1), max(len(fields), 1)
    directives = list(schema.directives)
    abstract = [t for t in types if isinstance(t, GraphQLInterfaceType | GraphQLUnionType)]
    return {
        ("__Schema", "types"): float(len(types)),
        ("__Schema", "directives"): float(len(directives)),
        ("__Type", "fields"): len(fields) / n_types,
        ("__Type", "interfaces"): sum(len(t.interfaces) for t in composite) / n_types,
        ("__Type", "possibleTypes"): sum(len(schema.get_possible_types(t)) for t in abstract) / n_types,
        ("__Type", "enumValues"): sum(len(t.values) for t in types if isinstance(t, GraphQLEnumType))
        / n_types,
        ("__Type", "inputFields"): sum(len(t.fields) for t in types if isinstance(t, GraphQLInputObjectType))
        / n_types,
        ("__Field", "args"): sum(len(f.args) for f in fields) / n_fields,
        ("__Directive", "args"): sum(len(d.args) for d in directives) / max(len(directives), 1),
    }


def conditions(args: Mapping[str, Any]) -> int:
    """The conditions a connection's arguments add to its statement: each filter or scope field given
    (a category filter counts its own fields too), plus one for a non-default order."""
    found = 1 if args.get("orderBy") else 0
    for name in ("filter", "scope"):
        given = args.get(name)
        if isinstance(given, Mapping):
            found += sum(
                len(v) if isinstance(v, Mapping) else 1 for v in given.values() if v not in (None, False)
            )
    return found


def _unwrap_is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.cost = Cost()

    def fields(
        self, selection_set: SelectionSetNode | None, parent: Any, seen: frozenset[str] = frozenset()
    ) -> Iterator[tuple[FieldNode, Any]]:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection, parent
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition
                yield from self.fields(
                    selection.selection_set, self.schema.get_type(cond.name.value) if cond else parent, seen
                )
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:
                    cond_type = self.schema.get_type(fragment.type_condition.name.value)
                    yield from self.fields(fragment.selection_set, cond_type, seen | {name})

    def args(self, node: FieldNode, definition: Any) -> dict[str, Any]:
        values = {}
        for arg in node.arguments or ():
            arg_def = definition.args.get(arg.name.value)
            if arg_def is not None:
                values[arg.name.value] = value_from_ast(arg.value, arg_def.type, self.variables)
        return values

    def walk(self, selection_set: SelectionSetNode | None, parent: Any, multiplier: int, path: str) -> int:
        total = 0
        for node, owner in self.fields(selection_set, parent):
            name = node.name.value
            if name == "__typename" or not isinstance(owner, GraphQLObjectType | GraphQLInterfaceType):
                continue
            definition = owner.fields.get(name)
            if definition is None and owner is self.schema.query_type:
                definition = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}.get(name)
            if definition is None:
                continue
            named = get_named_type(definition.type)
            in_edge = name == "node" and owner.name.endswith("Edge")
            here = path if in_edge else f"{path}.{name}" if path else name
            if named.name.endswith("Connection"):
                args = self.args(node, definition)
                size = self.page_size(here, args)
                self.cost.by_field[here] = self.cost.by_field.get(here, 0) + multiplier * size
                total += multiplier * (1 + FILTER_COST * conditions(args))
                total += self.connection(node.selection_set, named, multiplier, size, here)
            elif is_leaf_type(named):
                continue
            else:
                count = multiplier
                introspection = name.startswith("__") or owner.name.startswith("__")
                if _unwrap_is_list(definition.type) and introspection:
                    per_item = introspection_sizes(self.schema).get((owner.name, name), LIST_ESTIMATE)
                    count = math.ceil(multiplier * per_item)
                elif _unwrap_is_list(definition.type):
                    ids = self.args(node, definition).get("ids")
                    if isinstance(ids, list) and len(ids) > MAX_PAGE_SIZE:
                        many = f"`ids` on {here} has {len(ids)} ids"
                        self.cost.page_errors.append(f"{many}; at most {MAX_PAGE_SIZE} are answered at once")
                    count *= len(ids) if isinstance(ids, list) else LIST_ESTIMATE
                if introspection:
                    self.cost.introspection += count
                total += count + self.walk(node.selection_set, named, count, here)
        return total

    def connection(
        self, selection_set: SelectionSetNode | None, type_: Any, multiplier: int, size: int, path: str
    ) -> int:
        """Inside a connection: each page's items cost under ``edges``; ``totalCount`` is one COUNT per
        connection."""
        total = 0
        for node, owner in self.fields(selection_set, type_):
            name = node.name.value
            if name == "totalCount":
                total += multiplier
            elif name == "edges":
                edge = get_named_type(owner.fields[name].type)
                total += self.walk(node.selection_set, edge, multiplier * size, path)
        return total

    def page_size(self, path: str, args: Mapping[str, Any]) -> int:
        first, last = args.get("first"), args.get("last")
        for arg, value in (("first", first), ("last", last)):
            if isinstance(value, int) and not 0 <= value <= MAX_PAGE_SIZE:
                self.cost.page_errors.append(
                    f"`{arg}` on {path} is {value}; it must be between 0 and {MAX_PAGE_SIZE} "
                    "(page with cursors)"
                )
        size = first if isinstance(first, int) else last if isinstance(last, int) else DEFAULT_PAGE_SIZE
        return max(0, min(size, MAX_PAGE_SIZE))


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
) -> Cost:
    """The cost of the operation that would run (or of the costliest, when the choice is ambiguous)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    best = Cost()
    for op in operations:
        defaults = {
            v.variable.name.value: value_from_ast_untyped(v.default_value)
            for v in op.variable_definitions or ()
            if v.default_value is not None
        }
        walker = _Walker(schema, fragments, {**defaults, **(variables or {})})
        if op.operation == OperationType.MUTATION:
            root = schema.mutation_type
            walker.cost.total = MUTATION_COST * len(op.selection_set.selections)
        elif op.operation == OperationType.SUBSCRIPTION:
            root = schema.subscription_type
        else:
            root = schema.query_type
        walker.cost.total += walker.walk(op.selection_set, root, 1, "")
        if walker.cost.total >= best.total or not best.by_field:
            best = walker.cost
    return best
