"""Races: qualifying, a draw nobody can steer, race work, scores, ranks, the winner and the weights.

The cycle of a race is QUALIFYING_OPEN -> RACE_RUNNING -> RACE_COMPLETE (or CANCELLED). At most one
race is live at a time (a database lock orders the openers). Every transition locks the race's row,
so the scheduler of several server processes, the CLI and completions can all drive it safely.

Lock order (PostgreSQL), the same as the evaluation lifecycle's: race -> work item -> suite.
"""

from __future__ import annotations

import hashlib
import secrets
import statistics
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, text
from sqlalchemy import update as sql_update
from sqlmodel import Session, col, select

from oro_graph.db import insert_if_absent, writes
from oro_graph.errors import (
    NoSelection,
    NotVersionOwner,
    RaceInFlight,
    RaceLocked,
    RaceNotFound,
    ValidationFailed,
)
from oro_graph.models import (
    Agent,
    AgentVersion,
    AgentVersionState,
    EvaluationRun,
    Hotkey,
    Problem,
    QualificationType,
    Race,
    RaceQualifier,
    RaceSelection,
    RaceStatus,
    RunStatus,
    SchedulerLease,
    TopAgentHistory,
    WorkItem,
    utcnow,
)
from oro_graph.services import events, leaderboard, pages, suites
from oro_graph.services.leaderboard import BoardPage
from oro_graph.settings import Settings

_RACE_LOCK_NS = 0x0E1  # advisory-lock namespace: "open a race" (one live race at a time)
U16_MAX = 65535
SCHEDULER_JOB = "races"


# ---------------------------------------------------------------------------------------------------
# The draw: commit to a secret when the race opens, draw from it and the final field, reveal it at the end.


def commitment_of(secret: str) -> str:
    """The published commitment to a race's secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def draw_seed(secret: str, qualifier_ids: Iterable[uuid.UUID | str]) -> str:
    """The seed of a race's draw: the secret bound to the final qualifier list (in any order)."""
    field = ",".join(sorted(str(q) for q in qualifier_ids))
    return hashlib.sha256(f"{secret}:{field}".encode()).hexdigest()


def draw_problems(seed: str, problem_ids: Iterable[uuid.UUID | str], k: int) -> list[str]:
    """The ``k`` problems a seed draws from a suite: those whose SHA-256 of ``seed:problem_id`` is
    smallest, in that order. Anyone can recompute it from the revealed secret and the qualifiers."""
    ranked = sorted(
        (str(p) for p in problem_ids), key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).digest()
    )
    return ranked[: max(0, k)]


# ---------------------------------------------------------------------------------------------------
# The weights the public validator sets from a completed race's detail.


def finisher_order(race_score: float, agent_version_id: uuid.UUID | str) -> tuple[float, str]:
    """The sort key of race ranks: race score descending, ties by version id ascending as a string."""
    return (-race_score, str(agent_version_id))


def race_score_of(run_scores: Iterable[float | None]) -> float | None:
    """A qualifier's race score: the mean of its counted race runs' scores (None without any)."""
    values = [s for s in run_scores if s is not None]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Weight:
    """One entry of the weight vector: a miner's hotkey (or the burn slot, uid 0) and its u16 units."""

    miner_hotkey: str | None  # None: the burn slot (uid 0)
    agent_version_id: uuid.UUID | None
    race_rank: int | None
    units: int
    share: float  # units / sum of units: what the chain's normalisation gives it


