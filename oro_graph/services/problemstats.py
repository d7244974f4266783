"""Per-problem statistics over a scope of runs: attempts, pass and timeout rates, mean and median
score, mean duration, and discrimination (the corrected item-total correlation across versions).

The definitions are the notebooks' (``oro_graph.analytics.metrics``), so a notebook can read them
instead of downloading every problem result:

- an *attempt* is a finished problem result (SUCCESS, FAILED, TIMED_OUT or SKIPPED) of a run in
  the scope; a missing score counts as 0 (``missing_as_zero``);
- ``timeout_rate`` is ``metrics.timeout_loss``'s: TIMED_OUT attempts / attempts;
- ``discrimination`` is ``metrics.item_analysis``'s ``corrected_r``: over the versions x problems
  matrix of mean attempt scores, the Pearson r across versions between a problem's score and the
  version's mean over its *other* problems; null with fewer than 3 versions or no variance.

PostgreSQL computes everything in SQL (``percentile_cont`` for the median, ``corr`` over window
sums for discrimination); SQLite has neither, so Python finishes those two from grouped rows. One
suite and scope cost four statements whatever the number of results.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session, col

from oro_graph.errors import ValidationFailed
from oro_graph.models import EvaluationRun, Problem, ProblemResult, ProblemStatus
from oro_graph.services.pages import Key, Page, Window

FINISHED = ProblemStatus.finished()
MIN_VERSIONS = 3  # as metrics._colwise_corr: no correlation from fewer versions
EPSILON = 1e-12  # as metrics._colwise_corr: no correlation without variance


@dataclass(frozen=True)
class Scope:
    """Which runs count: claimed in [since, until), of one race (without a race: the suite's own runs,
    never race runs, which see only a race's drawn problems), only included runs; all when empty."""

    since: datetime | None = None
    until: datetime | None = None
    race_id: uuid.UUID | None = None
    included_only: bool = False

    def check(self) -> Scope:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValidationFailed("`since` must be before `until`")
        return self


@dataclass(frozen=True)
class ProblemStats:
    problem_id: uuid.UUID
    position: int
    attempts: int = 0
    passes: int = 0
    timeouts: int = 0
    versions: int = 0  # versions with at least one attempt
    mean_score: float | None = None
    median_score: float | None = None
    mean_duration: float | None = None  # seconds, over attempts that reported one
    discrimination: float | None = None

    @property
    def pass_rate(self) -> float | None:
        return self.passes / self.attempts if self.attempts else None

    @property
    def timeout_rate(self) -> float | None:
        return self.timeouts / self.attempts if self.attempts else None


def _scoped(stmt: Any, suite_id: int, scope: Scope) -> Any:
    """``stmt`` (over ProblemResult) limited to the suite's finished attempts in runs of the scope."""
    stmt = stmt.join(EvaluationRun, col(EvaluationRun.id) == ProblemResult.run_id).where(
        EvaluationRun.suite_id == suite_id, col(ProblemResult.status).in_(FINISHED)
    )
    if scope.since is not None:
        stmt = stmt.where(col(EvaluationRun.claimed_at) >= scope.since)
    if scope.until is not None:
        stmt = stmt.where(col(EvaluationRun.claimed_at) < scope.until)
    if scope.race_id is not None:
        stmt = stmt.where(EvaluationRun.race_id == scope.race_id)
    else:
        stmt = stmt.where(col(EvaluationRun.race_id).is_(None))
    if scope.included_only:
        stmt = stmt.where(col(EvaluationRun.is_included).is_(True))
    return stmt


def _score() -> Any:
    return func.coalesce(col(ProblemResult.score), 0.0)


def _cells(suite_id: int, scope: Scope) -> Any:
    """(version, problem, mean attempt score): the versions x problems matrix of item_analysis."""
    version = col(EvaluationRun.agent_version_id)
    problem = col(ProblemResult.problem_id)
    stmt = select(version.label("v"), problem.label("p"), func.avg(_score()).label("x")).select_from(
        ProblemResult
    )
    return _scoped(stmt, suite_id, scope).group_by(version, problem)


def _pearson(pairs: list[tuple[float, float]]) -> float | None:
    n = len(pairs)
    if n < MIN_VERSIONS:
        return None
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    if sxx <= EPSILON or syy <= EPSILON:
        return None
    return sum((x - mx) * (y - my) for x, y in pairs) / math.sqrt(sxx * syy)


def _discrimination_python(session: Session, suite_id: int, scope: Scope) -> dict[uuid.UUID, float | None]:
    by_version: dict[Any, list[tuple[Any, float]]] = defaultdict(list)
    for v, p, x in session.execute(_cells(suite_id, scope)).all():
        by_version[v].append((p, float(x)))
    pairs: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for cells in by_version.values():
        if len(cells) < 2:
            continue  # no other problem to correlate with
        total = sum(x for _, x in cells)
        for p, x in cells:
            pairs[p].append((x, (total - x) / (len(cells) - 1)))
    return {_uuid(p): _pearson(found) for p, found in pairs.items()}


def _discrimination_sql(session: Session, suite_id: int, scope: Scope) -> dict[uuid.UUID, float | None]:
    cells = _cells(suite_id, scope).subquery()
    totals = select(
        cells.c.p,
        cells.c.x,
        func.sum(cells.c.x).over(partition_by=cells.c.v).label("t"),
        func.count().over(partition_by=cells.c.v).label("c"),
    ).subquery()
    rest = select(
        totals.c.p,
        totals.c.x,
        case((totals.c.c > 1, (totals.c.t - totals.c.x) / (totals.c.c - 1))).label("y"),
    ).subquery()
    paired_x = case((rest.c.y.is_not(None), rest.c.x))
    stmt = select(
        rest.c.p,
        func.count(rest.c.y),
        func.corr(rest.c.x, rest.c.y),
        func.var_pop(paired_x),
        func.var_pop(rest.c.y),
    ).group_by(rest.c.p)
    out: dict[uuid.UUID, float | None] = {}
    for p, n, r, vx, vy in session.execute(stmt).all():
        ok = n >= MIN_VERSIONS and r is not None and vx * n > EPSILON and vy * n > EPSILON
        out[_uuid(p)] = float(r) if ok else None
    return out


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def suite_problem_stats(session: Session, suite_id: int, scope: Scope) -> dict[uuid.UUID, ProblemStats]:
    """Every problem of the suite with its statistics in ``scope`` (zero attempts: counts 0, figures null)."""
    scope.check()
    postgres = session.get_bind().dialect.name == "postgresql"
    positions: dict[uuid.UUID, int] = {
        problem_id: position
        for problem_id, position in session.execute(
            select(col(Problem.id), col(Problem.position)).where(col(Problem.suite_id) == suite_id)
        ).all()
    }
    status = col(ProblemResult.status)
    figures = [
        col(ProblemResult.problem_id),
        func.count(),
        func.sum(case((status == ProblemStatus.SUCCESS, 1), else_=0)),
        func.sum(case((status == ProblemStatus.TIMED_OUT, 1), else_=0)),
        func.count(func.distinct(EvaluationRun.agent_version_id)),
        func.avg(_score()),
        func.avg(col(ProblemResult.execution_time)),
    ]
    if postgres:
        figures.append(func.percentile_cont(0.5).within_group(_score()))
    stmt = _scoped(select(*figures).select_from(ProblemResult), suite_id, scope).group_by(
        col(ProblemResult.problem_id)
    )
    rows = {_uuid(r[0]): r for r in session.execute(stmt).all()}
    if postgres:
        medians = {p: (float(r[7]) if r[7] is not None else None) for p, r in rows.items()}
        discrimination = _discrimination_sql(session, suite_id, scope)
    else:
        scores: dict[uuid.UUID, list[float]] = defaultdict(list)
        listed = _scoped(
            select(col(ProblemResult.problem_id), _score()).select_from(ProblemResult), suite_id, scope
        )
        for p, s in session.execute(listed).all():
            scores[_uuid(p)].append(float(s))
        medians = {p: statistics.median(values) for p, values in scores.items()}
        discrimination = _discrimination_python(session, suite_id, scope)
    out = {}
    for problem_id, position in positions.items():
        key = _uuid(problem_id)
        row = rows.get(key)
        if row is None:
            out[key] = ProblemStats(problem_id=key, position=position)
            continue
        out[key] = ProblemStats(
            problem_id=key,
            position=position,
            attempts=int(row[1]),
            passes=int(row[2] or 0),
            timeouts=int(row[3] or 0),
            versions=int(row[4]),
            mean_score=float(row[5]) if row[5] is not None else None,
            median_score=medians.get(key),
            mean_duration=float(row[6]) if row[6] is not None else None,
            discrimination=discrimination.get(key),
        )
    return out


def stats_by_suite_ids(
    session: Session, suite_ids: Iterable[int], *, scope: Scope
) -> dict[int, dict[uuid.UUID, ProblemStats]]:
    """``suite_problem_stats`` of each suite (one read transaction for a loader batch)."""
    return {suite_id: suite_problem_stats(session, suite_id, scope) for suite_id in dict.fromkeys(suite_ids)}


ORDER_FIELDS = (
    "position",
    "attempts",
    "pass_rate",
    "mean_score",
    "median_score",
    "mean_duration",
    "timeout_rate",
    "discrimination",
)


def sort_key(stats: ProblemStats, order: str, *, descending: bool) -> Key:
    """(null last, value in the order's direction, position): nulls stay last in both directions, and
    the key is the cursor, so a page boundary among the nulls or the ties is kept exactly."""
    if order not in ORDER_FIELDS:
        raise ValidationFailed(f"problem statistics cannot be ordered by {order!r}")
    value = getattr(stats, order)
    if value is None:
        return (1, 0.0, stats.position)
    return (0, -float(value) if descending else float(value), stats.position)


def ordered_page(
    stats: Iterable[ProblemStats], order: str, *, descending: bool, window: Window
) -> Page[ProblemStats]:
    """One keyset page of computed statistics (a suite's problems are few: ordered in memory)."""
    keyed = sorted(((sort_key(s, order, descending=descending), s) for s in stats), key=lambda ks: ks[0])
    if window.after is not None:
        keyed = [ks for ks in keyed if ks[0] > tuple(window.after)]
    if window.before is not None:
        keyed = [ks for ks in keyed if ks[0] < tuple(window.before)]
    size = window.size
    if window.backward:
        chosen = keyed[len(keyed) - size :] if size else []
        return Page(
            [s for _, s in chosen],
            [k for k, _ in chosen],
            has_next=window.before is not None,
            has_previous=len(keyed) > size,
        )
    chosen = keyed[:size]
    return Page(
        [s for _, s in chosen],
        [k for k, _ in chosen],
        has_next=len(keyed) > size,
        has_previous=window.after is not None,
    )
