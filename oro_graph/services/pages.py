"""Keyset pages and counts over the domain tables: the reads behind the graph's connections.

A page is asked for with a ``Window`` (first/after or last/before, where after/before are the
sort-key values of a row) and comes back with each row's key, so a cursor can point at it. Deep
pages cost the same as the first: the window is a WHERE on the sort key, never an OFFSET. Every
order ends with a unique column, so ties are broken the same way on every page.

One-to-many edges (a version's runs, a run's problem results, ...) are declared once as a
``Relation`` and read for many parents in one statement: ``row_number()`` partitioned by parent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import aliased, defer
from sqlmodel import Session, col

from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Problem,
    ProblemResult,
    Role,
    RunStatus,
    Suite,
    WorkItem,
)

T = TypeVar("T")
MAX_PAGE_SIZE = 100  # items a page of the graph may hold (what the cost walker prices, too)
DEFAULT_PAGE_SIZE = 20  # a page without `first` or `last`
Key = tuple[Any, ...]
Order = tuple[tuple[Any, bool], ...]  # (column, descending), the last column unique


@dataclass(frozen=True)
class Window:
    """Which slice of an ordered list to read. ``after``/``before`` are sort keys of rows."""

    first: int | None = None
    after: Key | None = None
    last: int | None = None
    before: Key | None = None

    @property
    def backward(self) -> bool:
        return self.first is None and self.last is not None

    @property
    def size(self) -> int:
        size = self.last if self.backward else self.first
        return 100 if size is None else size


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    keys: list[Key]
    has_next: bool
    has_previous: bool


@dataclass(frozen=True)
class Relation:
    """A one-to-many edge: rows of ``model`` whose ``parent`` column holds the parent's key."""

    model: type[Any]
    parent: Any
    order: Order
    # Columns the page leaves unloaded: ones a heartbeat sets (a run's lease), so that a cached answer
    # that never shows them does not depend on them (oro_graph.dependencies); loaded apart when asked.
    deferred: tuple[str, ...] = ()


def _beyond(order: Order, values: Key, *, forward: bool) -> Any:
    """Rows strictly after ``values`` in ``order`` (forward) or strictly before them."""
    if len(values) != len(order):
        return false()
    alternatives = []
    for i, (column, descending) in enumerate(order):
        later = column < values[i] if descending == forward else column > values[i]
        ties = [c == v for (c, _), v in zip(order[:i], values[:i], strict=True)]
        alternatives.append(and_(*ties, later))
    return or_(*alternatives)


def _window_clauses(order: Order, window: Window) -> list[Any]:
    clauses = []
    if window.after is not None:
        clauses.append(_beyond(order, window.after, forward=True))
    if window.before is not None:
        clauses.append(_beyond(order, window.before, forward=False))
    return clauses


def _order_by(order: Order, *, reverse: bool) -> list[Any]:
    return [column.desc() if descending != reverse else column.asc() for column, descending in order]


def _finish(rows: list[Any], keys: list[Key], window: Window) -> Page[Any]:
    more = len(rows) > window.size
    rows, keys = rows[: window.size], keys[: window.size]
    if window.backward:
        rows.reverse()
        keys.reverse()
        return Page(rows, keys, has_next=window.before is not None, has_previous=more)
    return Page(rows, keys, has_next=more, has_previous=window.after is not None)


def keyset_page(session: Session, stmt: Any, order: Order, window: Window) -> Page[Any]:
    """One page of ``stmt`` in ``order``. A row is the statement's single entity, else a tuple."""
    n = len(order)
    labeled = [column.label(f"pg_k{i}") for i, (column, _) in enumerate(order)]
    query = (
        stmt.add_columns(*labeled)
        .where(*_window_clauses(order, window))
        .order_by(*_order_by(order, reverse=window.backward))
        .limit(window.size + 1)
    )
    result = session.execute(query).all()
    rows = [r[0] if len(r) - n == 1 else tuple(r[:-n]) for r in result]
    return _finish(rows, [tuple(r[-n:]) for r in result], window)


def count(session: Session, stmt: Any) -> int:
    return int(session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one())


def relation_pages(
    session: Session, relation: Relation, keys: Iterable[Any], window: Window, where: Iterable[Any] = ()
) -> dict[Any, Page[Any]]:
    """The same window of the edge for many parents, in one statement; parents without rows get none.
    ``where`` narrows the children (e.g. to versions the public may see)."""
    keys = list(keys)
    order, n = relation.order, len(relation.order)
    rank = func.row_number().over(
        partition_by=relation.parent, order_by=_order_by(order, reverse=window.backward)
    )
    inner = (
        select(
            relation.model,
            relation.parent.label("pg_parent"),
            rank.label("pg_rn"),
            *[column.label(f"pg_k{i}") for i, (column, _) in enumerate(order)],
        )
        .where(relation.parent.in_(keys), *_window_clauses(order, window), *where)
        .subquery()
    )
    entity = aliased(relation.model, inner)
    query = (
        select(entity, inner.c["pg_parent"], *[inner.c[f"pg_k{i}"] for i in range(n)])
        .where(inner.c["pg_rn"] <= window.size + 1)
        .order_by(inner.c["pg_parent"], inner.c["pg_rn"])
        .options(*[defer(getattr(entity, name)) for name in relation.deferred])
    )
    grouped: dict[Any, tuple[list[Any], list[Key]]] = {}
    for row in session.execute(query).all():
        rows, row_keys = grouped.setdefault(row[1], ([], []))
        rows.append(row[0])
        row_keys.append(tuple(row[2:]))
    return {parent: _finish(rows, row_keys, window) for parent, (rows, row_keys) in grouped.items()}