def race_weights(
    finishers: Sequence[tuple[str, uuid.UUID, float]], *, t_top: float, t_burn: float
) -> list[Weight]:
    """The public validator's weights from a race's finishers ``(miner_hotkey, version id, race score)``.

    Finishers are ranked by score descending, ties by version id ascending as a string. K is
    floor(finishers / 2). K = 0 burns everything. Otherwise ranks 2..K get ``K + 1 - rank`` units, the
    burn slot gets 65535 and the winner ``round(t_top * (65535 + tail) / t_burn)`` (t_burn >= t_top);
    when t_burn < t_top the winner is pinned at 65535 and the burn slot gets what the tail leaves of
    ``round(t_burn * 65535 / t_top)``. The chain normalises the vector.
    """
    ranked = sorted(finishers, key=lambda f: finisher_order(f[2], f[1]))
    k = len(ranked) // 2
    entries: list[tuple[str | None, uuid.UUID | None, int | None, int]] = []
    if k == 0:
        entries.append((None, None, None, U16_MAX))
    else:
        tail = [
            (hotkey, vid, rank, k + 1 - rank)
            for rank, (hotkey, vid, _) in enumerate(ranked, 1)
            if 2 <= rank <= k
        ]
        tail_sum = sum(units for *_, units in tail)
        if t_burn >= t_top:
            top = round(t_top * (U16_MAX + tail_sum) / t_burn) if t_burn > 0 else 0
            burn = U16_MAX if t_burn > 0 else 0
        else:
            top = U16_MAX
            burn = max(0, round(t_burn * U16_MAX / t_top) - tail_sum)
        hotkey, vid, _ = ranked[0]
        entries.append((None, None, None, burn))
        entries.append((hotkey, vid, 1, top))
        entries.extend(tail)
    total = sum(units for *_, units in entries)
    return [Weight(h, v, r, u, (u / total) if total else 0.0) for h, v, r, u in entries]


# ---------------------------------------------------------------------------------------------------
# Reading races.


@dataclass(frozen=True)
class QualifierView:
    row: RaceQualifier
    agent_name: str
    version_number: int


@dataclass(frozen=True)
class Standing:
    """What the public may see of a qualifier's result: nothing until its race is complete."""

    race_score: float | None
    race_rank: int | None
    did_not_finish: bool
    finished_at: datetime | None


def results_published(race: Race) -> bool:
    """The embargo, the one rule every result of a race follows: published only once the race is
    RACE_COMPLETE (oro-sdk 7.0.2). A CANCELLED race never publishes its results: nobody won, its
    qualifiers' race scores stay null, and so do its runs' scores (publishing the runs would give
    away the race scores it does not publish)."""
    return race.status == RaceStatus.RACE_COMPLETE


def disclosed_sql(score: Any, run_race_id: Any) -> Any:
    """``score`` of a run (or of its problem results) in SQL, null while the run's race keeps its
    results back (``results_published``): for readers of many rows at once, such as the export.
    The statement must select from ``EvaluationRun``; the race is looked up by ``run_race_id``."""
    published = (
        select(Race.id).where(col(Race.id) == run_race_id, Race.status == RaceStatus.RACE_COMPLETE).exists()
    )
    return case((or_(col(run_race_id).is_(None), published), score), else_=None)


def run_scores_disclosed(race: Race | None, *, holds_run: bool = False) -> bool:
    """Whether a run's scores (its validator score and components, its problems' scores, the score
    its progress events carry) may be shown: always for a qualifying run (``race`` None); for a race
    run, to the public once its race's results are published (``results_published``), and always to
    the validator holding the run, in the answers to its own lease calls (it reported them).
    Only what is shown is masked: settlement and the aggregates read the rows themselves."""
    return race is None or holds_run or results_published(race)


def embargoed_run_ids(session: Session, runs: Iterable[EvaluationRun]) -> frozenset[uuid.UUID]:
    """Of ``runs``, those whose scores the public may not see now (``run_scores_disclosed``); one
    statement for their races, none when no run is race work."""
    runs = list(runs)
    ids = {r.race_id for r in runs if r.race_id is not None}
    found = races_by_ids(session, ids) if ids else {}
    return frozenset(
        r.id for r in runs if r.race_id is not None and not run_scores_disclosed(found.get(r.race_id))
    )


def standing_of(row: RaceQualifier, race: Race) -> Standing:
    """The embargo: per-agent race scores, ranks and who did not finish are published only when
    the race completes (oro-sdk 7.0.2); before that every qualifier reads as still racing."""
    if not results_published(race):
        return Standing(None, None, False, None)
    return Standing(row.race_score, row.race_rank, row.did_not_finish, row.finished_at)


def revealed_secret(race: Race) -> str | None:
    """The race's secret once revealed (the race is over); never before."""
    return race.secret if race.secret_revealed else None


@dataclass(frozen=True)
class RaceView:
    race: Race
    qualifiers: list[QualifierView]
    winner_agent_name: str | None

    @property
    def embargoed(self) -> bool:
        """Per-agent race scores stay hidden until the race is complete."""
        return not results_published(self.race)

    @property
    def revealed_secret(self) -> str | None:
        return revealed_secret(self.race)


