"""Walking a validated operation's selections for the compiler: the fields a selection set asks of a
type (fragments merged), argument values and the variables the statement's shape depends on, and the
forward window of a connection. Anything the compiler does not cover raises ``Decline``."""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    value_from_ast,
)
from graphql.pyutils import Undefined

from oro_graph.graphql.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decode_cursor
from oro_graph.graphql.sqlcompile.mapping import Env


class Decline(Exception):
    """The compiler does not cover this selection: the executor answers it."""


def fields(selection_set: SelectionSetNode | None, type_name: str, env: Env) -> list[tuple[str, FieldNode]]:
    """The fields a selection set asks of ``type_name`` (fragments on it merged), by response key."""
    if selection_set is None:
        raise Decline
    out: list[tuple[str, FieldNode]] = []
    for selection in selection_set.selections:
        if selection.directives:
            raise Decline
        if isinstance(selection, FieldNode):
            out.append((selection.alias.value if selection.alias else selection.name.value, selection))
            continue
        if isinstance(selection, InlineFragmentNode):
            condition, inner = selection.type_condition, selection.selection_set
        elif isinstance(selection, FragmentSpreadNode):
            fragment = env.fragments.get(selection.name.value)
            if fragment is None:
                raise Decline
            fragment = getattr(fragment, "definition", fragment)  # graphql-core keeps FragmentDetails
            if fragment.directives:
                raise Decline
            condition, inner = fragment.type_condition, fragment.selection_set
        else:
            raise Decline
        if condition is not None and condition.name.value != type_name:
            raise Decline
        out += fields(inner, type_name, env)
    keys = [key for key, _ in out]
    if len(set(keys)) != len(keys):  # the same key twice: merging is left to the executor
        raise Decline
    return out


def arguments(node: FieldNode, field: GraphQLField, env: Env, bound: str | None = None) -> dict[str, Any]:
    """The field's argument values. The statement's shape depends on the variables they name, except
    for the argument ``bound`` given as a bare variable: its value is a parameter (``_bound``)."""
    given: dict[str, Any] = {}
    for argument in node.arguments or ():
        definition = field.args.get(argument.name.value)
        if definition is None:
            raise Decline
        if not (argument.name.value == bound and isinstance(argument.value, VariableNode)):
            env.structural.update(variables_in(argument.value))
        value = value_from_ast(argument.value, definition.type, env.variables)
        if value is Undefined:  # a variable left out: the argument is absent (values were coerced already)
            continue
        given[argument.name.value] = value
    return given


def variables_in(value: ValueNode) -> set[str]:
    if isinstance(value, VariableNode):
        return {value.name.value}
    if isinstance(value, ListValueNode):
        return set().union(*(variables_in(v) for v in value.values))
    if isinstance(value, ObjectValueNode):
        return set().union(*(variables_in(f.value) for f in value.fields))
    return set()


def typed_fields(
    type_name: str, gql_type: GraphQLObjectType, node: FieldNode, env: Env
) -> list[tuple[str, FieldNode, GraphQLField | None]]:
    out = []
    for key, child in fields(node.selection_set, type_name, env):
        name = child.name.value
        out.append((key, child, None if name == "__typename" else gql_type.fields.get(name)))
    return out


def object_type(field: GraphQLField) -> GraphQLObjectType:
    named = get_named_type(field.type)
    if not isinstance(named, GraphQLObjectType):
        raise Decline
    return named


def forward_window(
    args: dict[str, Any], order_name: str, unset: set[str], allowed: frozenset[str] = frozenset()
) -> tuple[int, tuple[Any, ...] | None]:
    """``make_window``'s checks, forward pages only; an argument of ``unset`` given declines."""
    if set(args) - unset - allowed - {"first", "after", "last", "before"}:
        raise Decline
    if any(args.get(k) is not None for k in unset | {"last", "before"}):
        raise Decline
    first = args.get("first")
    if first is None:
        first = DEFAULT_PAGE_SIZE
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise Decline
    after = args.get("after")
    if not after:
        return first, None
    try:
        return first, decode_cursor(order_name, after)
    except GraphQLError:
        raise Decline from None


def node_fields(node: FieldNode, connection_type: GraphQLObjectType, env: Env) -> set[str]:
    """The field names a connection's selection asks of its nodes (``edges { node { ... } }``)."""
    edge_type = object_type(connection_type.fields["edges"])
    names: set[str] = set()
    for _, edges in fields(node.selection_set, connection_type.name, env):
        if edges.name.value == "edges":
            for _, child in fields(edges.selection_set, edge_type.name, env):
                if child.name.value == "node":
                    node_type = object_type(edge_type.fields["node"])
                    names |= {f.name.value for _, f in fields(child.selection_set, node_type.name, env)}
    return names
