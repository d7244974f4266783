"""Miner submissions: the admission of an agent file, cheapest refusal first, and the cooldown."""

from __future__ import annotations

import ast
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn, Protocol

from sqlmodel import Session, col, select

from oro_graph.db import Database, insert_if_absent, writes
from oro_graph.errors import CooldownActive, FileTooLarge, InvalidAgentName, InvalidFile, RateLimitExceeded
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
        .limit(1)
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
