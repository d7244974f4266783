"""The canonical form validity and compiled plans are shared under: the same for documents that
differ by comments and layout only, different whenever a token differs."""

from __future__ import annotations

import pytest
from graphql import parse
from graphql.language import Lexer, Source, TokenKind

from oro_graph.edge.lexical import canonical

BASE = 'query Q($n: Int = 1) { a(s: "x, y # z", b: """ block "" \\""" # no """) { b c } }'


def tokens(document: str) -> list[tuple[TokenKind, str | None]]:
    lexer, found = Lexer(Source(document)), []
    while (token := lexer.advance()).kind != TokenKind.EOF:
        found.append((token.kind, token.value))
    return found


@pytest.mark.parametrize(
    "copy",
    [
        "# stamp 1\n" + BASE,
        "\ufeff" + BASE.replace(") { b c } }", ")\n\t{ ,b\r\n c }   }") + "\r\n# end",
        BASE.replace("query Q($n: Int = 1)", "query\tQ( $n :Int=1 ,)"),
        BASE.replace("{ ", "{,,").replace(" }", "#c\n}"),
    ],
)
def test_a_copy_by_comments_and_layout_has_the_same_form_and_tokens(copy: str) -> None:
    assert canonical(copy) == canonical(BASE)
    assert tokens(copy) == tokens(BASE)


@pytest.mark.parametrize(
    "other",
    [
        BASE.replace('"x, y # z"', '"x,y # z"'),  # inside a string, a comma and a space are content
        BASE.replace("# no", "#no"),  # inside a block string, a '#' starts no comment
        BASE.replace("b c", "bc"),
        BASE.replace("= 1", "= 12"),
    ],
)
def test_a_document_with_other_tokens_has_another_form(other: str) -> None:
    parse(other)
    assert tokens(other) != tokens(BASE)
    assert canonical(other) != canonical(BASE)


def test_the_form_parses_to_the_same_tokens() -> None:
    assert tokens(canonical("# a\n" + BASE)) == tokens(BASE)
    assert canonical("{\n  a # x\n  b\n}\n") == "{a b}"
    assert canonical("query  Q ( $n : Int ) { ... F }") == "query Q($n:Int){... F}"


def test_a_repeated_small_document_is_looked_up_not_lexed_again():
    from oro_graph.edge import lexical

    document = "query Board { leaderboard(first: 3) { edges { node { id } } } }  # v1"
    before = lexical._canonical_memo.cache_info()
    first = lexical.canonical(document)
    again = lexical.canonical("".join(document))  # an equal string, not the same object
    after = lexical._canonical_memo.cache_info()
    assert first == again == "query Board{leaderboard(first:3){edges{node{id}}}}"
    assert after.hits - before.hits >= 1
    big = "{ __typename }" + " " * lexical.MEMO_CHARS
    held = lexical._canonical_memo.cache_info().currsize
    assert lexical.canonical(big) == "{__typename}"
    assert lexical._canonical_memo.cache_info().currsize == held  # large documents are not kept
