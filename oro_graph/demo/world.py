"""The simulation: an event queue of submissions, claims, run ends, cancellations and races."""

from __future__ import annotations

import heapq
import math
import random
import uuid

import numpy as np

from oro_graph.demo.entities import (
    DemoAgent,
    DemoEntry,
    DemoMiner,
    DemoRace,
    DemoRuns,
    DemoValidator,
    DemoVersion,
)
from oro_graph.demo.parameters import (
    BASE_MS,
    BIASED_SCORE_OFFSET,
    BROKEN_VERSION_RATE,
    CANCEL_RATE,
    DISCARD_AFTER_FAILURES,
    E_BURST,
    E_CANCEL,
    E_END,
    E_RACE,
    E_READY,
    E_SUBMIT,
    FIRST_RACE_DAYS,
    FLAKY_FAILURE_RATE,
    HEARTBEAT_SECONDS,
    IDLE_MINER_SHARE,
    INFRA_FAILURE_RATE,
    K_BROKEN,
    K_FAILED,
    K_STALE,
    K_SUCCESS,
    K_TIMEOUT,
    MAX_RUN_MINUTES,
    PEER_STALE_RATE,
    PEER_TIMEOUT_RATE,
    PROBLEMS,
    PROGRESS_STEP,
    R_OPEN,
    RACE_PERIOD_DAYS,
    S_CANCELLED,
    S_FAILED,
    S_STALE,
    S_SUCCESS,
    S_TIMED_OUT,
    SLOW_DURATION_FACTOR,
    SLOW_TIMEOUT_RATE,
    SPAN,
    STALE_LEASE_RATE,
    SWEEP_SECONDS,
    ProgressReport,
)
from oro_graph.demo.racing import on_race, on_race_run_end, settle_races
from oro_graph.demo.suite import AGENT_WORDS, demo_hotkey, difficulties, suite_json, unique_name
from oro_graph.demo.synthesis import score_new_runs
from oro_graph.models import RaceStatus
from oro_graph.services import suites
from oro_graph.services.scoring import final_score_of, qualifies
from oro_graph.settings import Settings


