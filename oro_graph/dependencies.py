"""What a SQL statement reads and writes, at the grain the response caches key on.

A dependency is a table's name (its set of rows: bumped by an INSERT, DELETE, COPY or TRUNCATE,
and by any write whose columns cannot be told) or ``table.column`` (bumped by an UPDATE that sets
the column). A statement that reads a table depends on its rows and on every column it names
(in the select list, a join, a filter, an order), so an UPDATE of a run's lease leaves an answer
that never looked at the lease valid, while any new or deleted row of the table ends it.

Reads are taken from the compiled statement (its FROM objects and columns, through aliases and
subqueries to the tables' own columns); SQL given as text, or a statement with a fragment of text
in it, depends on every table it names, every column of them included. Writes are taken from the
statement's text: the verb, the table and, for an UPDATE, the columns of its SET clause.
"""

from __future__ import annotations

import functools
import re
import weakref
from typing import Any

from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import ColumnClause, ColumnElement, TableClause, TextClause

from oro_graph.dataversion import ANY
from oro_graph.models import totals as cells

WRITE_VERBS = {"INSERT", "UPDATE", "DELETE", "COPY ", "TRUNCA"}
# Bookkeeping that no answer shows (used nonces, rate-limit entries): writing it is not a data change.
UNVERSIONED = frozenset(
    {"usednonce", "ratelimithit", "eventstream", "eventstreamoperation", "eventstreammessage"}
)
_WRITTEN = re.compile(
    r'^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE(?:\s+TABLE)?)\s+(?:ONLY\s+)?"?(\w+)"?\s*([,(]?)',
    re.IGNORECASE,
)
_SET = re.compile(r"\s+SET\s+", re.IGNORECASE)
_ASSIGNED = re.compile(r'^\s*"?(\w+)"?\s*=')
_END_OF_SET = re.compile(r"(WHERE|FROM|RETURNING)\b", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_by_compiled: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def _known() -> Any:
    from sqlmodel import SQLModel

    import oro_graph.models  # noqa: F401  (every table is in the metadata)

    return SQLModel.metadata.tables


def _columns_of(tables: set[str]) -> set[str]:
    known = _known()
    return {f"{t}.{c.name}" for t in tables if t in known for c in known[t].columns}


def _named_tables(statement: str) -> set[str]:
    return set(_known()) & {w.lower() for w in _WORD.findall(statement)}


def read(context: Any, statement: str) -> frozenset[str]:
    """What a reading statement depends on."""
    compiled = getattr(context, "compiled", None)
    clause = getattr(compiled, "statement", None)
    if clause is None or isinstance(clause, TextClause):
        tables = _named_tables(statement)
        return frozenset(tables | _columns_of(tables))
    known = _by_compiled.get(compiled)
    if known is None:
        deps: set[str] = set()
        columns: list[Any] = []
        textual = False  # a fragment of SQL text (text(), literal_column()) may name any column
        for element in visitors.iterate(clause):
            if isinstance(element, TableClause):
                deps.add(element.name)
            elif isinstance(element, ColumnClause):
                columns.append(element)
                textual = textual or element.is_literal
            elif isinstance(element, TextClause):
                textual = True
        # The select list as compiled: an ORM entity's columns (without the deferred ones) appear
        # only here.
        for entry in getattr(compiled, "_result_columns", ()):
            columns.extend(o for o in entry[2] if isinstance(o, ColumnElement))
        for column in columns:
            for base in column.base_columns:  # through aliases and subqueries
                table = getattr(base, "table", None)
                if isinstance(table, TableClause):
                    deps.update((table.name, f"{table.name}.{base.name}"))
        if textual:
            tables = {d for d in deps if "." not in d} | _named_tables(statement)
            deps |= tables | _columns_of(tables)
        known = frozenset(deps)
        _by_compiled[compiled] = known
    return known


@functools.lru_cache(maxsize=1024)  # a service's statements are built once: their text recurs
def written(statement: str) -> frozenset[str]:
    """What a writing statement changes (less the bookkeeping tables), with the running totals its
    triggers keep (``models.totals``); ``ANY`` when it cannot be told."""
    found = _written(statement)
    if found & cells.SOURCES:
        return found | cells.TABLES
    return found


def _written(statement: str) -> frozenset[str]:
    match = _WRITTEN.match(statement)
    if match is None or match.group(3) == ",":  # a statement of another shape, or several tables
        return frozenset(_named_tables(statement) - UNVERSIONED) or frozenset({ANY})
    table = match.group(2).lower()
    if table in UNVERSIONED:
        return frozenset()
    if match.group(1).upper() == "UPDATE":
        columns = _set_columns(statement[match.end(2) :])
        if columns:
            return frozenset(f"{table}.{c}" for c in columns)
    return frozenset({table})


def _set_columns(rest: str) -> list[str] | None:
    """The columns an UPDATE's SET clause assigns (``rest`` follows the table's name), or None if
    the clause is not the plain shape ``SET a=..., b=... [WHERE|FROM|RETURNING ...]``."""
    start = _SET.match(rest.lstrip('"'))
    if start is None:
        return None
    text = rest.lstrip('"')[start.end() :]
    parts, depth, quote, begin, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch == ",":
            parts.append(text[begin:i])
            begin = i + 1
        elif depth == 0 and text[i - 1 : i].isspace() and _END_OF_SET.match(text, i):
            break
        i += 1
    parts.append(text[begin:i])
    columns = []
    for part in parts:
        assigned = _ASSIGNED.match(part)
        if assigned is None:
            return None
        columns.append(assigned.group(1).lower())
    return columns
