"""What the compiler knows: each GraphQL object type as a table, its fields as columns or expressions,
its relations as correlated subqueries and its connections as keyset pages.

A type or field missing here is one the compiler declines (the executor answers). Adding a type is
adding a ``TypeMap``; the rules a field follows (the release of a version, the race embargo) are the
services' own SQL forms (``services.agents.released_clause``'s rule, ``services.races.disclosed_sql``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, Table, bindparam, case, func, literal, select, true
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.util import ClauseAdapter

from oro_graph import models
from oro_graph.graphql.sqlcompile import wire
from oro_graph.models import Role
from oro_graph.services import agents, pages, races
from oro_graph.settings import Settings


@dataclass(frozen=True)
class Env:
    """What a compilation may read besides the document: coerced variables, fragments, the clock."""

    variables: dict[str, Any]
    fragments: dict[str, Any]
    now: datetime
    settings: Settings
    # What makes a statement reusable with other variables (``executor``): the variables the
    # statement's shape depends on, and the parameters computed per request (name -> from variables).
    structural: set[str] = field(default_factory=set)
    params: dict[str, Callable[[dict[str, Any], datetime], Any]] = field(default_factory=dict)
    # Rows a root joined to the rows it builds over (``One.row``): (id of a FROM the compiler builds
    # over, a type) -> the alias of that type's row joined to it (a board entry's version: its agent).
    joined: dict[tuple[int, str], Any] = field(default_factory=dict)

    def join(self, rows: Any, type_name: str, alias: Any) -> None:
        """``alias`` is the row of ``type_name`` that each row of ``rows`` refers to, in the same FROM."""
        self.joined[id(rows), type_name] = alias

    def joined_row(self, rows: Any, type_name: str) -> Any:
        return self.joined.get((id(rows), type_name))

    @property
    def release_delay(self) -> timedelta:
        return timedelta(seconds=self.settings.code_release_delay_seconds)


Src = Any  # a table alias, or what a root builds for its rows (``BoardSrc``)
Build = Callable[[Src, Env], ColumnElement[Any]]
Where = Callable[[Src, Any, Env], ColumnElement[bool]]

PLAIN, FLOAT, DATETIME = "plain", "float", "datetime"


@dataclass(frozen=True)
class Leaf:
    """A scalar or enum field; ``fmt`` says how PostgreSQL's JSON must be shaped to match Python's."""

    expr: Build
    fmt: str = PLAIN

    def json(self, src: Src, env: Env) -> ColumnElement[Any]:
        value = self.expr(src, env)
        if self.fmt == FLOAT:
            return wire.float_json(value)
        if self.fmt == DATETIME:
            return wire.iso_json(value)
        return value


@dataclass(frozen=True)
class One:
    """A nullable to-one field: the row of ``table`` that ``where`` picks (null when none)."""

    target: str
    table: Table
    where: Where
    # (parent column, target column) when the parent's column is a non-null foreign key to the
    # target's: a selection that reads only that column (a problem's id) is built from the parent's
    # row, without reading the target's (``KeyRow``).
    key: tuple[str, str] | None = None
    # The parent's own copy of the target's row, when it has one (a board entry's version, that
    # version's agent joined by the board: None when there is none): the object is built over it,
    # shown when ``where`` holds of it, without reading the row again.
    row: Callable[[Src, Env], Any] | None = None


class KeyRow:
    """A target row of which only its key is known (``One.key``): reading any other column raises
    ``KeyError``, and the row is read after all."""

    def __init__(self, columns: dict[str, Any]) -> None:
        self.c = _Columns(columns)


class _Columns:
    def __init__(self, columns: dict[str, Any]) -> None:
        self._columns = columns

    def __getitem__(self, name: str) -> Any:
        return self._columns[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._columns


@dataclass(frozen=True)
class Many:
    """A connection: the rows of ``table`` that ``link`` picks, keyset-paged in ``order`` (a column
    name, descending, the cursor tag), cursors named ``order_name`` as the resolver names them."""

    target: str
    table: Table
    link: Where
    order: tuple[tuple[str, bool, str], ...]
    order_name: str
    # Columns left out of the page unless their field is asked for: ones every heartbeat sets
    # (``services.pages.RUN_LIVENESS``), so that an answer that does not show them outlives heartbeats.
    deferred: dict[str, str] = field(default_factory=dict)
    # The parent's columns each page row carries (name on the row -> the parent's column), for fields
    # that would otherwise look the parent up again, once per row (a result's score and its run's race).
    carried: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TypeMap:
    name: str
    fields: dict[str, Leaf | One | Many] = field(default_factory=dict)


def _c(name: str, fmt: str = PLAIN) -> Leaf:
    return Leaf(lambda t, env: t.c[name], fmt)


def _gid(type_name: str, key: str) -> Leaf:
    return Leaf(lambda t, env: wire.global_id(type_name, t.c[key]))


RELEASE_CUTOFF = "release_cutoff"


def release_cutoff(settings: Settings, now: datetime) -> Any:
    """The instant ``services.agents.released_clause`` compares eligibility with, at ``now`` (its
    ``release_cutoff``: building the clause on each request to read it back cost 0.3 ms)."""
    return agents.release_cutoff(settings, now)


def released(version: Any, env: Env) -> ColumnElement[bool]:
    """``services.agents.discloses`` for the public (its ``released_clause``) on this alias, its instant
    a parameter of each execution (``RELEASE_CUTOFF``), so that a statement is reused as time passes."""

    def rebound(element: Any, **kw: Any) -> Any:
        if isinstance(element, BindParameter):
            return bindparam(RELEASE_CUTOFF, type_=element.type)
        return None

    rule: ColumnElement[bool] = ClauseAdapter(version).traverse(agents.released_clause(env.settings, env.now))
    clause: ColumnElement[bool] = visitors.replacement_traverse(rule, {}, rebound)
    settings = env.settings
    env.params[RELEASE_CUTOFF] = lambda variables, now: release_cutoff(settings, now)
    return clause


def _run_score(name: str) -> Leaf:
    """A run's score as JSON, null while its race keeps it back (the embargo, decided once a row)."""
    return Leaf(lambda t, env: races.disclosed_sql(wire.float_json(t.c[name]), t.c.race_id))


