"""Miners' pins: which version a miner races with, locked while a race runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from oro_graph.db import insert_if_absent, writes
from oro_graph.errors import NoSelection, NotVersionOwner, RaceLocked, ValidationFailed
from oro_graph.models import (
    Agent,
    AgentVersion,
    AgentVersionState,
    Race,
    RaceQualifier,
    RaceSelection,
    RaceStatus,
    utcnow,
)
from oro_graph.services import locks
from oro_graph.services.locks import Lock
from oro_graph.services.races.qualifying import barred_versions, refresh_field
from oro_graph.services.races.views import live_race
from oro_graph.settings import Settings


def _pinnable(session: Session, hotkey: str, version_id: uuid.UUID, now: datetime) -> AgentVersion:
    row = session.exec(
        select(AgentVersion, Agent.miner_hotkey)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(AgentVersion.id == version_id)
    ).first()
    if row is None or row[1] != hotkey:
        raise NotVersionOwner(f"agent version {version_id} is not one of your versions")
    version = row[0]
    if version.state != AgentVersionState.ELIGIBLE:
        raise ValidationFailed(
            f"agent version {version_id} is {version.state}; only an ELIGIBLE version can race"
        )
    if version.id in barred_versions(session):
        raise ValidationFailed(f"agent version {version_id} was eliminated from races")
    return version


def selections_locked(race: Race | None) -> bool:
    """Selections are locked while a race runs (its field is frozen), until it ends."""
    return race is not None and race.status == RaceStatus.RACE_RUNNING


def _refuse_when_locked(race: Race | None) -> None:
    if race is not None and selections_locked(race):
        raise RaceLocked(
            f"qualifying for race {race.race_number} has closed; selections are locked until it ends"
        )


@writes
def pin_selection(
    session: Session,
    *,
    hotkey: str,
    agent_version_id: uuid.UUID,
    settings: Settings,
    now: datetime | None = None,
) -> RaceSelection:
    """Pin the version a miner races with; refused while a race runs (its field is locked)."""
    now = now or utcnow()
    race = live_race(session, lock=True)
    _refuse_when_locked(race)
    _pinnable(session, hotkey, agent_version_id, now)
    insert_if_absent(
        session, RaceSelection, miner_hotkey=hotkey, agent_version_id=agent_version_id, updated_at=now
    )
    locks.take(session, Lock.SELECTION, hotkey)
    row = session.exec(
        select(RaceSelection).where(RaceSelection.miner_hotkey == hotkey).with_for_update()
    ).one()
    row.agent_version_id, row.updated_at = agent_version_id, now
    session.add(row)
    session.flush()
    if race is not None:
        refresh_field(session, race, now)
    return row


@writes
def unpin_selection(session: Session, *, hotkey: str, now: datetime | None = None) -> None:
    """Remove a miner's pin (its best qualifying version races again)."""
    now = now or utcnow()
    race = live_race(session, lock=True)
    _refuse_when_locked(race)
    deleted = session.execute(delete(RaceSelection).where(col(RaceSelection.miner_hotkey) == hotkey))
    if deleted.rowcount == 0:
        raise NoSelection("you have no race selection to clear")
    if race is not None:
        refresh_field(session, race, now)


def selection_of(session: Session, hotkey: str) -> RaceSelection | None:
    return session.get(RaceSelection, hotkey)


@dataclass(frozen=True)
class SelectionView:
    row: RaceSelection
    locked: bool  # a race is running: the pin cannot change until it ends


def selections_by_hotkeys(session: Session, hotkeys: Iterable[str]) -> dict[str, SelectionView]:
    rows = session.exec(select(RaceSelection).where(col(RaceSelection.miner_hotkey).in_(list(hotkeys)))).all()
    locked = selections_locked(live_race(session)) if rows else False
    return {row.miner_hotkey: SelectionView(row, locked) for row in rows}


def entries_of_versions(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[RaceQualifier]]:
    out: dict[uuid.UUID, list[RaceQualifier]] = {}
    for row in session.exec(select(RaceQualifier).where(col(RaceQualifier.agent_version_id).in_(list(ids)))):
        out.setdefault(row.agent_version_id, []).append(row)
    return out


@writes
def eliminate_versions_of(session: Session, hotkey: str, *, now: datetime | None = None) -> int:
    """Bar a miner's versions from future races (its ban): ``eliminated_at`` on their entries."""
    now = now or utcnow()
    versions = (
        select(AgentVersion.id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(Agent.miner_hotkey == hotkey)
    )
    result = session.execute(
        sql_update(RaceQualifier)
        .where(col(RaceQualifier.agent_version_id).in_(versions), col(RaceQualifier.eliminated_at).is_(None))
        .values(eliminated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
