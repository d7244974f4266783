"""Agents and agent versions: reads, and the rule for when a version's code is released.

The admission of submissions lives in ``services.submissions``; its names are importable from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlmodel import Session, col, select

from oro_graph.errors import AgentNotFound, AgentVersionNotFound, ArtifactNotReleased
from oro_graph.models import Agent, AgentVersion, Miner, WorkItem, utcnow
from oro_graph.services.submissions import (
    AGENT_NAME_RE,
    AGENT_NAME_RULE,
    Admission,
    SourceChecker,
    check_cooldown,
    parse_in_process,
    read_agent_file,
    refuse_over_limit,
    screen_submission,
    submit,
    submit_agent,
    validate_agent_file,
    validate_agent_name,
    validate_file_name,
)
from oro_graph.settings import Settings

__all__ = [
    "AGENT_NAME_RE",
    "AGENT_NAME_RULE",
    "Admission",
    "Eligible",
    "MinerOverview",
    "SourceChecker",
    "VersionView",
    "agents_by_ids",
    "agents_of_miner",
    "check_cooldown",
    "code_available_at",
    "discloses",
    "get_agent",
    "get_version",
    "is_released",
    "latest_versions_by_agent_ids",
    "miner_overview",
    "miners_by_hotkeys",
    "next_allowed_at",
    "owned_agent_versions",
    "parse_in_process",
    "read_agent_file",
    "refuse_over_limit",
    "released_clause",
    "released_version",
    "screen_submission",
    "submit",
    "submit_agent",
    "validate_agent_file",
    "validate_agent_name",
    "validate_file_name",
    "version_view",
    "versions_by_agent_ids",
    "versions_by_ids",
    "versions_of_agent",
    "work_items_by_ids",
    "work_items_by_version_ids",
]


def next_allowed_at(session: Session, hotkey: str, settings: Settings) -> datetime | None:
    miner = session.get(Miner, hotkey)
    if miner is None or miner.last_submitted_at is None:
        return None
    return miner.last_submitted_at + timedelta(seconds=settings.submission_cooldown_seconds)


def get_agent(session: Session, agent_id: uuid.UUID, *, owner: str | None = None) -> Agent:
    """An agent; with ``owner`` only that miner's (another miner's id reads as not found)."""
    agent = session.get(Agent, agent_id)
    if agent is None or (owner is not None and agent.miner_hotkey != owner):
        raise AgentNotFound(f"agent {agent_id} does not exist")
    return agent


def get_version(session: Session, version_id: uuid.UUID, *, owner: str | None = None) -> AgentVersion:
    version = session.get(AgentVersion, version_id)
    if version is None:
        raise AgentVersionNotFound(f"agent version {version_id} does not exist")
    if owner is not None:
        agent = session.get(Agent, version.agent_id)
        if agent is None or agent.miner_hotkey != owner:
            raise AgentVersionNotFound(f"agent version {version_id} does not exist")
    return version


def agents_of_miner(session: Session, hotkey: str) -> list[Agent]:
    return list(
        session.exec(select(Agent).where(Agent.miner_hotkey == hotkey).order_by(col(Agent.created_at)))
    )


def versions_of_agent(session: Session, agent_id: uuid.UUID) -> list[AgentVersion]:
    stmt = (
        select(AgentVersion)
        .where(AgentVersion.agent_id == agent_id)
        .order_by(col(AgentVersion.version_number))
    )
    return list(session.exec(stmt))


def agents_by_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Agent]:
    return {row.id: row for row in session.exec(select(Agent).where(col(Agent.id).in_(list(ids))))}


def versions_by_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, AgentVersion]:
    rows = session.exec(select(AgentVersion).where(col(AgentVersion.id).in_(list(ids))))
    return {row.id: row for row in rows}


def versions_by_agent_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[AgentVersion]]:
    out: dict[uuid.UUID, list[AgentVersion]] = {}
    stmt = (
        select(AgentVersion)
        .where(col(AgentVersion.agent_id).in_(list(ids)))
        .order_by(col(AgentVersion.agent_id), col(AgentVersion.version_number))
    )
    for row in session.exec(stmt):
        out.setdefault(row.agent_id, []).append(row)
    return out


def latest_versions_by_agent_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, AgentVersion]:
    return {agent_id: rows[-1] for agent_id, rows in versions_by_agent_ids(session, ids).items()}


def work_items_by_version_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, WorkItem]:
    rows = session.exec(
        select(WorkItem).where(col(WorkItem.agent_version_id).in_(list(ids)), col(WorkItem.race_id).is_(None))
    )
    return {row.agent_version_id: row for row in rows}


class Eligible(Protocol):
    """What the release rule reads of a version: a row, or a value that carries its eligibility."""

    @property
    def eligible_at(self) -> datetime | None: ...


def code_available_at(version: Eligible, settings: Settings) -> datetime | None:
    """When the code of an eligible version becomes public: eligibility plus the release delay."""
    if version.eligible_at is None:
        return None
    return version.eligible_at + timedelta(seconds=settings.code_release_delay_seconds)


def is_released(version: Eligible, settings: Settings, now: datetime | None = None) -> bool:
    available = code_available_at(version, settings)
    return available is not None and (now or utcnow()) >= available


@dataclass(frozen=True)
class VersionView:
    """A version with the rows every read of it needs (agent and work item)."""

    version: AgentVersion
    agent: Agent
    work_item: WorkItem | None


def version_view(session: Session, version_id: uuid.UUID, *, owner: str | None = None) -> VersionView:
    version = get_version(session, version_id, owner=owner)
    agent = session.get(Agent, version.agent_id)
    if agent is None:  # the foreign key forbids it
        raise AgentNotFound(f"agent {version.agent_id} of version {version.id} does not exist")
    work = session.exec(
        select(WorkItem).where(WorkItem.agent_version_id == version.id, col(WorkItem.race_id).is_(None))
    ).first()
    return VersionView(version=version, agent=agent, work_item=work)


# What an unreleased version reveals, to whom: the one rule both adapters apply.
#
# - Its owner (a signed miner request) sees everything about it, as soon as it is submitted.
# - A validator sees it through the run it holds (the claim hands out the code and its SHA-256).
# - The public sees its *evaluation status* only: that it exists, its agent, number, state, work
#   item, runs and scores (REST's public status, runs, pending and running paths, which the official
#   clients read). The version record itself, with its code identity (SHA-256 and size), its code and
#   its logs, is public only once released (eligible, plus ORO_CODE_RELEASE_DELAY_SECONDS). Before
#   that REST's public record answers 404 ARTIFACT_NOT_RELEASED and the graph's public fields give no
#   AgentVersion for it: `agentVersion(id)`, `node`/`nodes` and every nullable link answer null, and
#   connections of versions leave it out (counts included).


def discloses(
    version: AgentVersion,
    settings: Settings,
    *,
    owner: bool = False,
    holds_run: bool = False,
    now: datetime | None = None,
) -> bool:
    """Whether the version record (with its code identity) may be shown to this caller: always to
    the signed owner and to a validator holding one of its runs, to the public once released."""
    return owner or holds_run or is_released(version, settings, now)


def release_cutoff(settings: Settings, now: datetime | None = None) -> datetime:
    """The latest eligibility instant whose version is public at ``now``."""
    return (now or utcnow()) - timedelta(seconds=settings.code_release_delay_seconds)


def released_clause(settings: Settings, now: datetime | None = None) -> Any:
    """``discloses`` for the public as a SQL condition on AgentVersion (for lists and counts)."""
    cutoff = release_cutoff(settings, now)
    return col(AgentVersion.eligible_at).is_not(None) & (col(AgentVersion.eligible_at) <= cutoff)


def released_version(
    session: Session, version_id: uuid.UUID, *, settings: Settings, now: datetime | None = None
) -> VersionView:
    """A version as the public sees it in detail: only once ``discloses`` lets the public see it.

    Before that (not yet eligible, or inside the release delay) it is ARTIFACT_NOT_RELEASED.
    """
    view = version_view(session, version_id)
    if not discloses(view.version, settings, now=now):
        available = code_available_at(view.version, settings)
        when = f"at {available.isoformat()}" if available else "once the version is eligible"
        raise ArtifactNotReleased(f"agent version {version_id} is not released yet; it will be {when}")
    return view


@dataclass(frozen=True)
class MinerOverview:
    """A miner's agents with their latest versions, and whether it may submit now."""

    agents: list[Agent]
    latest: dict[uuid.UUID, AgentVersion]
    next_allowed_at: datetime | None
    can_submit: bool


def miner_overview(
    session: Session, hotkey: str, *, settings: Settings, now: datetime | None = None
) -> MinerOverview:
    own = agents_of_miner(session, hotkey)
    next_at = next_allowed_at(session, hotkey, settings)
    can_submit = next_at is None or (now or utcnow()) >= next_at
    return MinerOverview(own, latest_versions_by_agent_ids(session, [a.id for a in own]), next_at, can_submit)


def owned_agent_versions(session: Session, agent_id: uuid.UUID, *, owner: str) -> list[AgentVersion]:
    """The versions of one of ``owner``'s agents (another miner's agent reads as AGENT_NOT_FOUND)."""
    get_agent(session, agent_id, owner=owner)
    return versions_of_agent(session, agent_id)


def miners_by_hotkeys(session: Session, hotkeys: Iterable[str]) -> dict[str, Miner]:
    return {
        row.hotkey: row for row in session.exec(select(Miner).where(col(Miner.hotkey).in_(list(hotkeys))))
    }


def work_items_by_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, WorkItem]:
    return {row.id: row for row in session.exec(select(WorkItem).where(col(WorkItem.id).in_(list(ids))))}