RUN_RACE = "run_race_id"  # a problem result's run's race, carried by the run's ``problemResults``


def _result_score(name: str) -> Leaf:
    """A problem result's score: embargoed with its run's (the run's race decides)."""

    def build(t: Any, env: Env) -> ColumnElement[Any]:
        if RUN_RACE in t.c:
            carried: ColumnElement[Any] = races.disclosed_sql(wire.float_json(t.c[name]), t.c[RUN_RACE])
            return carried
        run = RUN.alias()
        shown = races.disclosed_sql(wire.float_json(t.c[name]), run.c.race_id)
        return select(shown).where(run.c.id == t.c.run_id).correlate_except(run).scalar_subquery()

    return Leaf(build)


VERSION: Table = models.AgentVersion.__table__  # type: ignore[attr-defined]
AGENT: Table = models.Agent.__table__  # type: ignore[attr-defined]
MINER: Table = models.Miner.__table__  # type: ignore[attr-defined]
RUN: Table = models.EvaluationRun.__table__  # type: ignore[attr-defined]
RESULT: Table = models.ProblemResult.__table__  # type: ignore[attr-defined]
PROBLEM: Table = models.Problem.__table__  # type: ignore[attr-defined]
HOTKEY: Table = models.Hotkey.__table__  # type: ignore[attr-defined]
SUITE: Table = models.Suite.__table__  # type: ignore[attr-defined]
TOP: Table = models.TopAgentHistory.__table__  # type: ignore[attr-defined]

RUN_LIVENESS = {"leaseExpiresAt": "lease_expires_at", "lastHeartbeatAt": "last_heartbeat_at"}
BY_CLAIM = (("claimed_at", False, wire.DATETIME), ("id", False, wire.UUID))

