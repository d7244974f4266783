"""The scheduler: one server process at a time drives the cycle, under a lease row in the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from oro_graph.db import insert_if_absent, writes
from oro_graph.models import Race, RaceStatus, SchedulerLease, utcnow
from oro_graph.services import locks, suites
from oro_graph.services.locks import Lock
from oro_graph.services.races.completion import all_settled, complete_now
from oro_graph.services.races.cycle import close_qualifying, open_race
from oro_graph.services.races.qualifying import refresh_field
from oro_graph.services.races.views import live_race
from oro_graph.settings import Settings

SCHEDULER_JOB = "races"


@dataclass(frozen=True)
class TickReport:
    acted: bool  # this process held the lease
    opened: uuid.UUID | None = None
    closed: uuid.UUID | None = None
    completed: uuid.UUID | None = None


def take_lease(
    session: Session, holder: str, seconds: float, now: datetime, *, job: str = SCHEDULER_JOB
) -> bool:
    """Hold ``job``'s lease row for ``seconds`` unless another holder's lease is still current."""
    locks.take(session, Lock.SCHEDULER_LEASE, job)
    insert_if_absent(session, SchedulerLease, name=job, holder=holder, expires_at=now)
    taken = session.execute(
        sql_update(SchedulerLease)
        .where(
            col(SchedulerLease.name) == job,
            (col(SchedulerLease.holder) == holder) | (col(SchedulerLease.expires_at) <= now),
        )
        .values(holder=holder, expires_at=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount)


def scheduler_lease(session: Session) -> SchedulerLease | None:
    return session.get(SchedulerLease, SCHEDULER_JOB)


@writes
def tick(session: Session, *, settings: Settings, holder: str, now: datetime | None = None) -> TickReport:
    """One step of the race cycle, if this process holds the scheduler's lease: open a race when it is
    time, keep a qualifying field current, close qualifying at its hour, complete a race whose field
    has settled or whose deadline passed."""
    now = now or utcnow()
    if not take_lease(session, holder, max(3 * settings.race_scheduler_seconds, 10.0), now):
        return TickReport(acted=False)
    race = live_race(session, lock=True)
    if race is None:
        last = session.exec(select(Race).order_by(col(Race.race_number).desc()).limit(1)).first()
        ended = last and (last.race_completed_at or last.cancelled_at)
        if ended and now < ended + timedelta(hours=settings.race_interval_hours):
            return TickReport(acted=True)
        if suites.current_suite_or_none(session) is None:
            return TickReport(acted=True)
        return TickReport(acted=True, opened=open_race(session, settings=settings, now=now).id)
    if race.status == RaceStatus.QUALIFYING_OPEN:
        if now >= race.qualifying_closes_at:
            return TickReport(
                acted=True, closed=close_qualifying(session, settings=settings, race_id=race.id, now=now).id
            )
        refresh_field(session, race, now)
        return TickReport(acted=True)
    if all_settled(session, race) or (race.race_deadline_at is not None and now >= race.race_deadline_at):
        return TickReport(acted=True, completed=complete_now(session, race, settings=settings, now=now).id)
    return TickReport(acted=True)


def projected_completion(race: Race, settings: Settings) -> datetime | None:
    """When the race ends at the latest: its deadline once running, else qualifying close plus its length."""
    if race.status in RaceStatus.ended():
        return race.race_completed_at or race.cancelled_at
    return race.race_deadline_at or race.qualifying_closes_at + timedelta(hours=settings.race_max_hours)
