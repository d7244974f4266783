"""The limits' counts, against graphql-core's lexer, Strawberry's own alias limiter and a plain
expansion of every spread for depth (Strawberry's depth limiter skips introspection; ours does not).

- ``lexical.bounds`` (the gate, without parsing): lower bounds of tokens, aliases and depth, exact
  without named fragments.
- ``expansion.Expansion`` (on the parsed document, each fragment counted once): exactly what
  Strawberry's limiters count by expanding every spread, and still instant on a fragment bomb.

Documents are generated from a small grammar (aliases, arguments holding strings full of braces,
colons, quotes and hashes, block strings, comments, directives, inline fragments, introspection
fields, fragments and their spreads, commas and odd whitespace).
"""

from __future__ import annotations

import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from graphql.language import Lexer, Source, TokenKind
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.extensions.max_aliases import count_fields_with_alias

from oro_graph.edge.expansion import Expansion
from oro_graph.edge.lexical import Bounds, bounds


def naive_depth(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], level: int
) -> int:
    """QueryDepthLimiter's count (top-level fields at 0, inline fragments add none), expanding every
    spread and counting introspection fields like the others."""
    deepest = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            if selection.selection_set is not None:
                deepest = max(deepest, naive_depth(selection.selection_set, fragments, level + 1))
            else:
                deepest = max(deepest, level)
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, naive_depth(selection.selection_set, fragments, level))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            fragment = fragments[selection.name.value]
            deepest = max(deepest, naive_depth(fragment.selection_set, fragments, level))
    return deepest


def real(document: str) -> Bounds:
    """What graphql-core lexes and what Strawberry's limit rules count on the parsed document."""
    lexer, tokens = Lexer(Source(document)), 0
    while lexer.advance().kind != TokenKind.EOF:
        tokens += 1
    parsed = parse(document)
    fragments = {d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    aliases = sum(count_fields_with_alias(op, fragments) for op in operations)
    depth = max((naive_depth(op.selection_set, fragments, 0) for op in operations), default=0)
    return Bounds(tokens, aliases, depth)


SPACE = st.sampled_from([" ", "  ", "\n", ",", " , ", "\t", "\r\n"])
NAME = st.sampled_from(["a", "node", "on", "onX", "edges", "__typename", "b__c", "x1", "query"])
STRING = st.sampled_from(
    ['"x"', '""', '"a: { b } ( # \\" "', '"""block { a: b } "" \\""" """', '"unicode é ✓"', '"\\\\"']
)
VALUE = st.one_of(
    STRING, st.sampled_from(["1", "-2.5e3", "true", "null", "$v", "ENUM", '{k: "v", o: {p: 1}}', "[1, 2]"])
)
COMMENT = st.sampled_from(["", ' # a: { ( } "\n', " #\n"])


@st.composite
def arguments(draw: st.DrawFn) -> str:
    if not draw(st.booleans()):
        return ""
    pairs = draw(st.lists(st.tuples(NAME, VALUE), min_size=1, max_size=3))
    return "(" + draw(SPACE).join(f"{k}:{draw(SPACE)}{v}" for k, v in pairs) + ")"


@st.composite
def directives(draw: st.DrawFn) -> str:
    return "".join(f" @{name}{draw(arguments())}" for name in draw(st.lists(NAME, max_size=2)))


@st.composite
def selection_set(draw: st.DrawFn, depth: int, fragment_names: tuple[str, ...]) -> str:
    items = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["field", "field", "inline", "spread", "introspection"]))
        s = draw(SPACE)
        if kind == "spread" and fragment_names:
            items.append(f"...{s}{draw(st.sampled_from(fragment_names))}{draw(directives())}")
            continue
        child = draw(selection_set(depth - 1, fragment_names)) if depth > 0 and draw(st.booleans()) else ""
        if kind == "inline" and depth > 0:
            condition = draw(st.sampled_from(["", "on T", "on onT"]))
            items.append(f"...{s}{condition}{draw(directives())}{s}" + (child or "{ a }"))
        elif kind == "introspection":
            items.append(f'__type(name: "T"){s}' + (child or "{ name }"))
        else:
            alias = f"{draw(NAME)}{s}:{s}" if draw(st.booleans()) else ""
            items.append(f"{alias}{draw(NAME)}{draw(arguments())}{draw(directives())}{s}{child}")
    return "{" + draw(SPACE) + (draw(COMMENT) or draw(SPACE)).join(items) + draw(SPACE) + "}"