TYPES: dict[str, TypeMap] = {
    t.name: t
    for t in [
        TypeMap(
            "AgentVersion",
            {
                "id": _gid("AgentVersion", "id"),
                "agentVersionId": _c("id"),
                "agentId": _c("agent_id"),
                "versionNumber": _c("version_number"),
                "suiteId": _c("suite_id"),
                "state": _c("state"),
                "submittedAt": _c("submitted_at", DATETIME),
                "eligibleAt": _c("eligible_at", DATETIME),
                "discardedAt": _c("discarded_at", DATETIME),
                "finalScore": _c("final_score", FLOAT),
                "codeSha256": _c("code_sha256"),
                "codeSize": _c("code_size"),
                "codeAvailableAt": Leaf(
                    lambda t, env: t.c.eligible_at + literal(env.release_delay, Interval), DATETIME
                ),
                "releaseState": Leaf(
                    lambda t, env: case((released(t, env), wire.text("RELEASED")), else_=wire.text("HIDDEN"))
                ),
                "agent": One(
                    "Agent",
                    AGENT,
                    lambda p, c, env: c.c.id == p.c.agent_id,
                    row=lambda p, env: env.joined_row(p, "Agent"),
                ),
                "runs": Many(
                    "EvaluationRun",
                    RUN,
                    lambda p, c, env: c.c.agent_version_id == p.c.id,
                    BY_CLAIM,
                    "run.claimed_at",
                    RUN_LIVENESS,
                ),
            },
        ),
        TypeMap(
            "Agent",
            {
                "id": _gid("Agent", "id"),
                "agentId": _c("id"),
                "name": _c("name"),
                "minerHotkey": _c("miner_hotkey"),
                "createdAt": _c("created_at", DATETIME),
                "miner": One(
                    "Miner",
                    MINER,
                    lambda p, c, env: c.c.hotkey == p.c.miner_hotkey,
                    key=("miner_hotkey", "hotkey"),
                ),
                "versions": Many(
                    "AgentVersion",
                    VERSION,
                    lambda p, c, env: (c.c.agent_id == p.c.id) & released(c, env),
                    (("version_number", False, wire.INT),),
                    "version.number",
                ),
            },
        ),
        TypeMap(
            "Miner",
            {
                "id": _gid("Miner", "hotkey"),
                "hotkey": _c("hotkey"),
                "createdAt": _c("created_at", DATETIME),
                "lastSubmittedAt": _c("last_submitted_at", DATETIME),
                "agents": Many(
                    "Agent",
                    AGENT,
                    lambda p, c, env: c.c.miner_hotkey == p.c.hotkey,
                    (("created_at", False, wire.DATETIME), ("id", False, wire.UUID)),
                    "agent.created_at",
                ),
            },
        ),
        TypeMap(
            "EvaluationRun",
            {
                "id": _gid("EvaluationRun", "id"),
                "evalRunId": _c("id"),
                "agentVersionId": _c("agent_version_id"),
                "workItemId": _c("work_item_id"),
                "suiteId": _c("suite_id"),
                "validatorHotkey": _c("validator_hotkey"),
                "status": _c("status"),
                "claimedAt": _c("claimed_at", DATETIME),
                "leaseExpiresAt": _c("lease_expires_at", DATETIME),
                "lastHeartbeatAt": _c("last_heartbeat_at", DATETIME),
                "completedAt": _c("completed_at", DATETIME),
                "validatorScore": _run_score("validator_score"),
                "failureReason": _c("failure_reason"),
                "isIncluded": _c("is_included"),
                "inferenceFailureCount": _c("inference_failure_count"),
                "inferenceTotal": _c("inference_total"),
                "raceId": _c("race_id"),
                "validator": One(
                    "Validator",
                    HOTKEY,
                    lambda p, c, env: (c.c.ss58 == p.c.validator_hotkey) & (c.c.role == Role.VALIDATOR.value),
                ),
                "agentVersion": One(
                    "AgentVersion",
                    VERSION,
                    lambda p, c, env: (c.c.id == p.c.agent_version_id) & released(c, env),
                ),
                "problemResults": Many(
                    "ProblemResult",
                    RESULT,
                    lambda p, c, env: c.c.run_id == p.c.id,
                    (("updated_at", False, wire.DATETIME), ("id", False, wire.UUID)),
                    "result.updated_at",
                    carried={RUN_RACE: "race_id"},
                ),
            },
        ),
        TypeMap(
            "ProblemResult",
            {
                "id": _gid("ProblemResult", "id"),
                "runId": _c("run_id"),
                "problemId": _c("problem_id"),
                "status": _c("status"),
                "score": _result_score("score"),
                "reasoningScore": _result_score("reasoning_score"),
                "executionTime": _c("execution_time", FLOAT),
                "inferenceFailureCount": _c("inference_failure_count"),
                "inferenceTotal": _c("inference_total"),
                "updatedAt": _c("updated_at", DATETIME),
                "problem": One(
                    "Problem", PROBLEM, lambda p, c, env: c.c.id == p.c.problem_id, key=("problem_id", "id")
                ),
                "run": One("EvaluationRun", RUN, lambda p, c, env: c.c.id == p.c.run_id),
            },
        ),
        TypeMap(
            "Problem",
            {
                "id": _gid("Problem", "id"),
                "problemId": _c("id"),
                "position": _c("position"),
                "title": _c("title"),
                "category": _c("category"),
                "difficulty": _c("difficulty"),
                "query": _c("query"),
                "suiteId": _c("suite_id"),
            },
        ),
        TypeMap(
            "Validator",
            {
                "id": _gid("Validator", "ss58"),
                "hotkey": _c("ss58"),
                "name": _c("name"),
                "registeredAt": _c("registered_at", DATETIME),
            },
        ),
    ]
}