class World:
    def __init__(self, *, seed: int, miners: int, validators: int, runs: int, settings: Settings) -> None:
        self.seed, self.target_runs, self.settings = seed, runs, settings
        self.rng = random.Random(seed)
        self.required = settings.required_successes
        self.lease = float(settings.lease_seconds)
        self.heartbeat = min(HEARTBEAT_SECONDS, self.lease / 3)
        self.span = SPAN.total_seconds()
        self.n_validators, self.n_miners = validators, miners
        # Runs share the validators' six weeks at about half load, up to MAX_RUN_MINUTES each.
        self.run_seconds = max(120.0, min(MAX_RUN_MINUTES * 60, 0.5 * validators * self.span / runs))
        self.limit = 3.0 * self.run_seconds  # a run is TIMED_OUT past this
        self.validators: list[DemoValidator] = []
        self.miners: list[DemoMiner] = []
        self.agents: list[DemoAgent] = []
        self.versions: list[DemoVersion] = []
        self.runs = DemoRuns()
        self.events: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.open: list[int] = []  # versions with possibly free slots, oldest first
        self.now = 0.0
        self.stopping = False
        self.burst_done = False
        self.uniform_closed = False
        self.names: set[str] = set()
        # Races: the suite's problem ids (known before the import), difficulties, the races so far.
        self.problem_ids = suites.problem_ids_of(suite_json())
        self.problem_at = {str(p): i for i, p in enumerate(self.problem_ids)}
        self.difficulty = np.array(difficulties(random.Random(seed + 2)))
        self.races: list[DemoRace] = []
        self.entries: list[DemoEntry] = []
        self.pins: dict[int, list[tuple[float, int]]] = {}  # miner -> [(pinned at, version)]
        self.late_successes: set[int] = set()  # race runs that succeeded after their entry closed
        # Per-problem randomness, drawn up front: successful runs are scored as they end (qualifying
        # scores decide race fields), the rest of the results in bulk at the end, from the same draws.
        self.gen = np.random.default_rng(seed)
        shape = (runs, PROBLEMS)
        self.time_weights = self.gen.lognormal(0.0, 0.45, size=shape)
        self.outcome_draw = self.gen.random(shape)
        self.run_noise = self.gen.normal(0.0, 0.12, size=runs)
        self.problem_noise = self.gen.normal(0, 0.8, shape)
        self.scores = np.full(shape, np.nan)  # problem scores of successful runs, once scored
        self.run_score = np.full(runs, np.nan)
        self.unscored: list[int] = []
        self._people()

    def new_uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def uuid7_rows(self, when: float) -> uuid.UUID:
        """Time-ordered ids for runs (UUIDv7): consecutive runs land next to each other in the indexes."""
        ms = BASE_MS + int(when * 1000)
        return uuid.UUID(
            int=(ms << 80)
            | (0x7 << 76)
            | (self.rng.getrandbits(12) << 64)
            | (0x2 << 62)
            | self.rng.getrandbits(62)
        )

    # people -------------------------------------------------------------------------------------------

    def _people(self) -> None:
        rng = self.rng
        for i in range(self.n_validators):
            self.validators.append(
                DemoValidator(
                    index=i,
                    hotkey=demo_hotkey(self.seed, "validator", i),
                    name=unique_name(rng, self.names).replace("-", " ").title(),
                    speed=rng.uniform(0.8, 1.2),
                    upgrade_at=rng.uniform(0.45, 0.7) * self.span,
                )
            )
        biased, stale, slow = rng.sample(self.validators, 3)
        biased.fault, biased.bias = "biased", BIASED_SCORE_OFFSET
        stale.fault, stale.stale_rate = "stale", STALE_LEASE_RATE
        slow.fault, slow.speed, slow.timeout_rate = (
            "slow",
            slow.speed * SLOW_DURATION_FACTOR,
            SLOW_TIMEOUT_RATE,
        )
        for i in range(self.n_miners):
            miner = DemoMiner(
                index=i,
                hotkey=demo_hotkey(self.seed, "miner", i),
                name=unique_name(rng, self.names),
                skill=rng.gauss(-0.7, 0.55),
                growth=rng.uniform(0.0, 0.16),
            )
            for _ in range(1 if rng.random() < 0.7 else 2):
                agent = DemoAgent(
                    index=len(self.agents), miner=i, name=self._agent_name(miner), id=self.new_uuid()
                )
                miner.agents.append(agent.index)
                self.agents.append(agent)
            self.miners.append(miner)

    def _agent_name(self, miner: DemoMiner) -> str:
        taken = {self.agents[a].name for a in miner.agents}
        while True:
            name = f"{self.rng.choice(AGENT_WORDS)}-{self.rng.randint(1, 99)}"
            if name not in taken:
                return name

    # events ---------------------------------------------------------------------------------------------

    def push(self, when: float, kind: int, a: int, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, a, b))

    def ready(self, v: DemoValidator, when: float) -> None:
        v.wake += 1
        v.idle = False
        self.push(when, E_READY, v.index, v.wake)

    def wake_idle(self, when: float) -> None:
        for v in self.validators:
            if v.idle and not v.down:
                self.ready(v, when + self.rng.uniform(5, 60))

    def _expected_runs_per_version(self) -> float:
        failing = PEER_STALE_RATE + PEER_TIMEOUT_RATE + INFRA_FAILURE_RATE
        sound = self.required / (1 - failing)
        return (1 - BROKEN_VERSION_RATE) * sound + BROKEN_VERSION_RATE * (DISCARD_AFTER_FAILURES + 0.5)

    def simulate(self, report: ProgressReport) -> None:
        rng = self.rng
        active = [m for m in self.miners if rng.random() >= IDLE_MINER_SHARE] or self.miners[:1]
        # Race runs take their share of the runs (a rough budget: the last burst makes up the rest).
        n_races = max(0.0, (self.span / 86400 - FIRST_RACE_DAYS) / RACE_PERIOD_DAYS)
        field = min(self.settings.race_max_qualifiers, len(active) / 8)
        race_runs = n_races * field * self.settings.race_required_successes * 1.15
        planned = max(
            4, round(0.97 * max(0.0, self.target_runs - race_runs) / self._expected_runs_per_version())
        )
        weights = [rng.lognormvariate(0, 0.9) for _ in active]
        starts = {m.index: rng.uniform(0, 0.6) * self.span for m in active}
        end_uniform = self.span - 86400.0
        for _ in range(planned):
            miner = rng.choices(active, weights)[0]
            when = rng.uniform(min(starts[miner.index], end_uniform - 3600), end_uniform)
            self.push(when, E_SUBMIT, miner.index, 0)
        self.push(self.span - 4 * 3600.0, E_BURST, 0)
        if FIRST_RACE_DAYS * 86400 < self.span:
            self.push(FIRST_RACE_DAYS * 86400, E_RACE, R_OPEN, 0)
        for v in self.validators:
            self.ready(v, rng.uniform(0, 600))
        self.active_miners, self.miner_weights = active, weights

        done = 0
        while self.events:
            when, _, kind, a, b = heapq.heappop(self.events)
            if self.stopping and when > self.now:
                break
            self.now = max(self.now, when)
            if kind == E_SUBMIT:
                self._on_submit(a, b)
            elif kind == E_READY:
                self._on_ready(self.validators[a], b)
            elif kind == E_END:
                self._on_end(a)
            elif kind == E_CANCEL:
                self._on_cancel(a)
            elif kind == E_BURST:
                self._burst()
            elif kind == E_RACE:
                on_race(self, a, b)
            if len(self.runs) - done >= PROGRESS_STEP:
                report.advance(len(self.runs) - done)
                done = len(self.runs)
        score_new_runs(self)
        settle_races(self)
        report.advance(self.target_runs - done)

    def _on_submit(self, miner_index: int, burst: int) -> None:
        if self.uniform_closed and not burst:
            return
        rng, miner = self.rng, self.miners[miner_index]
        agent = self.agents[rng.choice(miner.agents)]
        agent.versions += 1
        if agent.created_at is None:
            agent.created_at = self.now
        index = len(self.versions)
        # Forced early cases so that every state shows up even in a small world.
        broken = index == 3 or (index > 8 and rng.random() < BROKEN_VERSION_RATE)
        cancel = index == 5 or (not broken and index > 8 and rng.random() < CANCEL_RATE)
        skill = miner.skill + miner.growth * 6 * math.log1p(agent.versions - 1) + rng.gauss(0, 0.15)
        version = DemoVersion(
            index=index,
            id=self.new_uuid(),
            work_id=self.new_uuid(),
            agent=agent.index,
            number=agent.versions,
            submitted=self.now,
            skill=skill,
            work_factor=rng.lognormvariate(0, 0.2),
            broken=broken,
            cancel_planned=cancel,
        )
        self.versions.append(version)
        self.open.append(index)
        self.wake_idle(self.now)

    def _burst(self) -> None:
        """Close the regular schedule and queue a last wave of submissions, so the world ends busy:
        every validator holds a run and fresh versions wait in the queue."""
        if self.burst_done:
            return
        self.burst_done = self.uniform_closed = True
        left = max(0, self.target_runs - len(self.runs))
        count = math.ceil(left / self._expected_runs_per_version() * 1.1) + 2 * self.n_validators + 5
        for _ in range(count):
            miner = self.rng.choices(self.active_miners, self.miner_weights)[0]
            self.push(self.now + self.rng.uniform(0, 1800), E_SUBMIT, miner.index, 1)

    def _on_ready(self, v: DemoValidator, wake: int) -> None:
        if wake != v.wake or v.run is not None or self.stopping:
            return
        v.down = False
        found = self._find_work(v)
        if found is None:
            v.idle = True
            return
        self._claim(v, *found)

    def _find_work(self, v: DemoValidator) -> tuple[DemoVersion, DemoEntry | None] | None:
        """Race work first (as the claim does), else the oldest open version this validator may run;
        drops closed versions passed on the way."""
        race = self.races[-1] if self.races else None
        if race is not None and race.status == RaceStatus.RACE_RUNNING:
            for e in race.entries:
                entry = self.entries[e]
                busy = entry.included + len(entry.active)
                if (
                    entry.closed_at is None
                    and busy < self.settings.race_required_successes
                    and busy + entry.failed < self.settings.race_max_attempts
                    and v.index not in entry.tried
                ):
                    return self.versions[entry.version], entry
        keep: list[int] = []
        for position, index in enumerate(self.open):
            version = self.versions[index]
            if version.closed_at is not None:
                continue
            keep.append(index)
            if version.included + len(version.active) < self.required and v.index not in version.tried:
                self.open[: position + 1] = keep
                return version, None
        self.open = keep
        return None

    def _claim(self, v: DemoValidator, version: DemoVersion, entry: DemoEntry | None = None) -> None:
        rng, runs, now = self.rng, self.runs, self.now
        index = len(runs)
        problems = len(self.races[entry.race].drawn) if entry else PROBLEMS
        failing = INFRA_FAILURE_RATE + (FLAKY_FAILURE_RATE if entry and entry.flaky else 0.0)
        overhead = rng.uniform(15, 45)
        work = self.run_seconds * v.speed * version.work_factor * rng.lognormvariate(0, 0.3)
        work *= problems / PROBLEMS
        full = overhead + work
        first_hb = rng.uniform(15, 45)
        hung, crash = -1, math.inf
        if version.broken:
            kind, stop = K_BROKEN, overhead + rng.uniform(3, 30)
        else:
            u = rng.random()
            if u < v.stale_rate:
                kind = K_STALE
                crash = rng.uniform(0.05, 0.95) * full
                stop = crash
            elif u < v.stale_rate + v.timeout_rate:
                kind, stop, hung = K_TIMEOUT, self.limit, rng.randrange(problems)
            elif u < v.stale_rate + v.timeout_rate + failing:
                kind, stop = K_FAILED, rng.uniform(0.05, 0.95) * full
            elif full > self.limit:
                kind, stop = K_TIMEOUT, self.limit
            else:
                kind, stop = K_SUCCESS, full + rng.uniform(1, 5)
        if kind == K_STALE:
            last_hb = self.last_heartbeat(first_hb, crash)
            end = now + (last_hb if last_hb is not None else 0.0) + self.lease + rng.uniform(0, SWEEP_SECONDS)
            self.ready(v, end + rng.uniform(120, 3600))
            v.down = True
        else:
            end = now + stop
        runs.id.append(self.uuid7_rows(now))
        runs.version.append(version.index)
        runs.validator.append(v.index)
        runs.claimed.append(now)
        runs.kind.append(kind)
        runs.overhead.append(overhead)
        runs.work.append(work)
        runs.first_hb.append(first_hb)
        runs.crash.append(crash)
        runs.end.append(end)
        runs.status.append(-1)
        runs.stopped.append(math.inf)
        runs.hung.append(hung)
        runs.service.append(1 if now >= v.upgrade_at else 0)
        runs.entry.append(entry.index if entry else -1)
        v.run = index
        work_of = entry or version
        work_of.active.add(index)
        work_of.tried.add(v.index)
        self.push(end, E_END, index)
        if entry is None and version.cancel_planned and not version.cancel_scheduled:
            version.cancel_scheduled = True
            self.push(now + rng.uniform(0.2, 0.8) * min(stop, full), E_CANCEL, version.index)
        if len(runs) >= self.target_runs:
            self.stopping = True
            self.now = now + 1.0  # "now" of the world: the last claim has no heartbeat yet
        elif not self.burst_done and len(runs) >= self.target_runs - max(
            3 * self.n_validators, self.target_runs // 50
        ):
            self._burst()

    def last_heartbeat(self, first_hb: float, elapsed: float) -> float | None:
        """Seconds after the claim of the last heartbeat sent within ``elapsed`` seconds."""
        if elapsed < first_hb:
            return None
        return first_hb + math.floor((elapsed - first_hb) / self.heartbeat) * self.heartbeat

    def _on_end(self, index: int) -> None:
        runs = self.runs
        if runs.status[index] != -1:
            return  # cancelled earlier
        if runs.entry[index] >= 0:
            on_race_run_end(self, index)
            return
        version, v = self.versions[runs.version[index]], self.validators[runs.validator[index]]
        kind = runs.kind[index]
        version.active.discard(index)
        v.run = None
        runs.stopped[index] = min(self.now, runs.claimed[index] + runs.crash[index])
        if kind == K_SUCCESS:
            runs.status[index] = S_SUCCESS
            self.unscored.append(index)
            version.included += 1
            version.included_runs.append(index)
            if qualifies(version.included, self.required):
                version.state, version.closed_at = "ELIGIBLE", self.now
        elif kind == K_STALE:
            runs.status[index] = S_STALE
        elif kind == K_TIMEOUT:
            runs.status[index] = S_TIMED_OUT
        else:
            runs.status[index] = S_FAILED
            if kind == K_BROKEN:
                version.failures += 1
                if version.failures >= DISCARD_AFTER_FAILURES and version.closed_at is None:
                    self._close(version, "DISCARDED")
        if kind != K_STALE:
            self.ready(v, self.now + self.rng.uniform(2, 30))
        if kind != K_SUCCESS:
            self.wake_idle(self.now)

    def _on_cancel(self, version_index: int) -> None:
        version = self.versions[version_index]
        if version.closed_at is None:
            self._close(version, "CANCELLED")

    def _close(self, version: DemoVersion, state: str) -> None:
        """Settle a version as DISCARDED or CANCELLED: its runs in flight are cancelled."""
        version.state, version.closed_at = state, self.now
        for index in sorted(version.active):
            self.runs.status[index] = S_CANCELLED
            self.runs.end[index] = self.now
            self.runs.stopped[index] = min(self.now, self.runs.claimed[index] + self.runs.crash[index])
            v = self.validators[self.runs.validator[index]]
            v.run = None
            if not v.down:
                self.ready(v, self.now + self.rng.uniform(2, 30))
        version.active.clear()

    def final_score(self, version: DemoVersion) -> float:
        """As ``complete_run``: the mean of the included runs' scores."""
        if version.final_score is None:
            scores = [float(self.run_score[r]) for r in version.included_runs]
            version.final_score = final_score_of(scores)
        return version.final_score
