"""The cycle: open a race, close qualifying (the draw and the race work), cancel."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, text
from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.errors import RaceInFlight, RaceNotFound, ValidationFailed
from oro_graph.models import Problem, Race, RaceQualifier, RaceStatus, WorkItem, utcnow
from oro_graph.services import events, locks, suites
from oro_graph.services.locks import Lock
from oro_graph.services.races.draw import commitment_of, draw_problems, draw_seed
from oro_graph.services.races.log import record_event
from oro_graph.services.races.qualifying import qualifying_threshold, refresh_field
from oro_graph.services.races.views import get_race, live_race
from oro_graph.settings import Settings

_RACE_LOCK_NS = 0x0E1  # advisory-lock namespace: "open a race" (one live race at a time)


def _lock_openers(session: Session) -> None:
    locks.take(session, Lock.RACE_OPENERS)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": _RACE_LOCK_NS})


@writes
def open_race(
    session: Session, *, settings: Settings, suite_id: int | None = None, now: datetime | None = None
) -> Race:
    """Open qualifying for a new race on a suite (the active one by default)."""
    now = now or utcnow()
    _lock_openers(session)
    if (live := live_race(session)) is not None:
        raise RaceInFlight(f"race {live.race_number} is still {live.status}; complete or cancel it first")
    suite = suites.resolve_suite(session, suite_id)
    number = (session.exec(select(func.max(Race.race_number))).one() or 0) + 1
    secret = secrets.token_hex(32)
    race = Race(
        race_number=number,
        suite_id=suite.id or 0,
        status=RaceStatus.QUALIFYING_OPEN,
        qualifying_threshold=qualifying_threshold(session, suite.id or 0, settings=settings, now=now),
        max_qualifiers=settings.race_max_qualifiers,
        problem_count=settings.race_problems,
        required_successes=settings.race_required_successes,
        max_attempts=settings.race_max_attempts,
        created_at=now,
        qualifying_closes_at=now + timedelta(hours=settings.race_qualifying_hours),
        seed_commitment=commitment_of(secret),
        secret=secret,
        updated_at=now,
    )
    session.add(race)
    session.flush()
    record_event(session, events.RaceEvent.RACE_OPENED, race, now)
    refresh_field(session, race, now)
    return race


def resolve_live(session: Session, race_id: uuid.UUID | None, status: RaceStatus) -> Race:
    race = get_race(session, race_id, lock=True) if race_id else live_race(session, lock=True)
    if race is None:
        raise RaceNotFound("no race is open")
    if race.status != status:
        raise ValidationFailed(f"race {race.race_number} is {race.status}, not {status}")
    return race


@writes
def close_qualifying(
    session: Session, *, settings: Settings, race_id: uuid.UUID | None = None, now: datetime | None = None
) -> Race:
    """Freeze the field, draw the problems and hand out race work (a race with no field is cancelled)."""
    now = now or utcnow()
    race = resolve_live(session, race_id, RaceStatus.QUALIFYING_OPEN)
    refresh_field(session, race, now)
    qualifiers = list(session.exec(select(RaceQualifier).where(RaceQualifier.race_id == race.id)))
    if not qualifiers:
        return _cancel(session, race, now, "no version qualified")
    problem_ids = session.exec(select(Problem.id).where(Problem.suite_id == race.suite_id)).all()
    race.draw_seed = draw_seed(race.secret, [q.agent_version_id for q in qualifiers])
    race.problem_ids = draw_problems(race.draw_seed, problem_ids, race.problem_count)
    race.status = RaceStatus.RACE_RUNNING
    race.race_started_at = now
    race.race_deadline_at = now + timedelta(hours=settings.race_max_hours)
    race.updated_at = now
    session.add(race)
    for qualifier in qualifiers:
        session.add(
            WorkItem(
                agent_version_id=qualifier.agent_version_id,
                suite_id=race.suite_id,
                race_id=race.id,
                required_successes=race.required_successes,
                max_attempts=race.max_attempts,
                created_at=now,
            )
        )
    record_event(session, events.RaceEvent.QUALIFYING_CLOSED, race, now)
    session.flush()
    return race


def _cancel(session: Session, race: Race, now: datetime, reason: str) -> Race:
    race.status = RaceStatus.CANCELLED
    race.cancelled_at = now
    race.secret_revealed = True
    race.updated_at = now
    session.add(race)
    locks.take(session, Lock.WORK_ITEM)  # the race's open work items
    session.execute(
        sql_update(WorkItem)
        .where(col(WorkItem.race_id) == race.id, col(WorkItem.is_closed).is_(False))
        .values(is_closed=True, closed_at=now)
        .execution_options(synchronize_session=False)
    )
    record_event(session, events.RaceEvent.RACE_CANCELLED, race, now)
    session.flush()
    return race


@writes
def cancel_race(session: Session, *, race_id: uuid.UUID | None = None, now: datetime | None = None) -> Race:
    """Cancel a live race: its race work closes, nobody wins, the top agent does not change."""
    now = now or utcnow()
    race = get_race(session, race_id, lock=True) if race_id else live_race(session, lock=True)
    if race is None:
        raise RaceNotFound("no race is open")
    if race.status not in RaceStatus.live():
        raise ValidationFailed(f"race {race.race_number} has already ended ({race.status})")
    return _cancel(session, race, now, "cancelled by an operator")
