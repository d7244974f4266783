"""Who qualifies: the threshold (decaying while qualifying is open) and the field it chooses."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from oro_graph.models import (
    Agent,
    AgentVersion,
    AgentVersionState,
    Hotkey,
    QualificationType,
    Race,
    RaceQualifier,
    RaceSelection,
)
from oro_graph.services import events
from oro_graph.services.races.log import record_event
from oro_graph.services.races.views import latest_completed
from oro_graph.settings import Settings


def qualifying_threshold(session: Session, suite_id: int, *, settings: Settings, now: datetime) -> float:
    """The score a challenger's qualifying score must reach: the reigning winner's race score plus
    ``challenge_threshold``, halving every ``race_threshold_half_life_hours`` since that race; 0
    before the suite's first completed race."""
    last = latest_completed(session, suite_id)
    if last is None:
        return 0.0
    return decayed_threshold(last.winner_score, last.race_completed_at, settings=settings, now=now)


def decayed_threshold(
    winner_score: float | None, completed_at: datetime | None, *, settings: Settings, now: datetime
) -> float:
    """The qualifying threshold ``now`` after a race its winner won with ``winner_score`` (0 without one)."""
    if winner_score is None or completed_at is None:
        return 0.0
    hours = max(0.0, (now - completed_at).total_seconds() / 3600)
    decay = 0.5 ** (hours / settings.race_threshold_half_life_hours)
    return min(1.0, (winner_score + settings.challenge_threshold) * decay)


def barred_versions(session: Session) -> set[uuid.UUID]:
    return set(
        session.exec(
            select(RaceQualifier.agent_version_id).where(col(RaceQualifier.eliminated_at).is_not(None))
        )
    )


@dataclass(frozen=True)
class Entrant:
    version: AgentVersion
    miner_hotkey: str
    qualification_type: QualificationType


@dataclass(frozen=True)
class Candidate:
    """An eligible version that may race: its miner, qualifying score and when it became eligible."""

    version_id: uuid.UUID
    miner_hotkey: str
    score: float
    eligible_at: datetime | None


def choose_field(
    candidates: Iterable[Candidate],
    *,
    pins: Mapping[str, uuid.UUID],
    incumbent: uuid.UUID | None,
    threshold: float,
    cap: int,
    opened_at: datetime,
) -> list[tuple[Candidate, QualificationType]]:
    """The field rule on plain values (``candidates``: eligible, neither banned nor barred): the
    incumbent first, then versions at or above the threshold, best first, one per miner (its pinned
    version if that one qualifies, else its best), up to the cap."""
    ranked = sorted(candidates, key=lambda c: (-c.score, c.eligible_at or opened_at, str(c.version_id)))
    field: list[tuple[Candidate, QualificationType]] = []
    seen: set[str] = set()
    for c in ranked:
        if incumbent is not None and c.version_id == incumbent:
            field.append((c, QualificationType.INCUMBENT))
            seen.add(c.miner_hotkey)
    best: dict[str, Candidate] = {}
    for c in ranked:  # best first, so the first seen per miner is its best
        if c.score >= threshold - 1e-12:
            best.setdefault(c.miner_hotkey, c)
            if pins.get(c.miner_hotkey) == c.version_id:
                best[c.miner_hotkey] = c
    chosen = sorted(
        (c for h, c in best.items() if h not in seen),
        key=lambda c: (-c.score, c.eligible_at or opened_at, str(c.version_id)),
    )
    for c in chosen:
        if len(field) >= cap:
            break
        field.append((c, QualificationType.SCORED))
    return field


def field_of(session: Session, race: Race) -> list[Entrant]:
    """Who races (``choose_field``) among the suite's eligible versions, banned miners and barred
    versions left out."""
    banned = set(session.exec(select(Hotkey.ss58).where(col(Hotkey.banned).is_(True))))
    barred = barred_versions(session)
    rows = session.exec(
        select(AgentVersion, Agent.miner_hotkey)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(
            AgentVersion.suite_id == race.suite_id,
            AgentVersion.state == AgentVersionState.ELIGIBLE,
            col(AgentVersion.final_score).is_not(None),
        )
    ).all()
    versions = {v.id: v for v, h in rows if h not in banned and v.id not in barred}
    candidates = [
        Candidate(v.id, h, v.final_score or 0.0, v.eligible_at) for v, h in rows if v.id in versions
    ]
    pins = {row.miner_hotkey: row.agent_version_id for row in session.exec(select(RaceSelection))}
    incumbent = latest_completed(session, race.suite_id)
    field = choose_field(
        candidates,
        pins=pins,
        incumbent=incumbent.winner_agent_version_id if incumbent else None,
        threshold=race.qualifying_threshold,
        cap=race.max_qualifiers,
        opened_at=race.created_at,
    )
    return [Entrant(versions[c.version_id], c.miner_hotkey, kind) for c, kind in field]


def refresh_field(session: Session, race: Race, now: datetime) -> None:
    """Make the qualifier rows of a race in qualifying match its field now."""
    wanted = {e.version.id: e for e in field_of(session, race)}
    existing = {
        q.agent_version_id: q
        for q in session.exec(select(RaceQualifier).where(RaceQualifier.race_id == race.id))
    }
    for vid, row in existing.items():
        if vid not in wanted:
            session.delete(row)
    for vid, entrant in wanted.items():
        if vid not in existing:
            record_event(session, events.RaceEvent.QUALIFIER_ENTERED, race, now, vid)
        row = existing.get(vid) or RaceQualifier(
            race_id=race.id,
            agent_version_id=vid,
            miner_hotkey=entrant.miner_hotkey,
            qualification_type=entrant.qualification_type,
            entered_at=now,
        )
        row.qualification_type = entrant.qualification_type
        row.qualifying_score = entrant.version.final_score
        session.add(row)
    race.qualifier_count = len(wanted)
    race.updated_at = now
    session.add(race)
    session.flush()
