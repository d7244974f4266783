"""Writing the demo's races, and replaying eligibility and race completions through the services."""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlmodel import Session

from oro_graph.bulk import BulkWriter
from oro_graph.demo.entities import DemoRace
from oro_graph.demo.parameters import (
    BASE_TIME,
    to_datetime,
)
from oro_graph.demo.synthesis import Results
from oro_graph.models import AgentVersion, Race, RaceQualifier, RaceStatus
from oro_graph.services import events, races
from oro_graph.services.leaderboard import recompute_top_agent

if TYPE_CHECKING:
    from oro_graph.demo.world import World


def crown(world: World, session: Session, suite_id: int, final_scores: dict[int, float]) -> int:
    """Replay eligibility and race completions in time order through the services' own rules.

    Only a version that beats every earlier eligible one can change the top agent, so those are
    made ELIGIBLE one by one (with the service called at their eligible_at); the rest follow in bulk.
    Completed races are completed at their hour and their winners crowned (``races.crown``); the
    races' events go to the log in between, in time order, as the services record them.
    """
    order = sorted(final_scores, key=lambda i: (world.versions[i].closed_at, world.versions[i].id.hex))
    best = -math.inf
    table = AgentVersion.__table__
    # (when, 0: eligible / 1: race event / 2: race completed, index)
    timeline: list[tuple[float, int, int]] = []
    for index in order:
        score = final_scores[index]
        if score <= best:
            continue
        best = score
        timeline.append((world.versions[index].closed_at or 0.0, 0, index))
    timeline.extend(
        (race.ended or 0.0, 2, race.index) for race in world.races if race.status == RaceStatus.RACE_COMPLETE
    )
    race_events = race_log(world)
    timeline.extend((when, 1, i) for i, (when, *_) in enumerate(race_events))
    for when, kind, index in sorted(timeline):
        if kind == 1:
            _, event, race, version = race_events[index]
            events.record(
                session,
                event,
                suite_id=suite_id,
                agent_version_id=version,
                payload=events.RaceChanged(race),
                at=to_datetime(when),
            )
            continue
        if kind == 2:
            complete_stored_race(world, session, world.races[index])
            continue
        session.execute(table.update().where(table.c.id == world.versions[index].id).values(state="ELIGIBLE"))
        recompute_top_agent(session, suite_id, settings=world.settings, now=to_datetime(when))
    session.execute(
        table.update()
        .where(table.c.final_score.is_not(None), table.c.state == "RUNNING")
        .values(state="ELIGIBLE")
    )
    session.flush()
    return int(session.execute(text("SELECT count(*) FROM topagenthistory")).scalar_one())


def race_log(world: World) -> list[tuple[float, events.RaceEvent, uuid.UUID, uuid.UUID | None]]:
    """The raceChanges log of every race, as the services record it: opened, each entry, qualifying
    closed (or cancelled), each finisher, then at completion the non-finishers and the completion."""
    out: list[tuple[float, events.RaceEvent, uuid.UUID, uuid.UUID | None]] = []
    for race in world.races:
        out.append((race.opened, events.RaceEvent.RACE_OPENED, race.id, None))
        for e in race.entries:
            entry = world.entries[e]
            version = world.versions[entry.version].id
            out.append((entry.entered, events.RaceEvent.QUALIFIER_ENTERED, race.id, version))
            if entry.finished_at is not None and not entry.did_not_finish:
                out.append((entry.finished_at, events.RaceEvent.QUALIFIER_FINISHED, race.id, version))
            if entry.did_not_finish and race.status == RaceStatus.RACE_COMPLETE:
                out.append((race.ended or 0.0, events.RaceEvent.QUALIFIER_DID_NOT_FINISH, race.id, version))
        if race.started is not None:
            out.append((race.started, events.RaceEvent.QUALIFYING_CLOSED, race.id, None))
        if race.status == RaceStatus.CANCELLED:
            out.append((race.ended or 0.0, events.RaceEvent.RACE_CANCELLED, race.id, None))
        elif race.status == RaceStatus.RACE_COMPLETE:
            winner = (
                world.versions[world.entries[race.winner].version].id if race.winner is not None else None
            )
            out.append((race.ended or 0.0, events.RaceEvent.RACE_COMPLETED, race.id, winner))
    return out