def relation_counts(
    session: Session, relation: Relation, keys: Iterable[Any], where: Iterable[Any] = ()
) -> dict[Any, int]:
    stmt = (
        select(relation.parent, func.count())
        .select_from(relation.model)
        .where(relation.parent.in_(list(keys)), *where)
        .group_by(relation.parent)
    )
    return {parent: int(total) for parent, total in session.execute(stmt).all()}


BY_CLAIM: Order = ((col(EvaluationRun.claimed_at), False), (col(EvaluationRun.id), False))

PROBLEMS_OF_SUITE = Relation(Problem, col(Problem.suite_id), ((col(Problem.position), False),))
VERSIONS_OF_SUITE = Relation(
    AgentVersion,
    col(AgentVersion.suite_id),
    ((col(AgentVersion.submitted_at), False), (col(AgentVersion.id), False)),
)
AGENTS_OF_MINER = Relation(
    Agent, col(Agent.miner_hotkey), ((col(Agent.created_at), False), (col(Agent.id), False))
)
VERSIONS_OF_AGENT = Relation(
    AgentVersion, col(AgentVersion.agent_id), ((col(AgentVersion.version_number), False),)
)
RUN_LIVENESS = ("lease_expires_at", "last_heartbeat_at")  # what every heartbeat sets
RUNS_OF_VERSION = Relation(
    EvaluationRun, col(EvaluationRun.agent_version_id), BY_CLAIM, deferred=RUN_LIVENESS
)
RUNS_OF_VALIDATOR = Relation(
    EvaluationRun,
    col(EvaluationRun.validator_hotkey),
    ((col(EvaluationRun.claimed_at), True), (col(EvaluationRun.id), True)),
    deferred=RUN_LIVENESS,
)
RESULTS_OF_RUN = Relation(
    ProblemResult,
    col(ProblemResult.run_id),
    ((col(ProblemResult.updated_at), False), (col(ProblemResult.id), False)),
)


def suites_page(session: Session, window: Window) -> Page[Suite]:
    return keyset_page(session, select(Suite), ((col(Suite.id), False),), window)


def suites_count(session: Session) -> int:
    return count(session, select(Suite))


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list shows; every condition given must hold."""

    statuses: tuple[str, ...] | None = None
    validator_hotkey: str | None = None
    agent_version_id: uuid.UUID | None = None
    suite_id: int | None = None
    claimed_after: datetime | None = None
    claimed_before: datetime | None = None


RUN_ORDER_COLUMNS = {
    "claimed_at": col(EvaluationRun.claimed_at),
    "lease_expires_at": col(EvaluationRun.lease_expires_at),
}


def _runs_stmt(run_filter: RunFilter) -> Any:
    stmt = select(EvaluationRun)
    if run_filter.statuses is not None:
        stmt = stmt.where(col(EvaluationRun.status).in_(run_filter.statuses))
    if run_filter.validator_hotkey is not None:
        stmt = stmt.where(EvaluationRun.validator_hotkey == run_filter.validator_hotkey)
    if run_filter.agent_version_id is not None:
        stmt = stmt.where(EvaluationRun.agent_version_id == run_filter.agent_version_id)
    if run_filter.suite_id is not None:
        stmt = stmt.where(EvaluationRun.suite_id == run_filter.suite_id)
    if run_filter.claimed_after is not None:
        stmt = stmt.where(col(EvaluationRun.claimed_at) >= run_filter.claimed_after)
    if run_filter.claimed_before is not None:
        stmt = stmt.where(col(EvaluationRun.claimed_at) < run_filter.claimed_before)
    return stmt


def runs_page(
    session: Session, *, run_filter: RunFilter, order_by: str, descending: bool, window: Window
) -> Page[EvaluationRun]:
    """Runs matching ``run_filter``, ordered by ``order_by`` (see RUN_ORDER_COLUMNS) then id."""
    order = ((RUN_ORDER_COLUMNS[order_by], descending), (col(EvaluationRun.id), descending))
    return keyset_page(session, _runs_stmt(run_filter), order, window)


def runs_count(session: Session, *, run_filter: RunFilter) -> int:
    return count(session, _runs_stmt(run_filter))


ACTIVE_RUNS = RunFilter(statuses=tuple(s.value for s in RunStatus.live()))


def _validators_stmt() -> Any:
    return select(Hotkey).where(Hotkey.role == Role.VALIDATOR)


def validators_page(session: Session, window: Window) -> Page[Hotkey]:
    return keyset_page(session, _validators_stmt(), ((col(Hotkey.ss58), False),), window)


def validators_count(session: Session) -> int:
    return count(session, _validators_stmt())


def _pending_stmt(suite_id: int | None) -> Any:
    stmt = select(WorkItem).where(col(WorkItem.is_closed).is_(False))
    return stmt if suite_id is None else stmt.where(WorkItem.suite_id == suite_id)


def pending_page(session: Session, *, suite_id: int | None, window: Window) -> Page[WorkItem]:
    """Open work items, oldest first (the order validators are handed them in)."""
    order = ((col(WorkItem.created_at), False), (col(WorkItem.id), False))
    return keyset_page(session, _pending_stmt(suite_id), order, window)


def pending_count(session: Session, *, suite_id: int | None) -> int:
    return count(session, _pending_stmt(suite_id))