@st.composite
def documents(draw: st.DrawFn, named_fragments: bool) -> str:
    names = ("F", "G") if named_fragments else ()
    definitions = [
        f"fragment {name} on T {draw(selection_set(2, tuple(n for n in names if n < name)))}"
        for name in names
    ]
    head = draw(st.sampled_from(["", "query ", 'query Q($v: In = {a: "}"}) ', "mutation M "]))
    uses = "".join(f"...{name} " for name in names)  # every fragment is used, as validation demands
    operation = head + "{ " + uses + "x" + draw(selection_set(4, names)) + " }"
    definitions.insert(draw(st.integers(0, len(definitions))), operation)
    return draw(COMMENT).join(definitions) + draw(COMMENT)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(documents(named_fragments=False))
def test_without_named_fragments_the_counts_are_exact(document: str) -> None:
    assert bounds(document) == real(document), document


@settings(max_examples=200, deadline=None, derandomize=True)
@given(documents(named_fragments=True))
def test_with_named_fragments_each_count_is_a_lower_bound(document: str) -> None:
    found, truth = bounds(document), real(document)
    assert found.tokens == truth.tokens, document
    assert found.aliases <= truth.aliases and found.depth <= truth.depth, (found, truth, document)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{ a }", Bounds(3, 0, 0)),
        ("query { x: a { b { c } } }", Bounds(12, 1, 2)),
        ('{ a(s: "{{{{ x: y") }', Bounds(8, 0, 0)),
        ("{ a ... on T { b { c } } }", Bounds(12, 0, 1)),
        ("{ __schema { types { fields { type { ofType { name } } } } } }", Bounds(18, 0, 5)),
        ("# x: { {\n{ a }", Bounds(3, 0, 0)),
    ],
)
def test_hand_counted_documents(document: str, expected: Bounds) -> None:
    assert bounds(document) == expected == real(document)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(documents(named_fragments=True))
def test_expanded_counts_equal_the_naive_expansion(document: str) -> None:
    expansion, truth = Expansion(parse(document)), real(document)
    totals = [expansion.totals(operation) for operation in expansion.operations]
    assert sum(t.aliases for t in totals) == truth.aliases, document
    assert max(t.depth for t in totals) == truth.depth, document


def test_a_fragment_bomb_is_counted_once_per_fragment(monkeypatch: pytest.MonkeyPatch) -> None:
    # given 60 fragments, each spreading the one before twice (2^60 expansions)
    fragments = ["fragment F0 on Query { currentSuite { suiteId } }"] + [
        f"fragment F{i} on Query {{ ...F{i - 1} a{i}: __typename ...F{i - 1} }}" for i in range(1, 61)
    ]
    document = parse("{ ...F60 } " + " ".join(fragments))
    calls = 0
    selections = Expansion._selections

    def counted(self: Expansion, selection_set: object) -> object:
        nonlocal calls
        calls += 1
        return selections(self, selection_set)  # type: ignore[arg-type]

    monkeypatch.setattr(Expansion, "_selections", counted)

    # when
    expansion = Expansion(document)
    [totals] = [expansion.totals(operation) for operation in expansion.operations]

    # then the totals are those of the expanded document, from one visit per selection set
    assert totals.fields == 3 * 2**60 - 1 and totals.aliases == 2**60 - 1
    assert calls <= 2 * len(fragments) + 2, calls


@pytest.mark.parametrize(("copies", "pairs"), [(30, 2 * 435), (50, 2 * 1225)])
def test_repeated_pairs_count_fields_at_one_response_path(copies: int, pairs: int) -> None:
    document = parse("{ " + "currentSuite { suiteId } " * copies + "x: currentSuite { suiteId } }")
    [operation] = Expansion(document).operations
    assert Expansion(document).repeated_pairs(operation) == (pairs, "currentSuite", copies)
