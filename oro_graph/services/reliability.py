"""Validator reliability and scoring variance, aggregated in SQL (portable across SQLite and PostgreSQL).

Definitions (the notebooks compute the same from raw rows and cross-check these):
- outcome counts and rates over runs *claimed* in the window; stale rate = STALE / all runs;
- duration = completed_at - claimed_at of finished runs (SUCCESS, FAILED, TIMED_OUT), p50 and
  p95 by nearest rank;
- the ORO validator-variance view: successful included runs, versions scored by 2+ validators;
  per version the spread is max - min; a validator's delta on a version is its score minus the
  mean of the other validators' scores on it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col

from oro_graph.models import EvaluationRun, RunStatus
from oro_graph.stats import paired_bootstrap, problem_means

FINISHED = (RunStatus.SUCCESS.value, RunStatus.FAILED.value, RunStatus.TIMED_OUT.value)
SPREAD_BUCKETS = (0.01, 0.02, 0.05, 0.10)  # the buckets of analytics.metrics.pair_spread


@dataclass(frozen=True)
class Window:
    since: datetime | None = None
    until: datetime | None = None

    def clause(self) -> ColumnElement[bool]:
        parts = []
        if self.since is not None:
            parts.append(col(EvaluationRun.claimed_at) >= self.since)
        if self.until is not None:
            parts.append(col(EvaluationRun.claimed_at) < self.until)
        return and_(True, *parts)


@dataclass
class Reliability:
    hotkey: str
    runs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    duration_p50: float | None = None
    duration_p95: float | None = None
    mean_delta: float | None = None
    delta_sd: float | None = None
    versions_compared: int = 0
    pairs_evaluated: int = 0
    last_activity_at: datetime | None = None

    def rate(self, status: str) -> float | None:
        return self.counts.get(status, 0) / self.runs if self.runs else None

    @property
    def stale_rate(self) -> float | None:
        return self.rate(RunStatus.STALE.value)


def _seconds(
    session: Session, later: ColumnElement[datetime], earlier: ColumnElement[datetime]
) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _last_activity() -> ColumnElement[datetime]:
    """When the validator last did something on a run. A STALE run's completed_at is the sweeper's
    stamp, not the validator's act, so its activity ends at the last heartbeat (or the claim)."""
    acted = func.coalesce(EvaluationRun.last_heartbeat_at, EvaluationRun.claimed_at)
    return case(
        (EvaluationRun.status == RunStatus.STALE.value, acted),
        else_=func.coalesce(EvaluationRun.completed_at, acted),
    )


def validator_reliability(
    session: Session, hotkeys: Sequence[str], window: Window = Window()
) -> dict[str, Reliability]:
    """Per validator: outcomes, durations, deltas vs peers and last activity, for runs in the window."""
    out = {h: Reliability(h) for h in hotkeys}
    if not hotkeys:
        return out
    mine = and_(col(EvaluationRun.validator_hotkey).in_(list(hotkeys)), window.clause())

    for hotkey, status, n, last in session.execute(
        select(
            EvaluationRun.validator_hotkey,
            EvaluationRun.status,
            func.count(),
            func.max(_last_activity()),
        )
        .where(mine)
        .group_by(EvaluationRun.validator_hotkey, EvaluationRun.status)
    ):
        r = out[hotkey]
        r.counts[status] = n
        r.runs += n
        if r.last_activity_at is None or (last is not None and _aware(last) > r.last_activity_at):
            r.last_activity_at = _aware(last)

    duration = _seconds(session, col(EvaluationRun.completed_at), col(EvaluationRun.claimed_at)).label("d")
    ranked = (
        select(
            EvaluationRun.validator_hotkey.label("h"),  # type: ignore[attr-defined]
            duration,
            func.row_number()
            .over(partition_by=EvaluationRun.validator_hotkey, order_by=duration)
            .label("rn"),
            func.count().over(partition_by=EvaluationRun.validator_hotkey).label("n"),
        )
        .where(mine, col(EvaluationRun.status).in_(FINISHED), col(EvaluationRun.completed_at).is_not(None))
        .subquery()
    )
    for hotkey, p50, p95 in session.execute(
        select(
            ranked.c.h,
            func.min(case((ranked.c.rn >= ranked.c.n * 0.5, ranked.c.d))),
            func.min(case((ranked.c.rn >= ranked.c.n * 0.95, ranked.c.d))),
        ).group_by(ranked.c.h)
    ):
        out[hotkey].duration_p50 = float(p50) if p50 is not None else None
        out[hotkey].duration_p95 = float(p95) if p95 is not None else None

    for hotkey, versions, pairs, mean, mean_sq in session.execute(_deltas(window, hotkeys)):
        if hotkey not in out:
            continue
        r = out[hotkey]
        r.versions_compared, r.pairs_evaluated = int(versions), int(pairs or 0)
        r.mean_delta = float(mean)
        if versions > 1:
            variance = max(0.0, (float(mean_sq) - float(mean) ** 2) * versions / (versions - 1))
            r.delta_sd = math.sqrt(variance)
    return out


