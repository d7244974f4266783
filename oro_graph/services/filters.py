"""Filters and orders of the graph's lists, as SQL: each is a hashable value (a loader key) that
gives its WHERE conditions and its keyset order.

Nullable sort keys (a final score, a last-seen time) sort nulls last in both directions, as a pair
of keys: ``(value IS NULL, COALESCE(value, sentinel))``. Both are plain values, so the cursor of a
row among the nulls is as exact as any other and the keyset WHERE needs no NULL comparison.
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, exists, func, literal, select
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from oro_graph.errors import ValidationFailed
from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Problem,
    ProblemResult,
    Role,
    RunStatus,
    ValidatorState,
    VersionCategory,
    utcnow,
)
from oro_graph.models.base import UTCDateTime
from oro_graph.services import leaderboard, reliability, suites
from oro_graph.services.pages import (
    Order,
    Page,
    Relation,
    Window,
    count,
    keyset_page,
    relation_counts,
    relation_pages,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LIST = 100  # values in one `in` list of a filter


def nulls_last(column: Any, *, descending: bool, sentinel: Any) -> Order:
    """Sort keys that order ``column`` with nulls last whichever the direction."""
    return ((case((column.is_(None), 1), else_=0), False), (func.coalesce(column, sentinel), descending))


def _check_list(name: str, values: tuple[Any, ...] | None) -> None:
    if values is not None and len(values) > MAX_LIST:
        raise ValidationFailed(f"`{name}` lists at most {MAX_LIST} values")


def _check_range(name: str, low: Any, high: Any) -> None:
    if low is not None and high is not None and low > high:
        raise ValidationFailed(f"`{name}`: the lower bound is above the upper one")


# Problem results of a run ----------------------------------------------------------------------------

RESULT_ORDERS = ("updated_at", "score", "execution_time", "position")


@dataclass(frozen=True)
class ResultFilter:
    """Which of a run's problem results, in which order; every condition given must hold."""

    statuses: tuple[str, ...] | None = None
    problem_id: uuid.UUID | None = None
    category: str | None = None
    difficulty: str | None = None
    order_by: str = "updated_at"
    descending: bool = False

    def check(self) -> ResultFilter:
        _check_list("status", self.statuses)
        if self.order_by not in RESULT_ORDERS:
            raise ValidationFailed(f"problem results cannot be ordered by {self.order_by!r}")
        return self

    def where(self) -> list[Any]:
        out: list[ColumnElement[bool]] = []
        if self.statuses is not None:
            out.append(col(ProblemResult.status).in_(self.statuses))
        if self.problem_id is not None:
            out.append(col(ProblemResult.problem_id) == self.problem_id)
        problem: list[ColumnElement[bool]] = []
        if self.category is not None:
            problem.append(col(Problem.category) == self.category)
        if self.difficulty is not None:
            problem.append(col(Problem.difficulty) == self.difficulty)
        if problem:  # a semi-join: still one statement for every run's page
            out.append(col(ProblemResult.problem_id).in_(select(col(Problem.id)).where(*problem)))
        return out

    def order(self) -> Order:
        last = ((col(ProblemResult.id), self.descending),)
        if self.order_by == "updated_at":
            return ((col(ProblemResult.updated_at), self.descending), *last)
        if self.order_by == "position":
            position = (
                select(col(Problem.position))
                .where(col(Problem.id) == ProblemResult.problem_id)
                .scalar_subquery()
            )
            return ((position, self.descending), *last)
        column = col(ProblemResult.score) if self.order_by == "score" else col(ProblemResult.execution_time)
        return (*nulls_last(column, descending=self.descending, sentinel=literal(0.0)), *last)


# Agent versions of a suite -----------------------------------------------------------------------------

VERSION_ORDERS = ("submitted_at", "final_score", "eligible_at")


@dataclass(frozen=True)
class VersionFilter:
    """Which of a suite's versions, in which order; every condition given must hold."""

    states: tuple[str, ...] | None = None
    submitted_after: datetime | None = None
    submitted_before: datetime | None = None
    miner_hotkey: str | None = None
    order_by: str = "submitted_at"
    descending: bool = False

    def check(self) -> VersionFilter:
        _check_list("state", self.states)
        _check_range("submitted", self.submitted_after, self.submitted_before)
        if self.order_by not in VERSION_ORDERS:
            raise ValidationFailed(f"agent versions cannot be ordered by {self.order_by!r}")
        return self

    def where(self) -> list[Any]:
        out: list[ColumnElement[bool]] = []
        if self.states is not None:
            out.append(col(AgentVersion.state).in_(self.states))
        if self.submitted_after is not None:
            out.append(col(AgentVersion.submitted_at) >= self.submitted_after)
        if self.submitted_before is not None:
            out.append(col(AgentVersion.submitted_at) < self.submitted_before)
        if self.miner_hotkey is not None:
            out.append(
                col(AgentVersion.agent_id).in_(
                    select(col(Agent.id)).where(col(Agent.miner_hotkey) == self.miner_hotkey)
                )
            )
        return out

    def order(self) -> Order:
        last = ((col(AgentVersion.id), self.descending),)
        if self.order_by == "submitted_at":
            return ((col(AgentVersion.submitted_at), self.descending), *last)
        if self.order_by == "final_score":
            return (
                *nulls_last(col(AgentVersion.final_score), descending=self.descending, sentinel=literal(0.0)),
                *last,
            )
        sentinel = literal(EPOCH, UTCDateTime)
        return (
            *nulls_last(col(AgentVersion.eligible_at), descending=self.descending, sentinel=sentinel),
            *last,
        )