def get_race(session: Session, race_id: uuid.UUID, *, lock: bool = False) -> Race:
    stmt = select(Race).where(Race.id == race_id)
    race = session.exec(stmt.with_for_update() if lock else stmt).first()
    if race is None:
        raise RaceNotFound(f"race {race_id} does not exist")
    return race


def live_race(session: Session, *, lock: bool = False) -> Race | None:
    """The race that has not ended (qualifying or running), if any."""
    stmt = select(Race).where(col(Race.status).in_(RaceStatus.live())).order_by(col(Race.race_number).desc())
    return session.exec(stmt.with_for_update() if lock else stmt).first()


def latest_completed(session: Session, suite_id: int | None = None) -> Race | None:
    stmt = select(Race).where(Race.status == RaceStatus.RACE_COMPLETE)
    if suite_id is not None:
        stmt = stmt.where(Race.suite_id == suite_id)
    return session.exec(
        stmt.order_by(col(Race.race_completed_at).desc(), col(Race.race_number).desc())
    ).first()


def _qualifier_views(session: Session, *where: object) -> list[QualifierView]:
    rows = session.exec(
        select(RaceQualifier, AgentVersion.version_number, Agent.name)
        .join(AgentVersion, col(AgentVersion.id) == RaceQualifier.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(*where)
    ).all()
    return [QualifierView(qualifier, name, number) for qualifier, number, name in rows]


def _field_order(q: QualifierView) -> tuple[bool, int, float, str]:
    """Finishers by race rank (ranks exist once the race is complete), then qualifying score."""
    return (
        q.row.race_rank is None,
        q.row.race_rank or 0,
        -(q.row.qualifying_score or 0.0),
        str(q.row.agent_version_id),
    )


def qualifiers_by_race_ids(
    session: Session, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[QualifierView]]:
    """Each race's qualifiers in field order (``_field_order``), in one statement."""
    by_race: dict[uuid.UUID, list[QualifierView]] = {}
    for view in _qualifier_views(session, col(RaceQualifier.race_id).in_(list(ids))):
        by_race.setdefault(view.row.race_id, []).append(view)
    return {race_id: sorted(views, key=_field_order) for race_id, views in by_race.items()}


def view_of(race: Race, qualifiers: list[QualifierView]) -> RaceView:
    """A race with its qualifiers (as ``qualifiers_by_race_ids`` gives them) and its winner's name."""
    names = {q.row.agent_version_id: q.agent_name for q in qualifiers}
    winner = names.get(race.winner_agent_version_id) if race.winner_agent_version_id else None
    return RaceView(race, qualifiers, winner)


def views_of(session: Session, races: Sequence[Race]) -> list[RaceView]:
    """Races with their qualifiers (best rank first, then qualifying score) and winners' names."""
    by_race = qualifiers_by_race_ids(session, [r.id for r in races])
    return [view_of(race, by_race.get(race.id, [])) for race in races]


def races_by_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Race]:
    return {race.id: race for race in session.exec(select(Race).where(col(Race.id).in_(list(ids))))}


@dataclass(frozen=True)
class Entry:
    """A version's entry in one race, with that race (its status decides what is published)."""

    qualifier: QualifierView
    race: Race


def entries_by_version_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Entry]]:
    """Each version's race entries, newest race first, in two statements."""
    views = _qualifier_views(session, col(RaceQualifier.agent_version_id).in_(list(ids)))
    found = races_by_ids(session, {v.row.race_id for v in views})
    out: dict[uuid.UUID, list[Entry]] = {}
    for view in sorted(views, key=lambda v: -found[v.row.race_id].race_number):
        out.setdefault(view.row.agent_version_id, []).append(Entry(view, found[view.row.race_id]))
    return out


RaceVersion = tuple[uuid.UUID, uuid.UUID]  # (race id, agent version id)


