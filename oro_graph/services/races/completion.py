"""Settlement: race runs count toward their qualifier's X of Y; the race completes and crowns its winner."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.models import (
    EvaluationRun,
    Hotkey,
    Race,
    RaceQualifier,
    RaceStatus,
    RunStatus,
    TopAgentHistory,
    WorkItem,
    utcnow,
)
from oro_graph.services import events, leaderboard, locks
from oro_graph.services.locks import Lock
from oro_graph.services.races.cycle import resolve_live
from oro_graph.services.races.draw import finisher_order, race_score_of
from oro_graph.services.races.log import record_event
from oro_graph.services.races.views import get_race
from oro_graph.settings import Settings


def _race_score(session: Session, work: WorkItem) -> float | None:
    """The mean of a qualifier's included race runs by validators that are not banned."""
    banned = select(Hotkey.ss58).where(col(Hotkey.banned).is_(True))
    scores = session.exec(
        select(EvaluationRun.validator_score).where(
            EvaluationRun.work_item_id == work.id,
            col(EvaluationRun.is_included).is_(True),
            col(EvaluationRun.validator_hotkey).not_in(banned),
        )
    ).all()
    return race_score_of(scores)


def settlement(included: int, failed: int, required: int, max_attempts: int | None) -> str | None:
    """Where a qualifier's X of Y stands: FINISHED with X successes, DID_NOT_FINISH once the attempts
    left cannot reach X, else None (still racing)."""
    if included >= required:
        return "FINISHED"
    if max_attempts is not None and included + failed >= max_attempts:
        return "DID_NOT_FINISH"
    return None


def on_race_run_finished(
    session: Session, work: WorkItem, run: EvaluationRun, *, settings: Settings, now: datetime
) -> None:
    """A race run finished: count it toward its qualifier's X of Y, settle the qualifier when it has
    its X successes (finished) or can no longer get them (did not finish), then maybe the race."""
    qualifier = session.get(RaceQualifier, (work.race_id, work.agent_version_id))
    if qualifier is None or work.race_id is None:
        return
    if run.status != RunStatus.SUCCESS:
        work.failed_attempts += 1
    finished = False
    if not work.is_closed:
        settled = settlement(
            work.included_successes, work.failed_attempts, work.required_successes, work.max_attempts
        )
        if settled == "FINISHED":
            work.is_closed, work.closed_at = True, now
            qualifier.race_score = _race_score(session, work)
            qualifier.finished_at = now
            finished = True
        elif settled == "DID_NOT_FINISH":
            work.is_closed, work.closed_at = True, now
            qualifier.did_not_finish = True
            qualifier.finished_at = now
    session.add_all([work, qualifier])
    session.flush()
    race = get_race(session, work.race_id, lock=True)
    if finished:
        record_event(session, events.RaceEvent.QUALIFIER_FINISHED, race, now, qualifier.agent_version_id)
    if race.status == RaceStatus.RACE_RUNNING and all_settled(session, race):
        complete_now(session, race, settings=settings, now=now)


def all_settled(session: Session, race: Race) -> bool:
    open_items = session.exec(
        select(func.count())
        .select_from(WorkItem)
        .where(WorkItem.race_id == race.id, col(WorkItem.is_closed).is_(False))
    ).one()
    return int(open_items) == 0


@writes
def complete_race(
    session: Session, *, settings: Settings, race_id: uuid.UUID | None = None, now: datetime | None = None
) -> Race:
    """Complete a running race now (the deadline, or an operator): unfinished qualifiers did not finish."""
    now = now or utcnow()
    race = resolve_live(session, race_id, RaceStatus.RACE_RUNNING)
    return complete_now(session, race, settings=settings, now=now)


def complete_now(session: Session, race: Race, *, settings: Settings, now: datetime) -> Race:
    locks.take(session, Lock.WORK_ITEM)  # the race's open work items
    session.execute(
        sql_update(WorkItem)
        .where(col(WorkItem.race_id) == race.id, col(WorkItem.is_closed).is_(False))
        .values(is_closed=True, closed_at=now)
        .execution_options(synchronize_session=False)
    )
    qualifiers = list(session.exec(select(RaceQualifier).where(RaceQualifier.race_id == race.id)))
    finishers = sorted(
        (q for q in qualifiers if q.race_score is not None),
        key=lambda q: finisher_order(q.race_score or 0.0, q.agent_version_id),
    )
    for q in sorted(qualifiers, key=lambda q: str(q.agent_version_id)):
        if q.race_score is None:
            q.did_not_finish = True
            q.finished_at = q.finished_at or now
            # Announced now, not when its attempts ran out: who did not finish is embargoed too.
            record_event(session, events.RaceEvent.QUALIFIER_DID_NOT_FINISH, race, now, q.agent_version_id)
        q.race_rank = None
    for rank, q in enumerate(finishers, 1):
        q.race_rank = rank
    session.add_all(qualifiers)
    winner = finishers[0] if finishers else None
    race.status = RaceStatus.RACE_COMPLETE
    race.race_completed_at = now
    race.secret_revealed = True
    race.scored_count = len(finishers)
    race.qualifier_count = len(qualifiers)
    race.winner_agent_version_id = winner.agent_version_id if winner else None
    race.winner_score = winner.race_score if winner else None
    race.updated_at = now
    session.add(race)
    record_event(session, events.RaceEvent.RACE_COMPLETED, race, now, race.winner_agent_version_id)
    session.flush()
    if winner is not None:
        crown(session, race, winner, now)
    return race


def crown(session: Session, race: Race, winner: RaceQualifier, now: datetime) -> None:
    """From a suite's first completed race on, its winner is the top agent the validators pay (the
    demo world replays its completed races through this too)."""
    leaderboard.lock_suite_board(session, race.suite_id)
    current = leaderboard.reign_at(session, race.suite_id, None)
    if current is not None and current.agent_version_id == winner.agent_version_id:
        current.score = winner.race_score or 0.0
        session.add(current)
        session.flush()
        return
    if current is not None:
        current.replaced_at = now
        session.add(current)
    session.add(
        TopAgentHistory(
            suite_id=race.suite_id,
            agent_version_id=winner.agent_version_id,
            score=winner.race_score or 0.0,
            top_at=now,
        )
    )
    events.record(
        session,
        events.BoardEvent.TOP_CHANGED,
        suite_id=race.suite_id,
        agent_version_id=winner.agent_version_id,
        payload=events.TopChanged(
            winner.race_score, current.agent_version_id if current else None, race_id=race.id
        ),
        at=now,
    )
    record_event(session, events.RaceEvent.TOP_CHANGED, race, now, winner.agent_version_id)
    session.flush()


def has_completed_race(session: Session, suite_id: int) -> bool:
    return session.execute(_COMPLETED_RACE, {"suite_id": suite_id}).first() is not None


# Asked by every completion that makes a version eligible: built once (building a select per call was
# a fifth of what crowning the top agent cost the validator loop).
_COMPLETED_RACE = (
    sa_select(Race.__table__.c.id)
    .where(
        Race.__table__.c.suite_id == bindparam("suite_id", type_=Integer),
        Race.__table__.c.status == RaceStatus.RACE_COMPLETE,
    )
    .limit(1)
)


def race_problem_ids(session: Session, run: EvaluationRun) -> list[uuid.UUID] | None:
    """The drawn problems of a race run, in draw order (None for qualifying runs)."""
    if run.race_id is None:
        return None
    race = get_race(session, run.race_id)
    return [uuid.UUID(p) for p in race.problem_ids or []]
