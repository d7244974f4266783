"""Miner submissions, agents and agent versions."""

from __future__ import annotations

import ast
import hashlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

from sqlmodel import Session, col, select

from oro_graph.db import Database, insert_if_absent, writes
from oro_graph.errors import (
    AgentNotFound,
    AgentVersionNotFound,
    ArtifactNotReleased,
    CooldownActive,
    FileTooLarge,
    InvalidAgentName,
    InvalidFile,
    RateLimitExceeded,
)
from oro_graph.models import Agent, AgentVersion, AgentVersionState, Hotkey, Miner, Role, WorkItem, utcnow
from oro_graph.services import locks, registry, suites
from oro_graph.services.locks import Lock
from oro_graph.settings import Settings
from oro_graph.storage import Storage

AGENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
AGENT_NAME_RULE = "1-64 characters: letters, digits, '_', '-' or '.', starting with a letter or digit"


@dataclass(frozen=True)
class Admission:
    """The answer to a submission. REJECTED admissions carry a reason and create nothing."""

    status: str
    hotkey: str
    reason: str | None = None
    agent_id: uuid.UUID | None = None
    agent_version_id: uuid.UUID | None = None
    version_number: int | None = None
    next_allowed_at: datetime | None = None
    message: str = ""


def validate_agent_name(name: str) -> str:
    if not AGENT_NAME_RE.match(name):
        raise InvalidAgentName(f"invalid agent name {name!r}: use {AGENT_NAME_RULE}")
    return name


def validate_file_name(file_name: str) -> str:
    """An agent is one Python module: its file's name must end in ``.py``."""
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    if not base.lower().endswith(".py") or len(base) <= len(".py"):
        shown = repr(base[:80]) if base else "a file without a name"
        raise InvalidFile(f"the agent must be a Python source file named like agent.py; got {shown}")
    return base


def read_agent_file(content: bytes, *, max_bytes: int) -> str:
    """The cheap checks of an agent file (size, UTF-8, no NUL), before anything parses it."""
    if len(content) > max_bytes:
        raise FileTooLarge(f"agent file is larger than the limit of {max_bytes} bytes")
    if not content.strip():
        raise InvalidFile("agent file is empty")
    try:
        source = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"agent file is not UTF-8 text (bad byte at offset {exc.start})") from exc
    if "\x00" in source:
        raise InvalidFile("agent file contains NUL bytes; it must be Python source text")
    return source


def parse_in_process(source: str) -> None:
    """Parse ``source`` here, for trusted callers (scripts, the demo). The server never does: it
    parses uploads in ``oro_graph.sourcecheck``'s worker processes (see ``submit``)."""
    try:
        ast.parse(source)
    except SyntaxError as exc:
        raise InvalidFile(f"agent file is not valid Python: {exc.msg} at line {exc.lineno}") from exc
    except (MemoryError, RecursionError) as exc:
        raise InvalidFile("agent file is too complex to parse") from exc


def validate_agent_file(content: bytes, *, max_bytes: int) -> str:
    """The file must fit, decode as UTF-8 and parse as Python; errors name the line to fix."""
    source = read_agent_file(content, max_bytes=max_bytes)
    parse_in_process(source)
    return source


class SourceChecker(Protocol):
    async def acheck(self, source: str) -> None: ...


def screen_submission(
    session: Session,
    *,
    hotkey: str,
    agent_name: str,
    settings: Settings,
    file_name: str | None = None,
    now: datetime | None = None,
) -> Admission | None:
    """Every refusal of a submission that needs no look at the file: a REJECTED admission for an
    unregistered or banned hotkey, or an exception (wrong role, bad name, no suite, COOLDOWN_ACTIVE).
    None when the file is worth parsing. Reads only."""
    registered = session.get(Hotkey, hotkey)
    if registered is None:
        return Admission(
            "REJECTED", hotkey, "NOT_REGISTERED_ONCHAIN", message="hotkey is not registered on the subnet"
        )
    if registered.banned:
        return Admission("REJECTED", hotkey, "BANNED", message="hotkey is banned")
    registry.require_role(session, hotkey, Role.MINER)
    validate_agent_name(agent_name)
    if file_name is not None:
        validate_file_name(file_name)
    suites.get_current_suite(session)
    check_cooldown(session, hotkey, settings=settings, now=now)
    return None


async def submit(
    db: Database,
    checker: SourceChecker,
    *,
    hotkey: str,
    agent_name: str,
    content: bytes,
    settings: Settings,
    storage: Storage,
    file_name: str | None = None,
    over_limit: int | None = None,
) -> Admission:
    """A miner's submission, cheapest refusal first, as both adapters serve it.

    0. ``over_limit``: the seconds the edge's per-hotkey submission budget asks this request to
       wait (None: within budget). Over it, ``refuse_over_limit`` answers;
    1. ``screen_submission`` (one read-only transaction): registration, ban, role, name, suite and
       the cooldown, so a miner in its cooldown cannot make the server parse anything;
    2. the file's cheap checks (size, UTF-8, NUL), then its parse in ``checker``'s worker processes
       (bounded memory and time; any failure is INVALID_FILE), outside any transaction;
    3. ``submit_agent`` (one write transaction), which checks everything again under the miner's row
       lock but does not parse again.
    A refused file writes nothing, so it starts no cooldown. (The per-hotkey request budget is
    charged by the adapters before this is called.)
    """
    if over_limit is not None:
        await db.run(refuse_over_limit, hotkey, retry_in=over_limit, settings=settings)
    early = await db.run(
        screen_submission, hotkey=hotkey, agent_name=agent_name, settings=settings, file_name=file_name
    )
    if early is not None:
        return early
    await checker.acheck(read_agent_file(content, max_bytes=settings.max_agent_bytes))
    return await db.run(
        submit_agent,
        hotkey=hotkey,
        agent_name=agent_name,
        content=content,
        settings=settings,
        storage=storage,
        file_name=file_name,
        parse=None,
    )