def _scores(window: Window, suite_id: int | None = None):  # type: ignore[no-untyped-def]
    """Mean score per (version, validator) over successful included runs in the window."""
    in_suite = EvaluationRun.suite_id == suite_id if suite_id is not None else and_(True)
    return (
        select(
            EvaluationRun.agent_version_id.label("v"),  # type: ignore[attr-defined]
            EvaluationRun.validator_hotkey.label("h"),  # type: ignore[attr-defined]
            func.avg(cast(EvaluationRun.validator_score, Float)).label("sc"),
        )
        .where(
            EvaluationRun.status == RunStatus.SUCCESS.value,
            col(EvaluationRun.is_included).is_(True),
            col(EvaluationRun.race_id).is_(None),
            col(EvaluationRun.validator_score).is_not(None),
            window.clause(),
            in_suite,
        )
        .group_by(EvaluationRun.agent_version_id, EvaluationRun.validator_hotkey)
        .subquery()
    )


def _deltas(window: Window, hotkeys: Sequence[str] | None, suite_id: int | None = None):  # type: ignore[no-untyped-def]
    s = _scores(window, suite_id)
    per_version = (
        select(s.c.v, func.sum(s.c.sc).label("tot"), func.count().label("n"))
        .group_by(s.c.v)
        .having(func.count() >= 2)
        .subquery()
    )
    delta = s.c.sc - (per_version.c.tot - s.c.sc) / (per_version.c.n - 1)
    stmt = (
        select(s.c.h, func.count(), func.sum(per_version.c.n - 1), func.avg(delta), func.avg(delta * delta))
        .join(per_version, per_version.c.v == s.c.v)
        .group_by(s.c.h)
    )
    if hotkeys is not None:
        stmt = stmt.where(s.c.h.in_(list(hotkeys)))
    return stmt


@dataclass(frozen=True)
class VarianceSummary:
    versions: int
    mean_spread: float | None
    max_spread: float | None
    buckets: dict[str, int]
    deltas: list[Reliability]


def validator_variance(
    session: Session, *, suite_id: int | None, window: Window = Window()
) -> VarianceSummary:
    """The ORO validator-variance view of a suite: pair spreads per version and deltas per validator."""
    s = _scores(window, suite_id)
    spread = (
        select(s.c.v, (func.max(s.c.sc) - func.min(s.c.sc)).label("spread"))
        .group_by(s.c.v)
        .having(func.count() >= 2)
        .subquery()
    )
    # The same tiny tolerance as the notebooks, so 0.05 - 0.02 (0.0299999...) lands in "0.02-0.05".
    value = spread.c.spread + 1e-12
    lows = [value < SPREAD_BUCKETS[0]]
    labels = [f"<{SPREAD_BUCKETS[0]:g}"]
    for lo, hi in zip(SPREAD_BUCKETS, SPREAD_BUCKETS[1:], strict=False):
        lows.append(and_(value >= lo, value < hi))
        labels.append(f"{lo:g}-{hi:g}")
    lows.append(value >= SPREAD_BUCKETS[-1])
    labels.append(f">={SPREAD_BUCKETS[-1]:g}")
    row = session.execute(
        select(
            func.count(),
            func.avg(spread.c.spread),
            func.max(spread.c.spread),
            *[func.sum(case((cond, 1), else_=0)) for cond in lows],
        )
    ).one()
    buckets = {label: int(n or 0) for label, n in zip(labels, row[3:], strict=True)}
    deltas = []
    for hotkey, versions, pairs, mean, mean_sq in session.execute(_deltas(window, None, suite_id)):
        r = Reliability(
            hotkey, versions_compared=int(versions), pairs_evaluated=int(pairs or 0), mean_delta=float(mean)
        )
        if versions > 1:
            r.delta_sd = math.sqrt(max(0.0, (float(mean_sq) - float(mean) ** 2) * versions / (versions - 1)))
        deltas.append(r)
    deltas.sort(key=lambda r: -abs(r.mean_delta or 0.0))
    return VarianceSummary(
        versions=int(row[0]),
        mean_spread=float(row[1]) if row[1] is not None else None,
        max_spread=float(row[2]) if row[2] is not None else None,
        buckets=buckets,
        deltas=deltas,
    )


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    if isinstance(value, str):  # SQLite returns aggregates of datetime columns as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ScoreInterval:
    """The paired problem bootstrap of one version's score (``oro_graph.stats``, as the notebooks draw it)."""

    mean: float
    lower: float
    upper: float
    n_problems: int
    n_boot: int
    confidence: float


BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0
_interval_cache: dict[tuple[object, ...], ScoreInterval | None] = {}


def score_interval(session: Session, version_id: uuid.UUID) -> ScoreInterval | None:
    """Bootstrap interval over the per-problem results of the version's included runs.

    The same computation (draws, seed, missing scores as 0) as the notebooks, cached per version
    until its results change (keyed by their count and newest update).
    """
    return score_intervals_by_version_ids(session, [version_id]).get(version_id)


def score_intervals_by_version_ids(
    session: Session, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ScoreInterval | None]:
    """``score_interval`` for many versions: two statements, whatever their number."""
    from oro_graph.models import ProblemResult

    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    included = and_(
        col(EvaluationRun.agent_version_id).in_(ids),
        col(EvaluationRun.is_included).is_(True),
        col(EvaluationRun.race_id).is_(None),
    )
    stamps = {
        vid: (count, str(newest))
        for vid, count, newest in session.execute(
            select(EvaluationRun.agent_version_id, func.count(), func.max(ProblemResult.updated_at))
            .join(ProblemResult, col(ProblemResult.run_id) == EvaluationRun.id)
            .where(included)
            .group_by(EvaluationRun.agent_version_id)
        )
    }
    out: dict[uuid.UUID, ScoreInterval | None] = {}
    missing = []
    for vid in ids:
        key = (vid, *stamps.get(vid, (0, "None")))
        if key in _interval_cache:
            out[vid] = _interval_cache[key]
        elif vid not in stamps:
            out[vid] = None
        else:
            missing.append(vid)
    if missing:
        rows: dict[uuid.UUID, list[tuple[object, str, float | None]]] = {vid: [] for vid in missing}
        for vid, problem, status, score in session.execute(
            select(
                EvaluationRun.agent_version_id,
                ProblemResult.problem_id,
                ProblemResult.status,
                ProblemResult.score,
            )
            .join(ProblemResult, col(ProblemResult.run_id) == EvaluationRun.id)
            .where(
                col(EvaluationRun.agent_version_id).in_(missing),
                col(EvaluationRun.is_included).is_(True),
                col(EvaluationRun.race_id).is_(None),
            )
        ):
            rows[vid].append((problem, status, score))
        if len(_interval_cache) > 10_000:
            _interval_cache.clear()
        for vid in missing:
            out[vid] = _interval_cache[(vid, *stamps[vid])] = _bootstrap(vid, rows[vid])
    return out


def _bootstrap(
    version_id: uuid.UUID, rows: Sequence[tuple[object, str, float | None]]
) -> ScoreInterval | None:
    if not rows:
        return None
    x = problem_means(rows)
    if x.shape[1] == 0:
        return None
    drawn = paired_bootstrap(x, n_boot=BOOTSTRAP_DRAWS, confidence=0.95, seed=BOOTSTRAP_SEED)
    return ScoreInterval(
        mean=float(drawn.mean[0]),
        lower=float(drawn.lower[0]),
        upper=float(drawn.upper[0]),
        n_problems=int(drawn.seen[0].sum()),
        n_boot=BOOTSTRAP_DRAWS,
        confidence=0.95,
    )
