"""Reading races: views of a race and its field, pages, history and time travel (``as_of``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from oro_graph.errors import RaceNotFound
from oro_graph.models import Agent, AgentVersion, EvaluationRun, Race, RaceQualifier, RaceStatus
from oro_graph.services import locks, pages
from oro_graph.services.locks import Lock
from oro_graph.services.races.draw import Weight, race_weights
from oro_graph.services.races.embargo import results_published, revealed_secret, run_scores_disclosed
from oro_graph.settings import Settings


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
    if lock:
        locks.take(session, Lock.RACE, race_id)
    race = session.exec(stmt.with_for_update() if lock else stmt).first()
    if race is None:
        raise RaceNotFound(f"race {race_id} does not exist")
    return race


def live_race(session: Session, *, lock: bool = False) -> Race | None:
    """The race that has not ended (qualifying or running), if any."""
    stmt = select(Race).where(col(Race.status).in_(RaceStatus.live())).order_by(col(Race.race_number).desc())
    if lock:
        locks.take(session, Lock.RACE)
    return session.exec(stmt.with_for_update() if lock else stmt).first()


def latest_completed(session: Session, suite_id: int | None = None) -> Race | None:
    stmt = select(Race).where(Race.status == RaceStatus.RACE_COMPLETE)
    if suite_id is not None:
        stmt = stmt.where(Race.suite_id == suite_id)
    return session.exec(
        stmt.order_by(col(Race.race_completed_at).desc(), col(Race.race_number).desc()).limit(1)
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
    race = session.exec(stmt.order_by(col(Race.race_number).desc()).limit(1)).first()
    return as_it_stood(race, as_of) if race is not None else None


def race_view(session: Session, race_id: uuid.UUID) -> RaceView:
    return views_of(session, [get_race(session, race_id)])[0]


def current_race(session: Session) -> RaceView | None:
    """The live race; when none is live, the most recently completed or cancelled one."""
    latest = select(Race).order_by(col(Race.race_number).desc()).limit(1)
    race = live_race(session) or session.exec(latest).first()
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
