"""A compiled statement run straight through psycopg: SQL text made once per plan, prepared per connection.

Through ``Session.execute`` every run of a plan paid SQLAlchemy's execution (cache key, parameter
processing) and psycopg's conversion of ``%(name)s`` placeholders, which it does not cache for a
statement this long (over 4 KB or 50 parameters): scanning the deep leaderboard's text took an
eighth of the server's CPU for that request once the plan itself was reused. Here the statement is
compiled once with its constants written in and ``$n`` placeholders for the values each run computes
(``Prepared``, ``_inlined``), and each run hands psycopg those values in order through a
``RawCursor`` (no scanning), prepared on first use on each connection.

SQLAlchemy's cursor events still fire around the run, with the compiled statement as their
context: what ``Database`` learns from them (the tables and columns the statement reads, for the
response cache, through ``dependencies.read`` on the same compiled statement; the debug statement
count) and any other listener (tracing, tests) see it as before.

The statement runs in autocommit when the session has not begun a transaction on PostgreSQL yet
(a service call that runs only it, as the executor's and ``fastpath``'s do): one statement is then
its own transaction, with one snapshot of the data as under ``BEGIN`` at READ COMMITTED, and the
BEGIN and COMMIT round trips around it are saved (the session's commit finds nothing to commit).
What the response cache keys on is unchanged: the versions are read before the statement runs, so
a write it sees only makes the answer invalid at once. A session already in a transaction keeps
the statement in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import psycopg
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select, visitors
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session


@dataclass(frozen=True)
class Prepared:
    """One statement as PostgreSQL text with ``$n`` placeholders, and how to fill them."""

    sql: str
    order: tuple[str, ...]  # the parameter of each placeholder, in order
    constants: dict[str, Any]  # the values fixed at compile time (keys, literals), processed
    processors: dict[str, Any]  # SQLAlchemy's bind processors of the per-run parameters
    compiled: Any  # SQLAlchemy's compiled statement: its cursor events' context carries it

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect, per_run: frozenset[str]) -> Prepared:
        numbered = type(dialect)(paramstyle="numeric_dollar")  # type: ignore[call-arg]
        # Writing the constants out asks every parameter for a value: the per-run ones get a
        # stand-in, and stay placeholders in the text.
        inlined = _inlined(statement, per_run, numbered).params({name: None for name in per_run})
        compiled = inlined.compile(dialect=numbered, compile_kwargs={"render_postcompile": True})
        processors: dict[str, Any] = dict(compiled._bind_processors)
        constants = {}
        for name, value in compiled.params.items():
            if name not in per_run:
                processor = processors.get(name)
                constants[name] = processor(value) if processor is not None else value
        order = tuple(compiled.positiontup or ())
        _check_placeholders(compiled.string, order)
        return cls(
            compiled.string,
            order,
            constants,
            {k: v for k, v in processors.items() if k in per_run},
            compiled,
        )

    def values(self, params: dict[str, Any]) -> list[Any]:
        out = []
        for name in self.order:
            if name in params:
                processor = self.processors.get(name)
                value = params[name]
                out.append(processor(value) if processor is not None else value)
            else:
                out.append(self.constants[name])
        return out


def run(session: Session, prepared: Prepared, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The statement's one row: in autocommit if the session has begun no transaction yet, else in
    the session's (module docstring)."""
    connection = session.connection()
    raw = connection.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    values = prepared.values(params)
    events = connection.dispatch
    context = SimpleNamespace(
        compiled=prepared.compiled
    )  # one per run: a listener may note its own state on it
    with _alone(raw), psycopg.RawCursor(raw) as cursor:
        events.before_cursor_execute(connection, cursor, prepared.sql, values, context, False)
        cursor.execute(prepared.sql, values, prepare=True)
        events.after_cursor_execute(connection, cursor, prepared.sql, values, context, False)
        return cursor.fetchone()


@contextmanager
def _alone(raw: psycopg.Connection[Any]) -> Iterator[None]:
    """Autocommit while the block runs, if no transaction is open on ``raw``."""
    if raw.autocommit or raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        yield
        return
    raw.autocommit = True
    try:
        yield
    finally:
        # Back to transactions before the pool has it again. A connection that cannot say (it was
        # lost while the statement ran) is discarded by the pool: its error is the one to report.
        if not raw.closed:
            raw.autocommit = False


def _inlined(statement: Select[Any], per_run: frozenset[str], dialect: Dialect) -> Select[Any]:
    """The statement with every constant (keys, limits, the JSON text around the values, an IN over
    a status set) written into its text as a literal: only the per-run parameters stay ``$n``.

    As parameters, the constants were converted, sent and bound at every run, and the generic plan
    PostgreSQL settles on after five runs knew none of them (a ``LIMIT $n`` is planned as a guess).
    The deep leaderboard went from 69 parameters to 1 (the release cutoff).
    """

    def literal(element: Any, **kw: Any) -> Any:
        if isinstance(element, BindParameter) and element.key not in per_run:
            # A type without a literal form (none of the compiler's so far) stays a parameter, and
            # so does a text with a backslash: a dialect not connected yet doubles it, which a server
            # with standard_conforming_strings (the default) would read as two.
            if isinstance(element.value, str) and "\\" in element.value:
                return None
            if element.type.literal_processor(dialect) is not None:
                return element.render_literal_execute()
        return None

    return cast(Select[Any], visitors.replacement_traverse(statement, {}, literal))


class PlaceholderMismatch(ValueError):
    """The statement's text and its parameters disagree: running it would bind values to the wrong
    placeholders (or fail inside PostgreSQL with a message naming neither). The executor answers."""


_QUOTED = re.compile(r"'(?:[^']|'')*'")  # a literal's text, where a "$1" is no placeholder
_PLACEHOLDER = re.compile(r"\$(\d+)")


def _check_placeholders(sql: str, order: tuple[str, ...]) -> None:
    found = {int(n) for n in _PLACEHOLDER.findall(_QUOTED.sub("", sql))}
    expected = set(range(1, len(order) + 1))
    if found != expected:
        raise PlaceholderMismatch(
            f"compiled statement has placeholders {sorted(found)} for {len(order)} parameters {list(order)}"
        )