def write_races(world: World, writer: BulkWriter, suite_id: int) -> None:
    race_rows = []
    for race in world.races:
        complete = race.status == RaceStatus.RACE_COMPLETE
        winner = world.entries[race.winner] if race.winner is not None else None
        scored = sum(1 for e in race.entries if world.entries[e].race_score is not None)
        race_rows.append(
            (
                race.id.hex,
                race.number,
                suite_id,
                RaceStatus.RACE_RUNNING.value if complete else race.status,  # completed below
                race.threshold,
                world.settings.race_max_qualifiers,
                world.settings.race_problems,
                world.settings.race_required_successes,
                world.settings.race_max_attempts,
                to_datetime(race.opened),
                to_datetime(race.closes),
                to_datetime(race.started),
                to_datetime(race.deadline),
                to_datetime(race.ended) if complete else None,
                to_datetime(race.ended) if race.status == RaceStatus.CANCELLED else None,
                races.commitment_of(race.secret),
                race.secret,
                race.ended is not None,
                race.draw_seed,
                [str(world.problem_ids[p]) for p in race.drawn] if race.draw_seed else None,
                world.versions[winner.version].id.hex if winner else None,
                winner.race_score if winner else None,
                len(race.entries),
                scored if complete else None,
                to_datetime(race.ended or race.started or race.opened),
            )
        )
    writer.rows(
        Race.__table__,
        (
            "id",
            "race_number",
            "suite_id",
            "status",
            "qualifying_threshold",
            "max_qualifiers",
            "problem_count",
            "required_successes",
            "max_attempts",
            "created_at",
            "qualifying_closes_at",
            "race_started_at",
            "race_deadline_at",
            "race_completed_at",
            "cancelled_at",
            "seed_commitment",
            "secret",
            "secret_revealed",
            "draw_seed",
            "problem_ids",
            "winner_agent_version_id",
            "winner_score",
            "qualifier_count",
            "scored_count",
            "updated_at",
        ),
        race_rows,
    )
    qualifier_rows = []
    for race in world.races:
        for e in race.entries:
            entry = world.entries[e]
            version = world.versions[entry.version]
            qualifier_rows.append(
                (
                    race.id.hex,
                    version.id.hex,
                    world.miners[world.agents[version.agent].miner].hotkey,
                    entry.kind,
                    world.final_score(version),
                    to_datetime(entry.entered),
                    entry.race_score,
                    entry.rank,
                    to_datetime(entry.finished_at),
                    entry.did_not_finish,
                )
            )
    writer.rows(
        RaceQualifier.__table__,
        (
            "race_id",
            "agent_version_id",
            "miner_hotkey",
            "qualification_type",
            "qualifying_score",
            "entered_at",
            "race_score",
            "race_rank",
            "finished_at",
            "did_not_finish",
        ),
        qualifier_rows,
    )


def race_work_rows(world: World, suite_id: int, results: Results) -> list[tuple[Any, ...]]:
    """One work item per qualifier of a race whose qualifying closed (as ``close_qualifying``)."""
    rows = []
    for race in world.races:
        if race.draw_seed is None:
            continue
        for e in race.entries:
            entry = world.entries[e]
            rows.append(
                (
                    entry.work_id.hex,
                    world.versions[entry.version].id.hex,
                    suite_id,
                    world.settings.race_required_successes,
                    entry.included,
                    results.active_by_entry.get(e, 0),
                    entry.closed_at is not None,
                    to_datetime(race.started),
                    to_datetime(entry.closed_at),
                    race.id.hex,
                    world.settings.race_max_attempts,
                    entry.failed,
                )
            )
    return rows


def complete_stored_race(world: World, session: Session, race: DemoRace) -> None:
    """Complete a stored race at its hour and crown its winner through ``races.crown``."""
    table = Race.__table__
    session.execute(table.update().where(table.c.id == race.id).values(status=RaceStatus.RACE_COMPLETE.value))
    if race.winner is None:
        return
    stored = session.get(Race, race.id)
    winner = session.get(RaceQualifier, (race.id, world.versions[world.entries[race.winner].version].id))
    assert stored is not None and winner is not None
    session.refresh(stored)
    races.crown(session, stored, winner, to_datetime(race.ended) or BASE_TIME)
