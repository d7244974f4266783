"""A validated query operation as one PostgreSQL statement that builds its whole ``data`` as JSON.

Objects become JSON text (``_object``), to-one fields correlated subqueries, connections a keyset page
(the resolvers' order, window and cursors) aggregated with ``string_agg``. Anything the mapping does
not cover raises ``Decline`` and the executor answers: an unknown field, a directive, a fragment on
another type, ``last``/``before``, filters, an argument that would be an error. Conditions that the
executor would answer with an error (no active suite) are computed by the statement itself as
``ok``: when false, the answer is thrown away and the executor answers, error included.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLID,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    value_from_ast,
)
from sqlalchemy import (
    JSON,
    Boolean,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    not_,
    null,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from oro_graph.graphql.ids import int_id, parse_node_id, uuid_id
from oro_graph.graphql.sqlcompile import wire
from oro_graph.graphql.sqlcompile.mapping import (
    AGENT,
    ROOT_CONNECTIONS,
    RUN,
    SUITE,
    TYPES,
    VERSION,
    BoardSrc,
    Env,
    KeyRow,
    Leaf,
    Many,
    One,
    Src,
    released,
)
from oro_graph.graphql.sqlcompile.selection import (
    Decline,
    arguments,
    fields,
    forward_window,
    node_fields,
    object_type,
    typed_fields,
)
from oro_graph.models import AgentVersionState
from oro_graph.services.pages import _beyond
from oro_graph.services.suites import MAX_SUITE_ID

ID_TYPE = GraphQLNonNull(GraphQLID)


@dataclass(frozen=True)
class Compiled:
    """The statement (one row: ``data`` as JSON text, ``ok``) for one operation, the parameters each
    execution computes, and the variables its shape depends on (it serves any values of the others)."""

    statement: Select[Any]
    params: dict[str, Callable[[dict[str, Any], datetime], Any]]
    structural: frozenset[str]
    # its text for the driver, made on first run (``driver.Prepared``)
    prepared: list[Any] = dataclasses.field(default_factory=list, compare=False, repr=False)


def compile_operation(schema: GraphQLSchema, operation: OperationDefinitionNode, env: Env) -> Compiled | None:
    """The operation as one statement, or None when the compiler declines it."""
    if operation.operation != OperationType.QUERY or operation.directives:
        return None
    root = schema.query_type
    assert root is not None
    try:
        guards: list[ColumnElement[bool]] = []
        pairs: list[Any] = []
        for key, node in fields(operation.selection_set, root.name, env):
            pairs += [key, _root_field(root, node, env, guards)]
        data = _object(pairs)
    except Decline:
        return None
    ok = and_(true(), *guards)
    statement = select(cast(data, Text).label("data"), ok.label("ok"))
    return Compiled(statement, dict(env.params), frozenset(env.structural))


def _object(pairs: list[Any]) -> ColumnElement[Any]:
    """``{"key":value,...}`` from (key, value) pairs, written as Python's ``json.dumps`` with the
    graph's separators writes it (no spaces), so the answer's text can be sent as it is
    (``wire.Answer``); ``json_build_object`` puts a space around every colon and after every comma."""
    parts: list[Any] = []
    for i in range(0, len(pairs), 2):
        key, value = pairs[i], pairs[i + 1]
        parts += [wire.text(("{" if i == 0 else ",") + json.dumps(key) + ":"), wire.json_text(value)]
    parts.append(wire.text("}"))
    return type_coerce(wire.concat(*parts), JSON)


def _build(
    type_name: str, gql_type: GraphQLObjectType, src: Src, node: FieldNode, env: Env
) -> ColumnElement[Any]:
    """The JSON object ``node``'s selection asks of one row of ``type_name``."""
    mapping = TYPES.get(type_name)
    if mapping is None:
        raise Decline
    pairs: list[Any] = []
    for key, child, field in typed_fields(type_name, gql_type, node, env):
        name = child.name.value
        if name == "__typename":
            pairs += [key, wire.json_constant(type_name)]
            continue
        spec = mapping.fields.get(name)
        if spec is None or field is None:
            raise Decline
        args = arguments(child, field, env)
        if isinstance(spec, Leaf):
            if args:
                raise Decline
            value = spec.json(src, env)
        elif isinstance(spec, One):
            if args:
                raise Decline
            value = _one(spec, src, child, field, env)
        else:
            value = _connection(spec, src, child, field, args, env)
        pairs += [key, value]
    return _object(pairs)


