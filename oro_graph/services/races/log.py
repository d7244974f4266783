"""A race's entries in the event log (the raceChanges subscription)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session

from oro_graph.models import Race
from oro_graph.services import events


def record_event(
    session: Session,
    kind: events.RaceEvent,
    race: Race,
    now: datetime,
    agent_version_id: uuid.UUID | None = None,
) -> None:
    """A race event in the log (the raceChanges subscription), in the transition's transaction. It
    names the race and the qualifier only: their state is read when the event is delivered, so a
    score is never in the log before the race publishes it."""
    events.record(
        session,
        kind,
        suite_id=race.suite_id,
        agent_version_id=agent_version_id,
        payload=events.RaceChanged(race.id),
        at=now,
    )