def race_runs_by_keys(
    session: Session, keys: Iterable[RaceVersion]
) -> dict[RaceVersion, list[EvaluationRun]]:
    """A qualifier's race runs, oldest claim first, for many (race, version) pairs in one statement."""
    keys = list(keys)
    wanted = set(keys)
    stmt = (
        select(EvaluationRun)
        .where(
            col(EvaluationRun.race_id).in_({r for r, _ in keys}),
            col(EvaluationRun.agent_version_id).in_({v for _, v in keys}),
        )
        .order_by(col(EvaluationRun.claimed_at), col(EvaluationRun.id))
    )
    out: dict[RaceVersion, list[EvaluationRun]] = {}
    for run in session.exec(stmt):
        key = (run.race_id, run.agent_version_id)
        if key in wanted:
            out.setdefault(key, []).append(run)
    return out


def as_it_stood(race: Race, at: datetime | None) -> Race:
    """The race as it stood at ``at`` (None: as it is), read from its timestamps: the status then,
    and nothing it did not have yet (no draw before qualifying closed, no winner nor revealed secret
    before it ended). A detached copy; the stored row is untouched."""
    ended = race.race_completed_at or race.cancelled_at
    if at is None or at >= race.updated_at or (ended is not None and ended <= at):
        return race
    values = race.model_dump()
    values.update(
        race_completed_at=None,
        cancelled_at=None,
        secret_revealed=False,
        winner_agent_version_id=None,
        winner_score=None,
        scored_count=None,
    )
    if race.race_started_at is not None and race.race_started_at <= at:
        values["status"] = RaceStatus.RACE_RUNNING
    else:
        values.update(
            status=RaceStatus.QUALIFYING_OPEN,
            race_started_at=None,
            race_deadline_at=None,
            draw_seed=None,
            problem_ids=None,
        )
    return Race(**values)


def qualifiers_as_of(qualifiers: list[QualifierView], at: datetime | None) -> list[QualifierView]:
    """The qualifiers that had entered by ``at`` (all of them when None). A version that left the
    field during qualifying is gone from the database, so the past field is the present one, less
    the entries made since."""
    if at is None:
        return qualifiers
    return [q for q in qualifiers if q.row.entered_at <= at]


def status_at(at: datetime) -> object:
    """A race's status at ``at`` as an SQL expression over its timestamps (``as_it_stood`` in SQL)."""
    from sqlalchemy import case

    return case(
        (col(Race.race_completed_at) <= at, RaceStatus.RACE_COMPLETE.value),
        (col(Race.cancelled_at) <= at, RaceStatus.CANCELLED.value),
        (col(Race.race_started_at) <= at, RaceStatus.RACE_RUNNING.value),
        else_=RaceStatus.QUALIFYING_OPEN.value,
    )


def _races_stmt(suite_id: int | None, statuses: Sequence[str] | None, as_of: datetime | None) -> object:
    stmt = select(Race)
    if suite_id is not None:
        stmt = stmt.where(Race.suite_id == suite_id)
    if as_of is not None:
        stmt = stmt.where(col(Race.created_at) <= as_of)
    if statuses is not None:
        status = status_at(as_of) if as_of is not None else col(Race.status)
        stmt = stmt.where(status.in_(list(statuses)))
    return stmt


def races_page(
    session: Session,
    *,
    suite_id: int | None = None,
    statuses: Sequence[str] | None = None,
    as_of: datetime | None = None,
    window: pages.Window,
) -> pages.Page[Race]:
    """Races newest first (race number descending), keyset-paged; with ``as_of``, those opened by then
    (filtered by the status they had then; ``as_it_stood`` gives the rest of that past)."""
    order: pages.Order = ((col(Race.race_number), True),)
    return pages.keyset_page(session, _races_stmt(suite_id, statuses, as_of), order, window)


def races_count(
    session: Session,
    *,
    suite_id: int | None = None,
    statuses: Sequence[str] | None = None,
    as_of: datetime | None = None,
) -> int:
    return pages.count(session, _races_stmt(suite_id, statuses, as_of))


def race_at(session: Session, *, suite_id: int | None = None, as_of: datetime | None = None) -> Race | None:
    """The current race (of a suite): the newest one opened by ``as_of`` (now by default). At most one
    race is live and it is always the newest, so this is the live race, else the last one to end."""
    stmt = select(Race)
    if suite_id is not None:
        stmt = stmt.where(Race.suite_id == suite_id)
    if as_of is not None:
        stmt = stmt.where(col(Race.created_at) <= as_of)
    race = session.exec(stmt.order_by(col(Race.race_number).desc())).first()
    return as_it_stood(race, as_of) if race is not None else None