def _one(spec: One, src: Src, node: FieldNode, field: GraphQLField, env: Env) -> ColumnElement[Any]:
    if spec.key is not None:
        parent_column, target_column = spec.key
        try:
            return _build(
                spec.target, object_type(field), KeyRow({target_column: src.c[parent_column]}), node, env
            )
        except KeyError:  # a field reads more than the key
            pass
    row = spec.row(src, env) if spec.row is not None else None
    if row is not None:
        built = _build(spec.target, object_type(field), row, node, env)
        return type_coerce(case((spec.where(src, row, env), built), else_=null()), JSON)
    child = spec.table.alias()
    built = _build(spec.target, object_type(field), child, node, env)
    return (
        select(built)
        .select_from(child)
        .where(spec.where(src, child, env))
        .correlate_except(child)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class _Page:
    """A keyset page's rows: ``n`` wanted, their keys, how to build a row. A numbered page reads one
    more row (is there a next page) and numbers them (``rn``); a page that is not numbered reads the
    ``n`` rows alone, for a selection without ``pageInfo`` (``_wants_page_info``)."""

    inner: Any  # the page: a lateral subquery of the rows' columns, their sort keys ``k0``... (and ``rn``)
    rows: Any  # the FROM clause the nodes are built over (``inner``, with joins a row needs)
    src: Src
    keys: list[tuple[str, Any]]
    n: int
    after: bool
    # the page's order for an aggregate over its rows: ``rn``, or the sort keys when not numbered
    position: list[Any]
    numbered: bool = True

    @property
    def shown(self) -> ColumnElement[bool] | None:
        """Which of the rows read are the page's (None: all of them)."""
        return self.inner.c.rn <= self.n if self.numbered else None


def _connection(
    spec: Many, src: Src, node: FieldNode, field: GraphQLField, args: dict[str, Any], env: Env
) -> ColumnElement[Any]:
    n, after = forward_window(args, spec.order_name, {"filter", "orderBy"})
    keyed = spec.table.alias()
    order = [(keyed.c[name], desc) for name, desc, _ in spec.order]
    where = [spec.link(src, keyed, env)]
    if after is not None:
        where.append(_beyond(tuple(order), after, forward=True))
    # The rows' own columns, less those a heartbeat sets unless asked for (``Many.deferred``): an
    # answer that does not show them does not depend on them (``oro_graph.dependencies``).
    asked = node_fields(node, object_type(field), env)
    skipped = {column for name, column in spec.deferred.items() if name not in asked}
    columns: list[Any] = [c for c in keyed.c if c.name not in skipped]
    columns += [src.c[parent].label(name) for name, parent in spec.carried.items()]
    numbered = _wants_page_info(node, object_type(field), env)
    inner = _keyset_page(select(*columns), order, where, n, numbered).correlate_except(keyed).lateral()
    keys = [(kind, inner.c[f"k{i}"]) for i, (_, _, kind) in enumerate(spec.order)]
    position = (
        [inner.c.rn]
        if numbered
        else _order_by([(inner.c[f"k{i}"], desc) for i, (_, desc, _) in enumerate(spec.order)])
    )
    page = _Page(inner, inner, inner, keys, n, after is not None, position, numbered)
    counted = spec.table.alias()
    total = (
        select(func.count())
        .select_from(counted)
        .where(spec.link(src, counted, env))
        .correlate_except(counted)
        .scalar_subquery()
    )
    return _page_json(spec.target, spec.order_name, page, total, node, field, env)


def _keyset_page(
    rows: Select[Any], order: list[tuple[Any, bool]], where: list[Any], n: int, numbered: bool = True
) -> Select[Any]:
    """``rows`` with the page's sort keys (``k0``, ``k1``, ...), past ``where``, in ``order``. Numbered:
    with their position (``rn``), the page's n rows and one more (is there a next page); otherwise the
    n rows alone (a window function over every page costs the database more than the sort keys)."""
    keys = [c.label(f"k{i}") for i, (c, _) in enumerate(order)]
    if numbered:
        keys.append(func.row_number().over(order_by=_order_by(order)).label("rn"))
    return rows.add_columns(*keys).where(*where).order_by(*_order_by(order)).limit(n + 1 if numbered else n)


def _wants_page_info(node: FieldNode, connection_type: GraphQLObjectType, env: Env) -> bool:
    """Whether a connection's selection asks for its ``pageInfo`` (the only reader of the row past
    the page and of the rows' positions, besides a board's rank)."""
    return any(
        child.name.value == "pageInfo" for _, child in fields(node.selection_set, connection_type.name, env)
    )


def _order_by(order: list[tuple[Any, bool]]) -> list[Any]:
    return [c.desc() if desc else c.asc() for c, desc in order]


def _page_json(
    target: str,
    order_name: str,
    page: _Page,
    total: ColumnElement[int],
    node: FieldNode,
    field: GraphQLField,
    env: Env,
) -> ColumnElement[Any]:
    """A Connection's JSON over a page: edges, pageInfo, totalCount (``to_connection``)."""
    connection_type = object_type(field)
    cursor = wire.cursor(order_name, page.keys)
    pairs: list[Any] = []
    aggregated = False  # whether edges or pageInfo aggregate the page's rows
    for key, child, child_field in typed_fields(connection_type.name, connection_type, node, env):
        name = child.name.value
        aggregated |= name in {"edges", "pageInfo"}
        if name == "__typename":
            value: Any = wire.json_constant(connection_type.name)
        elif name == "totalCount":
            value = total
        elif name == "edges" and child_field is not None:
            edge = _edge(target, page, cursor, child, object_type(child_field), env)
            items: Any = func.string_agg(
                wire.json_text(edge), aggregate_order_by(wire.text(","), *page.position)
            )
            if page.shown is not None:
                items = items.filter(page.shown)
            shown_items = func.coalesce(items, wire.text(""))  # none on an empty page
            value = type_coerce(wire.concat(wire.text("["), shown_items, wire.text("]")), JSON)
        elif name == "pageInfo" and child_field is not None:
            value = _page_info(page, cursor, child, object_type(child_field), env)
        else:
            raise Decline
        if child.arguments:
            raise Decline
        pairs += [key, value]
    if not aggregated:
        # Nothing aggregates the page's rows: over them the object would be one row per page row
        # (none on an empty page: a null connection), so it is built without them.
        return select(_object(pairs)).scalar_subquery()
    return select(_object(pairs)).select_from(page.rows).scalar_subquery()


def _edge(
    target: str, page: _Page, cursor: Any, node: FieldNode, edge_type: GraphQLObjectType, env: Env
) -> ColumnElement[Any]:
    pairs: list[Any] = []
    for key, child, child_field in typed_fields(edge_type.name, edge_type, node, env):
        name = child.name.value
        if name == "__typename":
            value: Any = wire.json_constant(edge_type.name)
        elif name == "cursor":
            value = cursor
        elif name == "node" and child_field is not None:
            value = _build(target, object_type(child_field), page.src, child, env)
        else:
            raise Decline
        pairs += [key, value]
    return _object(pairs)


def _page_info(
    page: _Page, cursor: Any, node: FieldNode, info_type: GraphQLObjectType, env: Env
) -> ColumnElement[Any]:
    assert page.shown is not None, "pageInfo reads a numbered page"
    cursors = type_coerce(
        func.array_agg(aggregate_order_by(cursor, *page.position)).filter(page.shown), ARRAY(Text)
    )
    pairs: list[Any] = []
    for key, child, _ in typed_fields(info_type.name, info_type, node, env):
        name = child.name.value
        if name == "__typename":
            value: Any = wire.json_constant(info_type.name)
        elif name == "hasNextPage":
            value = func.count() > page.n
        elif name == "hasPreviousPage":
            value = cast(literal(page.after), Boolean)
        elif name == "startCursor":
            value = cursors[1]
        elif name == "endCursor":
            value = cursors[func.least(func.count(), page.n)]
        else:
            raise Decline
        pairs += [key, value]
    return _object(pairs)


# Root fields -------------------------------------------------------------------------------------


def _root_field(
    root: GraphQLObjectType, node: FieldNode, env: Env, guards: list[ColumnElement[bool]]
) -> ColumnElement[Any]:
    name = node.name.value
    if name == "__typename":
        return wire.json_constant(root.name)
    field = root.fields.get(name)
    if field is None:
        raise Decline
    if name == "leaderboard":
        return _leaderboard(node, field, arguments(node, field, env), env, guards)
    connection = ROOT_CONNECTIONS.get(name)
    if connection is not None:  # its filter and orderBy decline (``forward_window``)
        return _connection(connection, None, node, field, arguments(node, field, env), env)
    by_id = _BY_ID.get(name)
    if by_id is None:
        raise Decline
    type_name, table, parse, visible = by_id
    if set(arguments(node, field, env, bound="id")) != {"id"}:
        raise Decline
    row = table.alias()
    where = row.c.id == _bound_id(node, type_name, parse, table.c.id.type, env)
    if visible:
        where = where & released(row, env)
    built = _build(type_name, object_type(field), row, node, env)
    return select(built).select_from(row).where(where).scalar_subquery()


def _bound_id(node: FieldNode, type_name: str, parse: Any, sql_type: Any, env: Env) -> Any:
    """The ``id`` argument as ``parse_node_id`` reads it (null when it is no id: no row, a null answer):
    a parameter when it is a variable, so the statement serves every id (a page per version)."""
    (argument,) = [a for a in node.arguments or () if a.name.value == "id"]
    if not isinstance(argument.value, VariableNode):
        return literal(
            parse_node_id(str(value_from_ast(argument.value, ID_TYPE)), type_name, parse), sql_type
        )
    variable = argument.value.name.value
    param = f"id_{type_name}_{variable}"
    env.params[param] = lambda variables, now: parse_node_id(str(variables[variable]), type_name, parse)
    return bindparam(param, type_=sql_type)


_BY_ID = {
    "agentVersion": ("AgentVersion", VERSION, uuid_id, True),
    "agent": ("Agent", AGENT, uuid_id, False),
    "evaluationRun": ("EvaluationRun", RUN, uuid_id, False),
}

BOARD_ORDER = (
    ("final_score", True, wire.FLOAT),
    ("eligible_at", False, wire.DATETIME),
    ("id", False, wire.UUID),
)


def _leaderboard(
    node: FieldNode, field: GraphQLField, args: dict[str, Any], env: Env, guards: list[ColumnElement[bool]]
) -> ColumnElement[Any]:
    """``services.leaderboard.board_window`` without a search, ``asOf`` or filter."""
    n, after = forward_window(args, "board", {"search", "asOf", "filter"}, frozenset({"suiteId"}))
    suite_id = args.get("suiteId")
    if suite_id is None:
        active = SUITE.alias()
        suite: Any = (
            select(active.c.id)
            .where(active.c.is_active)
            .order_by(active.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        guards.append(suite.is_not(None))
    else:
        if int_id(str(suite_id)) is None or not 0 < suite_id <= MAX_SUITE_ID:
            raise Decline
        named = SUITE.alias()
        guards.append(select(named.c.id).where(named.c.id == suite_id).exists())
        suite = literal(suite_id)

    def board(version: Any) -> list[ColumnElement[bool]]:
        return [version.c.suite_id == suite, version.c.state == AgentVersionState.ELIGIBLE.value]

    keyed = VERSION.alias()
    order = [(keyed.c[name], desc) for name, desc, _ in BOARD_ORDER]
    where = board(keyed)
    if after is not None:
        where.append(_beyond(tuple(order), after, forward=True))
    inner = _keyset_page(select(*keyed.c), order, where, n).lateral()
    # Ranks are over the whole board: the rows at or before the cursor come first.
    ahead: Any = literal(0)
    if after is not None:
        before = VERSION.alias()
        before_order = tuple((before.c[name], desc) for name, desc, _ in BOARD_ORDER)
        ahead = (
            select(func.count())
            .select_from(before)
            .where(*board(before), not_(_beyond(before_order, after, forward=True)))
            .scalar_subquery()
        )
    agent = AGENT.alias()
    rows = inner.join(agent, agent.c.id == inner.c.agent_id)
    env.join(inner, "Agent", agent)  # an entry's ``agentVersion { agent }`` is this row
    src = BoardSrc(inner, agent, ahead + inner.c.rn, suite)
    page = _Page(
        inner,
        rows,
        src,
        [(kind, inner.c[f"k{i}"]) for i, (_, _, kind) in enumerate(BOARD_ORDER)],
        n,
        after is not None,
        [inner.c.rn],  # numbered always: the rank is the position
    )
    counted = VERSION.alias()
    total = select(func.count()).select_from(counted).where(*board(counted)).scalar_subquery()
    return _page_json("LeaderboardEntry", "board", page, total, node, field, env)
