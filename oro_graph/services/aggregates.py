"""The handful of aggregates a dashboard draws, each one SQL statement on either database:
submissions per UTC day, runs per validator per UTC day, and a histogram of the board's scores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, and_, case, cast, func, literal
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from oro_graph.errors import ValidationFailed
from oro_graph.models import AgentVersion, AgentVersionState, EvaluationRun, RunStatus, Suite, utcnow

MAX_DAYS = 366
DEFAULT_DAYS = 30
HISTOGRAM_BINS = 20


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class ValidatorDay:
    day: date
    validator_hotkey: str
    runs: int
    successes: int
    failures: int  # FAILED or TIMED_OUT
    stale: int


@dataclass(frozen=True)
class Histogram:
    suite_id: int | None  # None when no suite is active (and none was named)
    counts: list[int]  # HISTOGRAM_BINS bins of width 1/HISTOGRAM_BINS over [0, 1]; the last is closed


def days_window(
    since: datetime | None, until: datetime | None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[since, until): the last DEFAULT_DAYS days up to now when omitted; at most MAX_DAYS long."""
    until = until or (now or utcnow())
    since = since or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise ValidationFailed("`since` must be before `until`")
    if until - since > timedelta(days=MAX_DAYS):
        raise ValidationFailed(f"the window is at most {MAX_DAYS} days long")
    return since, until


def utc_day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a UTC timestamp column, as SQL (SQLite stores UTC text; PostgreSQL
    converts the timestamptz to UTC first, whatever the session's time zone)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _suite_clause(suite_id: int | None) -> Any:
    """The named suite, else the active one (the newest active, as ``suites.current_suite_or_none``),
    as a scalar subquery so the caller's statement stays one statement."""
    if suite_id is not None:
        return literal(suite_id)
    return (
        select(col(Suite.id)).where(Suite.is_active).order_by(col(Suite.id).desc()).limit(1).scalar_subquery()
    )


def submissions_per_day(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    suite_id: int | None = None,
) -> list[DayCount]:
    """Versions submitted per UTC day in [since, until) (all suites unless one is named); days
    without submissions are absent."""
    since, until = days_window(since, until)
    day = utc_day(session, col(AgentVersion.submitted_at))
    stmt = (
        select(day.label("day"), func.count().label("n"))
        .where(col(AgentVersion.submitted_at) >= since, col(AgentVersion.submitted_at) < until)
        .group_by(day)
        .order_by(day)
    )
    if suite_id is not None:
        stmt = stmt.where(AgentVersion.suite_id == suite_id)
    return [DayCount(_as_date(d), int(n)) for d, n in session.execute(stmt).all()]


def runs_per_validator_per_day(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> list[ValidatorDay]:
    """Runs claimed per (UTC day, validator) in [since, until), by outcome; by day, then hotkey."""
    since, until = days_window(since, until)
    day = utc_day(session, col(EvaluationRun.claimed_at))
    status = col(EvaluationRun.status)

    def counted(*statuses: RunStatus) -> Any:
        return func.sum(case((status.in_(statuses), 1), else_=0))

    # SQLAlchemy's select: SQLModel's overloads stop at four columns.
    stmt = (
        sql_select(
            day,
            col(EvaluationRun.validator_hotkey),
            func.count(),
            counted(RunStatus.SUCCESS),
            counted(*RunStatus.failed()),
            counted(RunStatus.STALE),
        )
        .where(col(EvaluationRun.claimed_at) >= since, col(EvaluationRun.claimed_at) < until)
        .group_by(day, col(EvaluationRun.validator_hotkey))
        .order_by(day, col(EvaluationRun.validator_hotkey))
    )
    return [
        ValidatorDay(_as_date(d), hotkey, int(n), int(ok or 0), int(bad or 0), int(stale or 0))
        for d, hotkey, n, ok, bad, stale in session.execute(stmt).all()
    ]


def score_histogram(session: Session, *, suite_id: int | None = None) -> Histogram:
    """The board's final scores (ELIGIBLE versions of the suite, the active one by default) in
    HISTOGRAM_BINS equal bins over [0, 1]: bin i holds [i/20, (i+1)/20), the last also 1.0.
    One statement: one conditional count per bin, plus the suite id it counted."""
    suite = _suite_clause(suite_id)
    score = col(AgentVersion.final_score)

    def in_bin(i: int) -> Any:  # edges i/20 (not i*0.05): 3/20 is the double nearest 0.15, 3*0.05 is not
        upper = score <= 1.0 if i == HISTOGRAM_BINS - 1 else score < (i + 1) / HISTOGRAM_BINS
        return func.sum(case((and_(score >= i / HISTOGRAM_BINS, upper), 1), else_=0))

    stmt = select(suite, *[in_bin(i) for i in range(HISTOGRAM_BINS)]).where(
        AgentVersion.suite_id == suite, AgentVersion.state == AgentVersionState.ELIGIBLE
    )
    row = session.execute(stmt).one()
    found = row[0] if row[0] is not None else suite_id
    return Histogram(found, [int(n or 0) for n in row[1:]])