def race_view(session: Session, race_id: uuid.UUID) -> RaceView:
    return views_of(session, [get_race(session, race_id)])[0]


def current_race(session: Session) -> RaceView | None:
    """The live race; when none is live, the most recently completed or cancelled one."""
    race = live_race(session) or session.exec(select(Race).order_by(col(Race.race_number).desc())).first()
    return views_of(session, [race])[0] if race else None


@dataclass(frozen=True)
class RaceHistory:
    races: list[RaceView]
    total: int
    limit: int
    offset: int


def race_history(
    session: Session, *, suite_id: int | None = None, limit: int = 20, offset: int = 0
) -> RaceHistory:
    """Completed and cancelled races, newest first."""
    limit, offset = max(1, min(limit, 100)), max(0, offset)
    where = [col(Race.status).in_(RaceStatus.ended())]
    if suite_id is not None:  # an unknown suite has no races: an empty page
        where.append(Race.suite_id == suite_id)
    total = session.exec(select(func.count()).select_from(Race).where(*where)).one()
    races = session.exec(
        select(Race).where(*where).order_by(col(Race.race_number).desc()).offset(offset).limit(limit)
    ).all()
    return RaceHistory(views_of(session, races), int(total), limit, offset)


def weights_of(view: RaceView, settings: Settings) -> list[Weight]:
    """The weights the public validator sets from this race (empty until it is complete)."""
    if view.race.status != RaceStatus.RACE_COMPLETE:
        return []
    finishers = [
        (q.row.miner_hotkey, q.row.agent_version_id, q.row.race_score)
        for q in view.qualifiers
        if q.row.race_score is not None
    ]
    return race_weights(finishers, t_top=settings.weight_top_share, t_burn=settings.weight_burn_share)


# ---------------------------------------------------------------------------------------------------
# Who qualifies.


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


def _barred_versions(session: Session) -> set[uuid.UUID]:
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
    barred = _barred_versions(session)
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


def _refresh_field(session: Session, race: Race, now: datetime) -> None:
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
            _record(session, events.RaceEvent.QUALIFIER_ENTERED, race, now, vid)
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


# ---------------------------------------------------------------------------------------------------
# The cycle.


