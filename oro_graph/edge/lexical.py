"""Lower bounds of a document's tokens, aliases and depth, counted without parsing it.

graphql-core's parser is pure Python (about 10 µs a token on the 2-core test machine), and every
limit rule needs the parsed document, so a 1,200-token alias fan-out cost 21 ms to refuse and a
5,000-token document (the budget then) 55 ms. These counts use regular expressions with a literal
prefix and byte translation, which run in C: a 30 KB document costs tens of microseconds.

Each count is a lower bound of what the limit rules count on the parsed document (strings and
comments are stripped first, arguments do not count, inline fragments do not deepen), so refusing
on them never refuses a document the rules would admit. A document they cannot judge cheaply goes
on to the parser and the rules, as before.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from itertools import accumulate

# A string becomes one '"' (it is one token); a comment is dropped. Block strings first.
_STRING = re.compile(r'"""(?:\\"""|[^"]|"(?!""))*"""|"(?:\\.|[^"\\\n\r])*"')
_STRING_OR_COMMENT = re.compile(r'("""(?:\\"""|[^"]|"(?!""))*"""|"(?:\\.|[^"\\\n\r])*")|#[^\n\r]*')
# On the document with every ignored character (whitespace, commas) made a space:
_ARGUMENTS = re.compile(rb"\([^()]*\)")  # arguments, variable definitions, directive arguments
_INLINE_FRAGMENT = re.compile(rb"\.\.\. *(?:on +[_0-9A-Za-z]+ *)?(?:@ *[_0-9A-Za-z]+ *)*\{")

_NAME = b"_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+-"
_PUNCTUATORS = b'!$&()[]{}:=@|".'
# Token classes, one byte each: 'a' a name or number character, 'p' a punctuator or a dot, ' ' ignored.
_CLASSES = bytes(ord("a") if c in _NAME else ord("p") if c in _PUNCTUATORS else ord(" ") for c in range(256))
_SPACED = bytes(ord(" ") if c in b"\t\r\n," else c for c in range(256))
_NOT_MARKER = bytes(c for c in range(256) if c not in b"{}<")
_STEP = {ord("{"): 1, ord("}"): -1}
# A string (kept as written), or a run of ignored tokens: whitespace, line terminators, commas, the
# byte order mark and comments (``#`` to the end of the line). Strings are tried first, block
# strings before the others, as the lexer does, so a ``#`` or a comma inside a string stays.
_KEPT_OR_IGNORED = re.compile(
    r'("""(?:\\"""|[^"]|"(?!""))*"""|"(?:\\.|[^"\\\n\r])*")|(?:[ \t\n\r,\ufeff]|#[^\n\r]*)+'
)


@dataclass(frozen=True)
class Bounds:
    tokens: int
    aliases: int
    depth: int  # the deepest selection's depth, counted as QueryDepthLimiter does (top-level fields: 0)


def bounds(document: str) -> Bounds:
    """Lower bounds of the document's token count, alias count and operation depth."""
    if "#" in document:
        stripped = _STRING_OR_COMMENT.sub(lambda m: '"' if m.group(1) else " ", document)
    elif '"' in document:
        stripped = _STRING.sub('"', document)
    else:
        stripped = document
    raw = stripped.encode()
    classes = raw.translate(_CLASSES)
    runs = classes.count(b" a") + classes.count(b"pa") + classes.startswith(b"a")
    # Counted as punctuators, the three dots of a spread and the dot of a float (which also splits
    # its number in two runs) are each two tokens too many.
    dots, spreads = raw.count(b"."), raw.count(b"...")
    tokens = runs + classes.count(b"p") - 2 * (dots - 2 * spreads)
    shape = raw.translate(_SPACED)
    if b"(" in shape:
        shape = _ARGUMENTS.sub(b"", shape)  # GraphQL never nests parentheses: one pass removes them all
    aliases = shape.count(b":")  # outside arguments, every colon follows an alias
    return Bounds(tokens, aliases, _depth(shape))


def canonical(document: str) -> str:
    """The document without comments and insignificant layout: the key under which what depends
    on its tokens alone (its validity, its compiled plan) is shared.

    A document that differs only by a comment or its layout (a client's build stamp, a benchmark's
    per-request comment) used to be validated and compiled again. Here every run of ignored
    characters (whitespace, line terminators, commas, the byte order mark, comments) goes, or
    becomes one space between two tokens that would otherwise touch. Two documents the lexer
    accepts with the same canonical form have the same tokens: ignored characters only separate
    tokens, one space separates them the same way, and next to a one-character punctuator nothing
    is needed; strings are kept verbatim (the pattern finds them where the lexer does). Only the
    locations in error messages differ, so a caller keys by this only what no error of the request
    can come from (a verdict that found no error, a plan whose answer has none), and only once the
    document parsed (on a document the lexer refuses, the pattern's strings may not be the lexer's).
    """
    if len(document) <= MEMO_CHARS:
        return _canonical_memo(document)
    return _KEPT_OR_IGNORED.sub(_kept, document)


# The forms of the documents seen last, by text: a client repeating a document (every cached read) has
# it looked up, not lexed again (the substitution calls ``_kept`` per run of ignored characters: 14%
# of a cached per-version page's interpreter time). Small documents only, so the memo stays small.
MEMO_CHARS = 8_192
MEMO_ENTRIES = 512


@functools.lru_cache(maxsize=MEMO_ENTRIES)
def _canonical_memo(document: str) -> str:
    return _KEPT_OR_IGNORED.sub(_kept, document)


_DELIMITERS = frozenset("!$&()[]{}:=@|")


def _kept(match: re.Match[str]) -> str:
    kept = match.group(1)
    if kept:
        return kept
    start, end, document = match.start(), match.end(), match.string
    if (
        start == 0
        or end == len(document)
        or document[start - 1] in _DELIMITERS
        or document[end] in _DELIMITERS
    ):
        return ""
    return " "


def _depth(shape: bytes) -> int:
    if b"..." in shape:
        shape = _INLINE_FRAGMENT.sub(b"<", shape)
    markers = shape.translate(None, _NOT_MARKER)
    if b"<" not in markers:  # only selection sets: the deepest running count
        return max(max(accumulate(map(_STEP.__getitem__, markers)), default=0) - 1, 0)
    stack: list[int] = []
    depth = deepest = 0
    for marker in markers:
        if marker == 0x7B:  # '{' a selection set: the operation's, or a field's
            stack.append(1)
            depth += 1
            deepest = max(deepest, depth)
        elif marker == 0x3C:  # '<' an inline fragment: its fields are at its parent's depth
            stack.append(0)
        elif stack:  # '}'
            depth -= stack.pop()
    return max(deepest - 1, 0)
