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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, bindparam, case, func, select, text
from sqlmodel import Session, col

from oro_graph.errors import ValidationFailed
from oro_graph.models import EvaluationRun, Problem, ProblemResult, ProblemStatus
from oro_graph.models import totals as cells
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
    return _corrected_item_total(by_version)


def _corrected_item_total(by_version: dict[Any, list[tuple[Any, float]]]) -> dict[uuid.UUID, float | None]:
    """Each problem's Pearson r across versions between the version's mean score on it and its mean
    on its other problems (``by_version``: version -> [(problem, mean score)])."""
    pairs: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for row in by_version.values():
        if len(row) < 2:
            continue  # no other problem to correlate with
        total = sum(x for _, x in row)
        for p, x in row:
            pairs[p].append((x, (total - x) / (len(row) - 1)))
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


def from_totals(scope: Scope) -> bool:
    """Whether ``scope`` is answered from the running totals (``oro_graph.models.cells``): the suite's
    own runs, every run or the included ones, without a time window. A window or a race reads the
    results themselves (a race is a few hundred runs; a window is bounded by its runs' index)."""
    return scope.since is None and scope.until is None and scope.race_id is None


def suite_problem_stats(session: Session, suite_id: int, scope: Scope) -> dict[uuid.UUID, ProblemStats]:
    """Every problem of the suite with its statistics in ``scope`` (zero attempts: counts 0, figures null)."""
    scope.check()
    positions: dict[uuid.UUID, int] = {
        _uuid(problem_id): position
        for problem_id, position in session.execute(
            select(col(Problem.id), col(Problem.position)).where(col(Problem.suite_id) == suite_id)
        ).all()
    }
    found = (
        totals_stats(session, suite_id, scope) if from_totals(scope) else raw_stats(session, suite_id, scope)
    )
    return {
        key: replace(found[key], position=position) if key in found else ProblemStats(key, position)
        for key, position in positions.items()
    }


def raw_stats(session: Session, suite_id: int, scope: Scope) -> dict[uuid.UUID, ProblemStats]:
    """The statistics of the problems with attempts in ``scope``, aggregated from the problem results
    (the definition the running totals are tested against); position left 0."""
    postgres = session.get_bind().dialect.name == "postgresql"
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
    return {
        key: ProblemStats(
            problem_id=key,
            position=0,
            attempts=int(row[1]),
            passes=int(row[2] or 0),
            timeouts=int(row[3] or 0),
            versions=int(row[4]),
            mean_score=float(row[5]) if row[5] is not None else None,
            median_score=medians.get(key),
            mean_duration=float(row[6]) if row[6] is not None else None,
            discrimination=discrimination.get(key),
        )
        for key, row in rows.items()
    }


def totals_stats(session: Session, suite_id: int, scope: Scope) -> dict[uuid.UUID, ProblemStats]:
    """``raw_stats`` from the running totals (``from_totals`` scopes, ``models.totals``): each
    problem's sums (ProblemTotal), then the exact median by score bucket. Three statements, whatever
    the number of results."""
    inc = "inc_" if scope.included_only else ""
    names = (
        "attempts", "passes", "timeouts", "score_sum", "duration_sum", "durations", "versions",
        "n", "sx", "sy", "sxx", "syy", "sxy",
    )  # fmt: skip
    stmt = text(
        f"SELECT problem_id, {', '.join(inc + n for n in names)} FROM problemtotal "
        f"WHERE suite_id = :suite AND {inc}attempts > 0"
    )
    out: dict[uuid.UUID, ProblemStats] = {}
    for problem_id, *values in session.execute(stmt, {"suite": suite_id}):
        t = dict(zip(names, values, strict=True))
        key = _uuid(problem_id)
        out[key] = ProblemStats(
            problem_id=key,
            position=0,
            attempts=int(t["attempts"]),
            passes=int(t["passes"]),
            timeouts=int(t["timeouts"]),
            versions=int(t["versions"]),
            mean_score=t["score_sum"] / t["attempts"],
            mean_duration=t["duration_sum"] / t["durations"] if t["durations"] > 0 else None,
            discrimination=_pearson_of_sums(t),
        )
    if not out:
        return out
    medians = _medians(session, suite_id, f"{inc}attempts")
    return {key: replace(s, median_score=medians.get(key)) for key, s in out.items()}