def filtered_relation_pages(
    session: Session, relation: Relation, spec: ResultFilter | VersionFilter, keys: list[Any], window: Window,
    where: list[Any],
) -> dict[Any, Page[Any]]:  # fmt: skip
    """``pages.relation_pages`` with the filter's conditions and order: one statement for all parents."""
    ordered = Relation(relation.model, relation.parent, spec.order())
    return relation_pages(session, ordered, keys, window, [*where, *spec.where()])


def filtered_relation_counts(
    session: Session,
    relation: Relation,
    spec: ResultFilter | VersionFilter,
    keys: list[Any],
    where: list[Any],
) -> dict[Any, int]:
    return relation_counts(session, relation, keys, [*where, *spec.where()])


# Validators ---------------------------------------------------------------------------------------------

VALIDATOR_ORDERS = ("hotkey", "last_seen_at", "last_claim_at")
VALIDATOR_FLAGS = ("biased", "stale", "slow")
# The notebooks' thresholds (analytics.metrics.validator_flags defaults).
BIAS_THRESHOLD = 0.03  # |mean delta vs peers| above this ...
MIN_VERSIONS = 10  # ... over at least this many shared versions
STALE_THRESHOLD = 0.10  # STALE / closed runs above this ...
MIN_RUNS = 30  # ... over at least this many closed (or, for durations, finished) runs
DURATION_MULTIPLE = 2.0  # p95 duration above this multiple of the median validator's p95


def flagged_validators(session: Session, flags: tuple[str, ...]) -> set[str]:
    """Validators any of ``flags`` holds for, over all their runs, by the notebooks' rules on the
    graph's reliability figures (services.reliability): biased (mean delta vs peers), stale (STALE
    share of closed runs) and slow (p95 duration against the median validator's; the notebooks'
    second slow rule, on timeouts against peers, is not applied here)."""
    hotkeys = list(
        session.execute(select(col(Hotkey.ss58)).where(col(Hotkey.role) == Role.VALIDATOR)).scalars()
    )
    figures = reliability.validator_reliability(session, hotkeys)
    found: set[str] = set()
    if "biased" in flags:
        found |= {
            h
            for h, r in figures.items()
            if r.mean_delta is not None
            and abs(r.mean_delta) > BIAS_THRESHOLD
            and r.versions_compared >= MIN_VERSIONS
        }
    if "stale" in flags:
        for h, r in figures.items():
            closed = r.runs - sum(r.counts.get(s.value, 0) for s in RunStatus.live())
            if closed >= MIN_RUNS and r.counts.get("STALE", 0) / closed > STALE_THRESHOLD:
                found.add(h)
    if "slow" in flags:
        finished = {
            h: r.duration_p95
            for h, r in figures.items()
            if r.duration_p95 is not None
            and sum(r.counts.get(s.value, 0) for s in RunStatus.finished()) >= MIN_RUNS
        }
        if finished:
            median = statistics.median(finished.values())
            found |= {h for h, p95 in finished.items() if median > 0 and p95 / median > DURATION_MULTIPLE}
    return found


@dataclass(frozen=True)
class ValidatorFilter:
    """Which validators, in which order; every condition given must hold. EVALUATING means holding a
    CLAIMED or RUNNING run whose lease has not lapsed (as ``validators.list_validators``)."""

    status: str | None = None  # "evaluating" or "available"
    flags: tuple[str, ...] | None = None  # any of VALIDATOR_FLAGS (see flagged_validators)
    last_seen_after: datetime | None = None
    last_seen_before: datetime | None = None
    order_by: str = "hotkey"
    descending: bool = False

    def check(self) -> ValidatorFilter:
        _check_range("lastSeen", self.last_seen_after, self.last_seen_before)
        unknown = set(self.flags or ()) - set(VALIDATOR_FLAGS)
        if unknown:
            raise ValidationFailed(f"unknown validator flags {sorted(unknown)}; use {list(VALIDATOR_FLAGS)}")
        if self.order_by not in VALIDATOR_ORDERS:
            raise ValidationFailed(f"validators cannot be ordered by {self.order_by!r}")
        return self

    def statement(self, now: datetime, flagged: set[str] | None = None) -> Any:
        state = col(ValidatorState.last_seen_at)
        stmt = (
            select(Hotkey)
            .outerjoin(ValidatorState, col(ValidatorState.hotkey) == Hotkey.ss58)
            .where(col(Hotkey.role) == Role.VALIDATOR)
        )
        if self.status is not None:
            live = exists().where(
                col(EvaluationRun.validator_hotkey) == Hotkey.ss58,
                col(EvaluationRun.status).in_(RunStatus.live()),
                col(EvaluationRun.lease_expires_at) > now,
            )
            stmt = stmt.where(live if self.status == "evaluating" else ~live)
        if flagged is not None:
            stmt = stmt.where(col(Hotkey.ss58).in_(sorted(flagged)))
        if self.last_seen_after is not None:
            stmt = stmt.where(state >= self.last_seen_after)
        if self.last_seen_before is not None:
            stmt = stmt.where(state < self.last_seen_before)
        return stmt

    def order(self) -> Order:
        last = ((col(Hotkey.ss58), self.descending),)
        if self.order_by == "hotkey":
            return last
        column = col(
            ValidatorState.last_seen_at if self.order_by == "last_seen_at" else ValidatorState.last_claim_at
        )
        return (*nulls_last(column, descending=self.descending, sentinel=literal(EPOCH, UTCDateTime)), *last)