@writes
def submit_agent(
    session: Session,
    *,
    hotkey: str,
    agent_name: str,
    content: bytes,
    settings: Settings,
    storage: Storage,
    file_name: str | None = None,
    now: datetime | None = None,
    parse: Callable[[str], None] | None = parse_in_process,
) -> Admission:
    """Admit a miner's agent file as a new version of (hotkey, agent_name).

    Unregistered or banned hotkeys get a REJECTED admission. Bad input raises. The miner's row is
    locked so two concurrent submissions from one hotkey cannot both slip past the cooldown. The
    file is parsed by ``parse`` after the cooldown check; ``submit`` passes None, having parsed it
    in a worker process already. ``file_name`` is the uploaded file's name (an upload must be a
    ``.py`` file); None when the content did not come from an upload (the demo world, tests).
    """
    now = now or utcnow()
    early = screen_submission(
        session, hotkey=hotkey, agent_name=agent_name, settings=settings, file_name=file_name, now=now
    )
    if early is not None:
        return early
    source = read_agent_file(content, max_bytes=settings.max_agent_bytes)
    suite = suites.get_current_suite(session)

    insert_if_absent(session, Miner, hotkey=hotkey, created_at=now)
    locks.take(session, Lock.MINER, hotkey)
    miner = session.exec(select(Miner).where(Miner.hotkey == hotkey).with_for_update()).one()
    check_cooldown(session, hotkey, settings=settings, now=now)  # under the row lock taken above
    if parse is not None:
        parse(source)
    cooldown = timedelta(seconds=settings.submission_cooldown_seconds)

    digest = hashlib.sha256(content).hexdigest()
    key = f"agents/{digest}.py"
    storage.put(key, content, "text/x-python")  # content-addressed: a rollback leaves nothing dangling

    agent = session.exec(select(Agent).where(Agent.miner_hotkey == hotkey, Agent.name == agent_name)).first()
    if agent is None:
        agent = Agent(miner_hotkey=hotkey, name=agent_name, created_at=now)
        session.add(agent)
        session.flush()
    last = session.exec(
        select(AgentVersion.version_number)
        .where(AgentVersion.agent_id == agent.id)
        .order_by(col(AgentVersion.version_number).desc())
    ).first()
    version = AgentVersion(
        agent_id=agent.id,
        version_number=(last or 0) + 1,
        suite_id=suite.id or 0,
        state=AgentVersionState.QUEUED,
        submitted_at=now,
        code_key=key,
        code_sha256=digest,
        code_size=len(content),
    )
    session.add(version)
    session.flush()
    session.add(
        WorkItem(
            agent_version_id=version.id,
            suite_id=version.suite_id,
            required_successes=settings.required_successes,
            created_at=now,
        )
    )
    miner.last_submitted_at = now
    session.add(miner)
    session.flush()
    return Admission(
        "ACCEPTED",
        hotkey,
        agent_id=agent.id,
        agent_version_id=version.id,
        version_number=version.version_number,
        next_allowed_at=now + cooldown,
        message=f"accepted as version {version.version_number} of {agent_name}",
    )


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


def released_clause(settings: Settings, now: datetime | None = None) -> Any:
    """``discloses`` for the public as a SQL condition on AgentVersion (for lists and counts)."""
    cutoff = (now or utcnow()) - timedelta(seconds=settings.code_release_delay_seconds)
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


def check_cooldown(session: Session, hotkey: str, *, settings: Settings, now: datetime | None = None) -> None:
    """Raise COOLDOWN_ACTIVE (with remaining_seconds) if this hotkey may not submit yet: the rule
    ``submit_agent`` applies, for callers that must give the cooldown answer without submitting."""
    miner = session.get(Miner, hotkey)
    if miner is None or miner.last_submitted_at is None:
        return
    now = now or utcnow()
    next_at = miner.last_submitted_at + timedelta(seconds=settings.submission_cooldown_seconds)
    if now < next_at:
        remaining = max(1, int((next_at - now).total_seconds() + 0.999))
        raise CooldownActive(
            f"this hotkey submitted at {miner.last_submitted_at.isoformat()}; "
            f"the next submission is allowed in {remaining} s",
            remaining_seconds=remaining,
        )


def refuse_over_limit(
    session: Session, hotkey: str, *, retry_in: int, settings: Settings, now: datetime | None = None
) -> NoReturn:
    """A hotkey over its submission budget: COOLDOWN_ACTIVE when a cooldown runs (that answer wins,
    as it says when a submission will be accepted), else RATE_LIMIT_EXCEEDED with ``retry_in``."""
    check_cooldown(session, hotkey, settings=settings, now=now)
    raise RateLimitExceeded(
        f"too many submissions from this hotkey; retry in {retry_in} s", remaining_seconds=retry_in
    )


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
