"""Races through the demo's weeks, by the services' own rule functions (``services/races.py``)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from oro_graph.demo.entities import DemoEntry, DemoRace, DemoVersion
from oro_graph.demo.parameters import (
    BASE_TIME,
    E_RACE,
    FLAKY_ENTRY_RATE,
    K_STALE,
    K_SUCCESS,
    K_TIMEOUT,
    PIN_RATE,
    R_CLOSE,
    R_DEADLINE,
    R_OPEN,
    RACE_PERIOD_DAYS,
    S_FAILED,
    S_STALE,
    S_SUCCESS,
    S_TIMED_OUT,
    to_datetime,
)
from oro_graph.demo.synthesis import score_new_runs
from oro_graph.models import RaceStatus
from oro_graph.services import races

if TYPE_CHECKING:
    from oro_graph.demo.world import World


def on_race(world: World, action: int, index: int) -> None:
    if action == R_OPEN:
        open_race(world)
        return
    race = world.races[index]
    if action == R_CLOSE and race.status == RaceStatus.QUALIFYING_OPEN:
        close_qualifying(world, race)
    elif action == R_DEADLINE and race.status == RaceStatus.RACE_RUNNING:
        complete_race(world, race)


def last_completed(world: World) -> DemoRace | None:
    done = [r for r in world.races if r.status == RaceStatus.RACE_COMPLETE]
    return done[-1] if done else None


def open_race(world: World) -> None:
    """As ``races.open_race``: commit to a secret, the threshold from the reigning winner's score."""
    now, rng, hours = world.now, world.rng, world.settings.race_qualifying_hours
    last = last_completed(world)
    won = world.entries[last.winner].race_score if last and last.winner is not None else None
    threshold = races.decayed_threshold(
        won,
        to_datetime(last.ended) if last else None,
        settings=world.settings,
        now=to_datetime(now) or BASE_TIME,
    )
    index = len(world.races)
    secret = hashlib.sha256(f"oro-demo/{world.seed}/race/{index + 1}".encode()).hexdigest()
    race = DemoRace(index, world.new_uuid(), secret, now, now + hours * 3600, threshold)
    world.races.append(race)
    # Some miners with several eligible versions pin one of them while qualifying is open.
    eligible: dict[int, list[int]] = {}
    for version in world.versions:
        if version.state == "ELIGIBLE":
            eligible.setdefault(world.agents[version.agent].miner, []).append(version.index)
    for miner, versions in sorted(eligible.items()):
        if len(versions) >= 2 and rng.random() < PIN_RATE:
            at = now + rng.uniform(0.05, 0.8) * hours * 3600
            world.pins.setdefault(miner, []).append((at, rng.choice(versions)))
    world.push(race.closes, E_RACE, R_CLOSE, index)


def race_field(world: World, race: DemoRace, at: float) -> list[tuple[DemoVersion, str]]:
    """Who races at ``at``, by ``races.choose_field`` over the versions eligible then."""
    score_new_runs(world)
    candidates, by_id = [], {}
    for version in world.versions:
        if version.state == "ELIGIBLE" and (version.closed_at or 0.0) <= at:
            hotkey = world.miners[world.agents[version.agent].miner].hotkey
            by_id[version.id] = version
            candidates.append(
                races.Candidate(
                    version.id, hotkey, world.final_score(version), to_datetime(version.closed_at)
                )
            )
    pins = {}
    for miner, history in world.pins.items():
        chosen = [v for t, v in history if t <= at]
        if chosen:
            pins[world.miners[miner].hotkey] = world.versions[chosen[-1]].id
    last = last_completed(world)
    incumbent = (
        world.versions[world.entries[last.winner].version].id if last and last.winner is not None else None
    )
    field = races.choose_field(
        candidates,
        pins=pins,
        incumbent=incumbent,
        threshold=race.threshold,
        cap=world.settings.race_max_qualifiers,
        opened_at=to_datetime(race.opened) or BASE_TIME,
    )
    return [(by_id[c.version_id], kind.value) for c, kind in field]


def enter(world: World, race: DemoRace, at: float) -> list[DemoEntry]:
    entries = []
    for version, kind in race_field(world, race, at):
        entry = DemoEntry(
            index=len(world.entries),
            race=race.index,
            version=version.index,
            work_id=world.new_uuid(),
            kind=kind,
            entered=max(race.opened, version.closed_at or 0.0),
            flaky=world.rng.random() < FLAKY_ENTRY_RATE,
        )
        world.entries.append(entry)
        entries.append(entry)
    # Race work is claimed oldest first, then by id (it is all created at once).
    race.entries = [e.index for e in sorted(entries, key=lambda e: e.work_id.hex)]
    return entries