def _pearson_of_sums(t: dict[str, Any]) -> float | None:
    """Pearson r from running sums. A variance below 1e-10 of its sum of squares counts as none: the
    sums are kept by adding and taking away terms, and cannot tell a smaller one from rounding."""
    n = int(t["n"])
    if n < MIN_VERSIONS:
        return None
    vx = t["sxx"] - t["sx"] * t["sx"] / n  # n * var_pop
    vy = t["syy"] - t["sy"] * t["sy"] / n
    if vx <= EPSILON + 1e-10 * t["sxx"] or vy <= EPSILON + 1e-10 * t["syy"]:
        return None
    r = float(t["sxy"] - t["sx"] * t["sy"] / n) / math.sqrt(vx * vy)
    return max(-1.0, min(1.0, r))


def _medians(session: Session, suite_id: int, counted: str) -> dict[uuid.UUID, float]:
    """Exact medians: the values at ranks (n-1) div 2 and n div 2 (from 0) of each problem's sorted
    scores, averaged. The buckets holding those ranks come from the bucket counts (one statement),
    then only those buckets' scores are read (one more)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt = text(
        "SELECT problem_id, bucket, n, cum, total FROM ("
        f"SELECT problem_id, bucket, {counted} AS n, "
        f"SUM({counted}) OVER (PARTITION BY problem_id ORDER BY bucket) AS cum, "
        f"SUM({counted}) OVER (PARTITION BY problem_id) AS total "
        f"FROM problemscorebucket WHERE suite_id = :suite AND {counted} > 0) AS s "
        "WHERE cum > (total - 1) / 2 AND cum - n <= total / 2"
    )
    wanted: dict[tuple[uuid.UUID, int], list[int]] = {}  # (problem, bucket) -> ranks within the bucket
    for p, bucket, n, cum, total in session.execute(stmt, {"suite": suite_id}):
        ranks = [k - (cum - n) for k in ((total - 1) // 2, total // 2) if cum - n <= k < cum]
        wanted[(_uuid(p), int(bucket))] = ranks
    if not wanted:
        return {}
    params: dict[str, Any] = {}
    where = []
    for i, (p, bucket) in enumerate(wanted):
        # a range one bucket wider on each side finds the rows; the bucket itself is checked below
        params |= {f"p{i}": p, f"lo{i}": (bucket - 1) / cells.BUCKETS, f"hi{i}": (bucket + 2) / cells.BUCKETS}
        where.append(f"(problem_id = :p{i} AND score >= :lo{i} AND score < :hi{i})")
    rows = session.execute(
        text(
            f"SELECT problem_id, score, {counted} FROM problemscore "
            f"WHERE {counted} > 0 AND ({' OR '.join(where)}) ORDER BY problem_id, score"
        ).bindparams(*[bindparam(f"p{i}", type_=Uuid()) for i in range(len(wanted))]),
        params,
    ).all()
    middle: dict[uuid.UUID, list[float]] = defaultdict(list)
    seen: dict[tuple[uuid.UUID, int], int] = defaultdict(int)  # rows counted so far in each bucket
    for p, score, n in rows:
        key = (_uuid(p), cells.bucket_of(float(score), postgres=postgres))
        if key not in wanted:
            continue
        before = seen[key]
        seen[key] = before + n
        middle[key[0]] += [float(score) for rank in wanted[key] if before <= rank < before + n]
    return {p: (values[0] + values[-1]) / 2 for p, values in middle.items()}


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