@dataclass(frozen=True)
class BoardSrc:
    """A leaderboard row: the version, its agent, its rank over the whole board and the suite."""

    version: Any
    agent: Any
    rank: ColumnElement[int]
    suite: ColumnElement[int]


def _reigns(src: BoardSrc) -> Any:
    top = TOP.alias()
    return top, (top.c.suite_id == src.suite) & (top.c.agent_version_id == src.version.c.id)


def _current_top(src: BoardSrc, env: Env) -> ColumnElement[bool]:
    top, of = _reigns(src)
    return select(top.c.id).where(of, top.c.replaced_at.is_(None)).correlate_except(top).exists()


def _was_top(src: BoardSrc, env: Env) -> ColumnElement[bool]:
    top, of = _reigns(src)
    return select(top.c.id).where(of).correlate_except(top).exists()


def _top_at(src: BoardSrc, env: Env) -> ColumnElement[Any]:
    top, of = _reigns(src)
    return select(func.min(top.c.top_at)).where(of).correlate_except(top).scalar_subquery()


TYPES["LeaderboardEntry"] = TypeMap(
    "LeaderboardEntry",
    {
        "rank": Leaf(lambda s, env: s.rank),
        "agentVersionId": Leaf(lambda s, env: s.version.c.id),
        "agentName": Leaf(lambda s, env: s.agent.c.name),
        "minerHotkey": Leaf(lambda s, env: s.agent.c.miner_hotkey),
        "versionNumber": Leaf(lambda s, env: s.version.c.version_number),
        "finalScore": Leaf(lambda s, env: s.version.c.final_score, FLOAT),
        "eligibleAt": Leaf(lambda s, env: s.version.c.eligible_at, DATETIME),
        "isCurrentTop": Leaf(_current_top),
        "wasTop": Leaf(_was_top),
        "topAt": Leaf(_top_at, DATETIME),
        "agentVersion": One(
            "AgentVersion",
            VERSION,
            lambda s, c, env: (c.c.id == s.version.c.id) & released(c, env),
            row=lambda s, env: s.version,
        ),
    },
)


# Root connections: a ``Many`` whose link reads no parent (``services.pages.runs_page`` without a
# filter or an order, and with ``pages.ACTIVE_RUNS``), cursors named as ``runs_connection`` names them
# for the default order.
ROOT_CONNECTIONS: dict[str, Many] = {
    "evaluationRuns": Many(
        "EvaluationRun", RUN, lambda p, c, env: true(), BY_CLAIM, "run.claimed_at.asc", RUN_LIVENESS
    ),
    "runningEvaluations": Many(
        "EvaluationRun",
        RUN,
        lambda p, c, env: c.c.status.in_(pages.ACTIVE_RUNS.statuses or ()),
        BY_CLAIM,
        "run.claimed_at.asc",
        RUN_LIVENESS,
    ),
}