def close_qualifying(world: World, race: DemoRace) -> None:
    """As ``races.close_qualifying``: freeze the field, draw from the secret and the field, hand out
    race work; a race nobody qualified for is cancelled."""
    now = world.now
    entries = enter(world, race, now)
    if not entries:
        race.status, race.ended = RaceStatus.CANCELLED.value, now
        schedule_next(world, race)
        return
    race.draw_seed = races.draw_seed(race.secret, [world.versions[e.version].id for e in entries])
    drawn = races.draw_problems(race.draw_seed, world.problem_ids, world.settings.race_problems)
    race.drawn = [world.problem_at[p] for p in drawn]
    race.status, race.started = RaceStatus.RACE_RUNNING.value, now
    race.deadline = now + world.settings.race_max_hours * 3600
    world.push(race.deadline, E_RACE, R_DEADLINE, race.index)
    world.wake_idle(now)


def on_race_run_end(world: World, index: int) -> None:
    """As ``complete_run`` and ``races.on_race_run_finished`` (a lapsed lease is no attempt)."""
    runs, now = world.runs, world.now
    entry, v = world.entries[runs.entry[index]], world.validators[runs.validator[index]]
    kind = runs.kind[index]
    entry.active.discard(index)
    v.run = None
    runs.stopped[index] = min(now, runs.claimed[index] + runs.crash[index])
    runs.status[index] = {K_SUCCESS: S_SUCCESS, K_STALE: S_STALE, K_TIMEOUT: S_TIMED_OUT}.get(kind, S_FAILED)
    if kind == K_SUCCESS:
        world.unscored.append(index)
        if entry.closed_at is None:
            entry.included += 1
            entry.included_runs.append(index)
        else:
            world.late_successes.add(index)
    elif kind != K_STALE:
        entry.failed += 1
    if entry.closed_at is None:
        settled = races.settlement(
            entry.included,
            entry.failed,
            world.settings.race_required_successes,
            world.settings.race_max_attempts,
        )
        if settled is not None:
            entry.closed_at = entry.finished_at = now
            entry.did_not_finish = settled == "DID_NOT_FINISH"
    if kind != K_STALE:
        world.ready(v, now + world.rng.uniform(2, 30))
    if kind != K_SUCCESS:
        world.wake_idle(now)
    race = world.races[entry.race]
    if race.status == RaceStatus.RACE_RUNNING and all(
        world.entries[e].closed_at is not None for e in race.entries
    ):
        complete_race(world, race)


def race_scores(world: World, race: DemoRace) -> None:
    """Race scores of the entries that finished (``races.race_score_of`` their included runs)."""
    score_new_runs(world)
    for e in race.entries:
        entry = world.entries[e]
        if entry.closed_at is not None and not entry.did_not_finish and entry.race_score is None:
            entry.race_score = races.race_score_of(float(world.run_score[r]) for r in entry.included_runs)


def complete_race(world: World, race: DemoRace) -> None:
    """As ``races.complete_race``: the unsettled did not finish, finishers ranked, rank 1 wins."""
    now = world.now
    race_scores(world, race)
    for e in race.entries:
        entry = world.entries[e]
        if entry.closed_at is None:
            entry.closed_at = entry.finished_at = now
            entry.did_not_finish = True
    finishers = sorted(
        (world.entries[e] for e in race.entries if world.entries[e].race_score is not None),
        key=lambda e: races.finisher_order(e.race_score or 0.0, world.versions[e.version].id),
    )
    for rank, entry in enumerate(finishers, 1):
        entry.rank = rank
    race.winner = finishers[0].index if finishers else None
    race.status, race.ended = RaceStatus.RACE_COMPLETE.value, now
    schedule_next(world, race)


def schedule_next(world: World, race: DemoRace) -> None:
    ended = race.ended or world.now
    at = max(race.opened + RACE_PERIOD_DAYS * 86400, ended + world.settings.race_interval_hours * 3600)
    if at < world.span:
        world.push(at, E_RACE, R_OPEN, 0)


def settle_races(world: World) -> None:
    """At the end of the world: the live race's field (qualifying) or finished scores (running)."""
    race = world.races[-1] if world.races else None
    if race is None:
        return
    if race.status == RaceStatus.QUALIFYING_OPEN:
        enter(world, race, world.now)
    elif race.status == RaceStatus.RACE_RUNNING:
        race_scores(world, race)
