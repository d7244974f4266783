"""Documents generated from the schema itself, for the whole-schema equality test.

``Walker.plan`` walks the graph breadth-first from the Query root: every field of every reachable
object type, each type expanded in full once (at its shallowest place, so its parent is most likely
there), elsewhere only its scalars; abstract types through an inline fragment per possible type;
connections a page of ``PAGE``. Required arguments come from ``Pool``: values of the same name seen
in earlier answers (an ``id`` of the type the field returns, a ``hotkey``...), so a first pass over
the fields that need none finds the ids of the second. A last pass expands again, in each document,
the types whose fields no answer has shown yet (their first place was empty). Each root field is a
document of its own (an error stays in it).

Every object selects ``__typename`` and a field is aliased only beside another type's field of the
same name (``ALIAS``), so ``Pool.record`` can tell which type's fields an answer showed
(``Pool.exercised``): a field counts once it was answered, without an error, on an object that was
there. A field with an argument the pool cannot fill is left out (``Plan.unfilled``), and shows up in
the test as not covered.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
)

PAGE = 2
HOPS = 1  # how far up from a type with unanswered fields ``Walker.plan`` expands again
ALIAS = "__as"  # ``name__asType``: a field beside another type's field of the same name (``_Node.render``)
Key = tuple[str, str]  # (type name, field name)


@dataclass
class Pool:
    """Leaf values seen in answers, by (type, field) and by field name; and what answers showed."""

    by_field: dict[Key, list[Any]] = field(default_factory=lambda: defaultdict(list))
    by_name: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    exercised: set[Key] = field(default_factory=set)

    def record(self, body: dict[str, Any], root: str) -> None:
        """Note the values and the fields an answer (``{"data", "errors"}``) shows."""
        broken = {tuple(e.get("path") or ()) for e in body.get("errors") or ()}
        data = body.get("data") or {}
        for name, value in data.items():
            if (name,) not in broken:
                self.exercised.add((root, name))
            self._walk(value, (name,), broken)

    def _walk(self, value: Any, path: tuple[Any, ...], broken: set[tuple[Any, ...]]) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                self._walk(item, (*path, i), broken)
            return
        if not isinstance(value, dict):
            return
        type_name = value.get("__typename")
        for key, child in value.items():
            name = key.split(ALIAS)[0] if not key.startswith("__") else key
            if type_name is not None and name != "__typename" and (*path, key) not in broken:
                self.exercised.add((type_name, name))
                if child is not None and not isinstance(child, dict | list):
                    self._keep((type_name, name), child)
            self._walk(child, (*path, key), broken)

    def _keep(self, key: Key, value: Any) -> None:
        seen = self.by_field[key]
        if value not in seen and len(seen) < 8:
            seen.append(value)
            self.by_name[key[1]].append(value)


@dataclass
class Plan:
    """One document per root field, and the fields left out for want of an argument."""

    documents: dict[str, str]
    unfilled: set[Key]
    trees: dict[str, _Node | _Abstract | None]

    def accepted(self, accepts: Callable[[str], bool]) -> dict[str, str]:
        """Each root field's document cut down to the fields ``accepts`` takes (the compiler): a field
        is kept when the document asking only for it, down its path, is accepted. Root fields of
        which nothing is accepted are left out."""
        out = {}
        for written, tree in self.trees.items():
            if isinstance(tree, _Node):
                kept = _prune([written], tree, accepts)
                if kept is not None:
                    out[written] = f"query {{ {written} {kept} }}"
        return out


class Walker:
    """Builds ``Plan`` for a schema, leaving out ``excluded`` fields, ``depth`` object levels deep."""

    def __init__(
        self, schema: GraphQLSchema, excluded: set[Key], given: dict[Key, dict[str, str]], depth: int = 9
    ) -> None:
        self.schema = schema
        self.excluded = excluded
        self.given = given
        self.depth = depth

    def reachable(self) -> set[Key]:
        """Every (type, field) of an object type reachable from the Query root, exclusions pruned."""
        root = self.schema.query_type
        assert root is not None
        out: set[Key] = set()
        todo, seen = [root.name], {root.name}
        while todo:
            for type_name in self._concrete(self.schema.type_map[todo.pop()]):
                gql_type = self.schema.type_map[type_name]
                assert isinstance(gql_type, GraphQLObjectType)
                for name, gql_field in gql_type.fields.items():
                    if (type_name, name) in self.excluded:
                        continue
                    out.add((type_name, name))
                    named = get_named_type(gql_field.type)
                    if not is_leaf_type(named) and named.name not in seen:
                        seen.add(named.name)
                        todo.append(named.name)
        return out

    def plan(self, pool: Pool, again: bool = False) -> Plan:
        """Breadth first from the root: a type's fields in full where it first appears (and, when
        ``again``, the types whose fields the answers have not all shown in each document)."""
        root = self.schema.query_type
        assert root is not None
        unfilled: set[Key] = set()
        expanded: set[str | tuple[str, str]] = {root.name}
        # A type with fields still unanswered (its first place was empty: a running race has no
        # weights yet), or that leads to one in a few steps, is expanded once in each document.
        incomplete = self._incomplete(pool) if again else set()
        tree = _Node(root)
        queue: list[tuple[_Node, int, str]] = [(tree, 0, "")]
        while queue:
            node, level, document = queue.pop(0)
            for name, gql_field in node.gql_type.fields.items():
                key = (node.gql_type.name, name)
                if key in self.excluded:
                    continue
                args = self._arguments(node.gql_type, name, gql_field, pool)
                if args is None:
                    unfilled.add(key)
                    continue
                named = get_named_type(gql_field.type)
                if is_leaf_type(named):
                    node.children.append((f"{name}{args}", None))
                    continue
                if level + 1 > self.depth:
                    continue
                children = []
                for concrete in self._concrete(named):
                    gql_type = self.schema.type_map[concrete]
                    assert isinstance(gql_type, GraphQLObjectType)
                    child = _Node(gql_type)
                    here = document or name
                    seen = (here, concrete) if concrete in incomplete else concrete
                    if seen in expanded:
                        child.leaves_only()
                    else:
                        expanded.add(seen)
                        queue.append((child, level + 1, here))
                    children.append(child)
                abstract = not isinstance(named, GraphQLObjectType)
                node.children.append((f"{name}{args}", _Abstract(children) if abstract else children[0]))
        documents = {
            name: f"query {{ {name} {child.render() if child else ''} }}" for name, child in tree.children
        }
        return Plan(documents, unfilled, dict(tree.children))

    def _incomplete(self, pool: Pool) -> set[str]:
        """Types with a field no answer showed yet, and the types that lead to one in ``HOPS`` steps
        (not all: nearly every type leads to a race, and every document would hold them all)."""
        fields = self.reachable()
        out = {type_name for type_name, name in fields - pool.exercised}
        for _ in range(HOPS):
            for type_name, name in sorted(fields):
                if type_name in out:
                    continue
                gql_type = self.schema.type_map[type_name]
                assert isinstance(gql_type, GraphQLObjectType)
                if set(self._concrete(get_named_type(gql_type.fields[name].type))) & out:
                    out.add(type_name)
        return out

    def _concrete(self, named: GraphQLNamedType) -> list[str]:
        if isinstance(named, GraphQLObjectType):
            return [named.name]
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            return sorted(t.name for t in self.schema.get_possible_types(named))
        return []

    def _arguments(
        self, owner: GraphQLObjectType, name: str, gql_field: GraphQLField, pool: Pool
    ) -> str | None:
        """The field's arguments as written in the document: the required ones from the pool (None
        when one cannot be filled) and a small page for a connection."""
        given = []
        returns = get_named_type(gql_field.type)
        fixed = self.given.get((owner.name, name), {})
        for arg_name, arg in gql_field.args.items():
            if arg_name in fixed:
                given.append(f"{arg_name}: {fixed[arg_name]}")
                continue
            if arg_name == "first" and returns.name.endswith("Connection"):
                given.append(f"first: {PAGE}")
                continue
            if not isinstance(arg.type, GraphQLNonNull) or arg.default_value is not _undefined():
                continue
            value = _fill(arg_name, arg, returns, pool)
            if value is None:
                return None
            given.append(f"{arg_name}: {value}")
        return f"({', '.join(given)})" if given else ""


def _undefined() -> Any:
    from graphql.pyutils import Undefined

    return Undefined


def _fill(arg_name: str, arg: GraphQLArgument, returns: GraphQLNamedType, pool: Pool) -> str | None:
    """A literal for a required argument: a value seen under the same name (of the returned type
    first), the first value of an enum, ``true``; None when nothing fits."""
    nullable = get_nullable_type(arg.type)
    listed = isinstance(nullable, GraphQLList)
    named = get_named_type(arg.type)
    if isinstance(named, GraphQLEnumType):
        value = next(iter(named.values))
        return f"[{value}]" if listed else value
    if named is GraphQLBoolean:
        return "true"
    if isinstance(named, GraphQLInputObjectType):
        return None
    singular = arg_name[:-1] if listed and arg_name.endswith("s") else arg_name
    candidates = list(pool.by_field.get((returns.name, singular), ()))
    if not candidates and named is GraphQLID and singular == "id":
        # an interface (``Node``): one id of each type the pool knows
        candidates = [v[0] for (t, n), v in sorted(pool.by_field.items()) if n == "id" and v]
    if not candidates:
        candidates = list(pool.by_name.get(singular, ()))
    if named is GraphQLInt:
        candidates = [c for c in candidates if isinstance(c, int) and not isinstance(c, bool)]
    if not candidates:
        return None
    if listed:
        return "[" + ", ".join(_literal(c, named) for c in candidates[:4]) + "]"
    return _literal(candidates[0], named)


def _literal(value: Any, named: GraphQLNamedType) -> str:
    if named is GraphQLID or isinstance(value, str):
        return json.dumps(str(value))
    return json.dumps(value)


class _Node:
    def __init__(self, gql_type: GraphQLObjectType) -> None:
        self.gql_type = gql_type
        self.children: list[tuple[str, _Node | _Abstract | None]] = []

    def leaves_only(self) -> None:
        for name, gql_field in self.gql_type.fields.items():
            if is_leaf_type(get_named_type(gql_field.type)) and not _required(gql_field):
                self.children.append((name, None))

    def render(self, taken: dict[str, str] | None = None) -> str:
        """The selection; beside other types' fragments (``taken``: their fields' types by name), a
        field of the same name and another type is aliased ``name__Type`` (they could not merge)."""
        parts = ["__typename"]
        for written, child in self.children:
            name = written.split("(")[0]
            shown = str(self.gql_type.fields[name].type)
            key = written
            if taken is not None:
                if taken.setdefault(name, shown) != shown:
                    key = f"{name}{ALIAS}{self.gql_type.name}: {written}"
            parts.append(f"{key} {child.render()}" if child else key)
        return "{ " + " ".join(parts) + " }"


class _Abstract:
    def __init__(self, children: list[_Node]) -> None:
        self.children = children

    def render(self) -> str:
        taken: dict[str, str] = {}
        parts = [f"... on {child.gql_type.name} {child.render(taken)}" for child in self.children]
        return "{ __typename " + " ".join(parts) + " }"


def _required(gql_field: GraphQLField) -> bool:
    return any(
        isinstance(a.type, GraphQLNonNull) and a.default_value is _undefined()
        for a in gql_field.args.values()
    )


def _wrap(path: list[str], selection: str) -> str:
    return "query { " + " { ".join(path) + f" {selection}" + " }" * len(path)


def _prune(path: list[str], node: _Node, accepts: Callable[[str], bool]) -> str | None:
    if not accepts(_wrap(path, "{ __typename }")):
        return None
    kept = ["__typename"]
    for written, child in node.children:
        if child is None:
            if accepts(_wrap(path, f"{{ __typename {written} }}")):
                kept.append(written)
        elif isinstance(child, _Node):
            inner = _prune([*path, written], child, accepts)
            if inner is not None:
                kept.append(f"{written} {inner}")
    return "{ " + " ".join(kept) + " }"
