"""The gate's counts without parsing: lower bounds of what the limit rules count on the parsed document.

Documents are generated from a small grammar (aliases, arguments holding strings full of braces,
colons, quotes and hashes, block strings, comments, directives, inline fragments, introspection
fields, fragments and their spreads, commas and odd whitespace) and compared with graphql-core's
lexer and Strawberry's own depth and alias counts. Without named fragments the counts are exact.
"""

from __future__ import annotations

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse
from graphql.language import Lexer, Source, TokenKind
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.extensions.max_aliases import count_fields_with_alias
from strawberry.extensions.query_depth_limiter import determine_depth

from oro_graph.graphql.lexical import Bounds, bounds


def real(document: str) -> Bounds:
    """What graphql-core lexes and what Strawberry's limit rules count on the parsed document."""
    lexer, tokens = Lexer(Source(document)), 0
    while lexer.advance().kind != TokenKind.EOF:
        tokens += 1
    parsed = parse(document)
    fragments = {d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    aliases = sum(count_fields_with_alias(op, fragments) for op in operations)
    depth = max(
        (determine_depth(op, fragments, 0, 10**6, None, "op", None) for op in operations),  # type: ignore[arg-type]
        default=0,
    )
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


@settings(max_examples=300, deadline=None, derandomize=True)
@given(documents(named_fragments=False))
def test_without_named_fragments_the_counts_are_exact(document: str) -> None:
    assert bounds(document) == real(document), document


@settings(max_examples=300, deadline=None, derandomize=True)
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
        ("{ __schema { types { fields { type { ofType { name } } } } } }", Bounds(18, 0, 0)),
        ("# x: { {\n{ a }", Bounds(3, 0, 0)),
    ],
)
def test_hand_counted_documents(document: str, expected: Bounds) -> None:
    assert bounds(document) == expected == real(document)