def _flagged(session: Session, spec: ValidatorFilter) -> set[str] | None:
    return flagged_validators(session, spec.flags) if spec.flags else None


def validators_page(session: Session, spec: ValidatorFilter, window: Window) -> Page[Hotkey]:
    """One keyset page of the validators ``spec`` selects, in its order (one statement; a flag filter
    first computes the flags, a fixed number of statements whatever the number of runs)."""
    return keyset_page(session, spec.statement(utcnow(), _flagged(session, spec)), spec.order(), window)


def validators_count(session: Session, spec: ValidatorFilter) -> int:
    return count(session, spec.statement(utcnow(), _flagged(session, spec)))


# The leaderboard ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardFilter:
    """Which board entries: final score range, miner, and the mean score in a problem category (over the
    version's included runs, a missing score counting 0, as the notebooks' category profile)."""

    min_score: float | None = None
    max_score: float | None = None
    miner_hotkey: str | None = None
    category: str | None = None
    min_category_score: float | None = None
    max_category_score: float | None = None

    def check(self) -> BoardFilter:
        _check_range("score", self.min_score, self.max_score)
        _check_range("categoryScore", self.min_category_score, self.max_category_score)
        bounded = self.min_category_score is not None or self.max_category_score is not None
        if bounded and self.category is None:
            raise ValidationFailed("a category score range needs `category`")
        return self

    @property
    def empty(self) -> bool:
        return self == BoardFilter()

    def where(self) -> list[Any]:
        out = []
        score = col(AgentVersion.final_score)
        if self.min_score is not None:
            out.append(score >= self.min_score)
        if self.max_score is not None:
            out.append(score <= self.max_score)
        if self.miner_hotkey is not None:
            out.append(col(Agent.miner_hotkey) == self.miner_hotkey)
        if self.category is not None:  # the running mean (models.totals): an index range scan
            mean = col(VersionCategory.mean)
            versions = select(col(VersionCategory.agent_version_id)).where(
                col(VersionCategory.category) == self.category,
                *([mean >= self.min_category_score] if self.min_category_score is not None else []),
                *([mean <= self.max_category_score] if self.max_category_score is not None else []),
            )
            out.append(col(AgentVersion.id).in_(versions))
        return out


def _filtered_board(
    session: Session, suite_id: int | None, q: str | None, as_of: datetime | None, spec: BoardFilter
) -> tuple[int, Any]:
    """The board statement (rank, version, agent) narrowed by ``spec``. Ranks stay the whole board's:
    the rows are numbered by a window function over the board before the filter applies."""
    suite = suites.resolve_suite(session, suite_id)
    suite_key = suite.id or 0
    if q:
        stmt = leaderboard._board_stmt(suite_key, q, as_of)
    else:
        ranked = leaderboard._ranked_board(suite_key, as_of)
        stmt = (
            sa_select(ranked.c.rank, AgentVersion, Agent)
            .join(AgentVersion, col(AgentVersion.id) == ranked.c.vid)
            .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        )
    return suite_key, stmt.where(*spec.where())


def board_window(
    session: Session,
    *,
    suite_id: int | None,
    q: str | None,
    as_of: datetime | None,
    window: Window,
    spec: BoardFilter,
) -> Page[leaderboard.BoardRow]:
    """``leaderboard.board_window`` narrowed by ``spec`` (the same order, cursors and ranks)."""
    if spec.empty:
        return leaderboard.board_window(session, suite_id=suite_id, q=q, as_of=as_of, window=window)
    suite_key, stmt = _filtered_board(session, suite_id, q, as_of, spec)
    page = keyset_page(session, stmt, leaderboard.BOARD_KEY, window)
    return replace(page, rows=leaderboard.board_rows(session, suite_key, page.rows, as_of=as_of))


def board_count(
    session: Session, *, suite_id: int | None, q: str | None, as_of: datetime | None, spec: BoardFilter
) -> int:
    if spec.empty:
        return leaderboard.board_count(session, suite_id=suite_id, q=q, as_of=as_of)
    return count(session, _filtered_board(session, suite_id, q, as_of, spec)[1])