def _record(
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


def _lock_openers(session: Session) -> None:
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
    _record(session, events.RaceEvent.RACE_OPENED, race, now)
    _refresh_field(session, race, now)
    return race


def _resolve_live(session: Session, race_id: uuid.UUID | None, status: RaceStatus) -> Race:
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
    race = _resolve_live(session, race_id, RaceStatus.QUALIFYING_OPEN)
    _refresh_field(session, race, now)
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
    _record(session, events.RaceEvent.QUALIFYING_CLOSED, race, now)
    session.flush()
    return race


def _cancel(session: Session, race: Race, now: datetime, reason: str) -> Race:
    race.status = RaceStatus.CANCELLED
    race.cancelled_at = now
    race.secret_revealed = True
    race.updated_at = now
    session.add(race)
    session.execute(
        sql_update(WorkItem)
        .where(col(WorkItem.race_id) == race.id, col(WorkItem.is_closed).is_(False))
        .values(is_closed=True, closed_at=now)
        .execution_options(synchronize_session=False)
    )
    _record(session, events.RaceEvent.RACE_CANCELLED, race, now)
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
        _record(session, events.RaceEvent.QUALIFIER_FINISHED, race, now, qualifier.agent_version_id)
    if race.status == RaceStatus.RACE_RUNNING and _all_settled(session, race):
        _complete(session, race, settings=settings, now=now)


def _all_settled(session: Session, race: Race) -> bool:
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
    race = _resolve_live(session, race_id, RaceStatus.RACE_RUNNING)
    return _complete(session, race, settings=settings, now=now)


def _complete(session: Session, race: Race, *, settings: Settings, now: datetime) -> Race:
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
            _record(session, events.RaceEvent.QUALIFIER_DID_NOT_FINISH, race, now, q.agent_version_id)
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
    _record(session, events.RaceEvent.RACE_COMPLETED, race, now, race.winner_agent_version_id)
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
    _record(session, events.RaceEvent.TOP_CHANGED, race, now, winner.agent_version_id)
    session.flush()


def has_completed_race(session: Session, suite_id: int) -> bool:
    return latest_completed(session, suite_id) is not None


def race_problem_ids(session: Session, run: EvaluationRun) -> list[uuid.UUID] | None:
    """The drawn problems of a race run, in draw order (None for qualifying runs)."""
    if run.race_id is None:
        return None
    race = get_race(session, run.race_id)
    return [uuid.UUID(p) for p in race.problem_ids or []]


# ---------------------------------------------------------------------------------------------------
# Miners' pins.


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
    if version.id in _barred_versions(session):
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
    row = session.exec(
        select(RaceSelection).where(RaceSelection.miner_hotkey == hotkey).with_for_update()
    ).one()
    row.agent_version_id, row.updated_at = agent_version_id, now
    session.add(row)
    session.flush()
    if race is not None:
        _refresh_field(session, race, now)
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
        _refresh_field(session, race, now)


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


# ---------------------------------------------------------------------------------------------------
# Validator variance: how far validators scoring the same qualifier lie apart.

SPREAD_THRESHOLDS_PP = (5.0, 10.0, 20.0)


@dataclass(frozen=True)
class ValidatorBias:
    validator_hotkey: str
    validator_name: str | None
    pairs_evaluated: int
    mean_delta_vs_peers: float
    std_dev: float
    mean_score: float


@dataclass(frozen=True)
class Variance:
    race: Race
    n_pairs: int
    mean_spread: float | None
    median_spread: float | None
    max_spread: float | None
    buckets: list[tuple[float, int, float]]  # (threshold in points, pairs above it, their share in %)
    validators: list[ValidatorBias]


def validator_variance(session: Session, race_id: uuid.UUID) -> Variance:
    """Pairs of successful race runs on the same qualifier by two validators: their spread in score
    points (|a - b| x 100), and per validator its mean signed difference from its peers (its bias).
    Empty (no pairs, no validators) until the race's results are published (``results_published``)."""
    race = get_race(session, race_id)
    return variances_by_race_ids(session, [race.id])[race.id]


def variance_as_published(variance: Variance, race: Race) -> Variance:
    """``variance`` as the public may see it of ``race`` as it stood (``as_it_stood``): empty while
    its results were embargoed."""
    return variance if results_published(race) else _variance(race, {}, {})


def variances_by_race_ids(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Variance]:
    """``validator_variance`` of many races in three statements."""
    found = races_by_ids(session, ids)
    runs = session.exec(
        select(
            EvaluationRun.race_id,
            EvaluationRun.agent_version_id,
            EvaluationRun.validator_hotkey,
            EvaluationRun.validator_score,
        ).where(
            col(EvaluationRun.race_id).in_(list(found)),
            EvaluationRun.status == RunStatus.SUCCESS,
            col(EvaluationRun.validator_score).is_not(None),
        )
    ).all()
    by_race: dict[uuid.UUID, dict[uuid.UUID, list[tuple[str, float]]]] = {rid: {} for rid in found}
    for rid, vid, hotkey, score in runs:
        by_race[rid].setdefault(vid, []).append((hotkey, float(score)))  # type: ignore[index]
    hotkeys = {hotkey for _, _, hotkey, _ in runs}
    names = dict(
        session.exec(select(Hotkey.ss58, Hotkey.name).where(col(Hotkey.ss58).in_(list(hotkeys)))).all()
    )
    # The embargo: while a race runs, its validators' scores and spreads would give its runs' scores away.
    return {
        rid: _variance(race, by_race[rid] if results_published(race) else {}, names)
        for rid, race in found.items()
    }


def _variance(
    race: Race, by_version: dict[uuid.UUID, list[tuple[str, float]]], names: dict[str, str | None]
) -> Variance:
    spreads: list[float] = []
    deltas: dict[str, list[float]] = {}
    scores: dict[str, list[float]] = {}
    for entries in by_version.values():
        for i, (a, sa) in enumerate(entries):
            scores.setdefault(a, []).append(sa)
            for b, sb in entries[i + 1 :]:
                spreads.append(abs(sa - sb) * 100)
                deltas.setdefault(a, []).append((sa - sb) * 100)
                deltas.setdefault(b, []).append((sb - sa) * 100)
    validators = [
        ValidatorBias(
            hotkey,
            names.get(hotkey),
            len(deltas.get(hotkey, [])),
            statistics.fmean(deltas[hotkey]) if deltas.get(hotkey) else 0.0,
            statistics.pstdev(deltas[hotkey]) if len(deltas.get(hotkey, [])) > 1 else 0.0,
            statistics.fmean(values),
        )
        for hotkey, values in sorted(scores.items())
    ]
    n = len(spreads)
    buckets = [
        (t, sum(1 for s in spreads if s > t), (100.0 * sum(1 for s in spreads if s > t) / n) if n else 0.0)
        for t in SPREAD_THRESHOLDS_PP
    ]
    return Variance(
        race,
        n,
        statistics.fmean(spreads) if n else None,
        statistics.median(spreads) if n else None,
        max(spreads) if n else None,
        buckets,
        validators,
    )


# ---------------------------------------------------------------------------------------------------
# The scheduler: one server process at a time drives the cycle, under a lease row in the database.


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
        last = session.exec(select(Race).order_by(col(Race.race_number).desc())).first()
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
        _refresh_field(session, race, now)
        return TickReport(acted=True)
    if _all_settled(session, race) or (race.race_deadline_at is not None and now >= race.race_deadline_at):
        return TickReport(acted=True, completed=_complete(session, race, settings=settings, now=now).id)
    return TickReport(acted=True)


def projected_completion(race: Race, settings: Settings) -> datetime | None:
    """When the race ends at the latest: its deadline once running, else qualifying close plus its length."""
    if race.status in RaceStatus.ended():
        return race.race_completed_at or race.cancelled_at
    return race.race_deadline_at or race.qualifying_closes_at + timedelta(hours=settings.race_max_hours)


# ---------------------------------------------------------------------------------------------------
# The race board and the top miner's payout.


def race_board(
    session: Session,
    *,
    suite_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
    now: datetime | None = None,
) -> BoardPage:
    """The finishers of a suite's latest completed race, by race rank (empty before its first race)."""
    suite = suites.resolve_suite(session, suite_id)
    limit, offset, now = max(1, min(limit, 500)), max(0, offset), now or utcnow()
    race = latest_completed(session, suite.id)
    finishers = (
        select(RaceQualifier, AgentVersion, Agent)
        .join(AgentVersion, col(AgentVersion.id) == RaceQualifier.agent_version_id)
        .join(Agent, col(Agent.id) == AgentVersion.agent_id)
        .where(
            RaceQualifier.race_id == (race.id if race else None), col(RaceQualifier.race_rank).is_not(None)
        )
    )
    rows = session.exec(finishers.order_by(col(RaceQualifier.race_rank)).offset(offset).limit(limit)).all()
    total = len(session.exec(finishers).all()) if race else 0
    ranked = [(q.race_rank or 0, version, agent) for q, version, agent in rows]
    scores = {q.agent_version_id: q.race_score for q, _, _ in rows}
    board = [
        replace(row, race_score=scores.get(row.version.id))
        for row in leaderboard.board_rows(session, suite.id or 0, ranked)
    ]
    miners = len({agent.miner_hotkey for _, _, agent in session.exec(finishers).all()}) if race else 0
    return BoardPage(
        suite, board, total, limit, offset, miners, leaderboard.submitted_since(session, suite.id or 0, now)
    )


@dataclass(frozen=True)
class Payout:
    as_of: datetime
    miner_hotkey: str | None
    agent_name: str | None
    tao_per_day: float | None
    usd_per_day: float | None
    tao_price_usd: float | None


def top_miner_payout(session: Session, *, settings: Settings, now: datetime | None = None) -> Payout:
    """The top miner's estimated earnings a day from the configured figures; null where not configured."""
    now = now or utcnow()
    top = leaderboard.current_top_agent(session, settings=settings)  # none before a suite is active
    hotkey = top.agent.miner_hotkey if top.agent else None
    tao = settings.tao_per_day_top if hotkey else None
    price = settings.tao_price_usd
    usd = tao * price if tao is not None and price is not None else None
    return Payout(now, hotkey, top.agent.name if top.agent else None, tao, usd, price)
