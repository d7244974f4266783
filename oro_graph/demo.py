"""A deterministic demo world that looks like the subnet: the same seed gives the same rows, ids included.

``generate`` simulates six weeks of SN15 from 2026-10-01: miners submit versions of agents that get
better over time, validators claim the oldest open work item they have not run (X successes out of
however many runs it takes), heartbeat, fail, time out, crash and let leases go stale, report
per-problem results, and the top agent changes hands under the challenge threshold. The simulation
is an event queue; its outcome is then written in bulk (COPY on PostgreSQL) in one transaction.

Three validators carry planted faults whose parameters are the module constants below and are
repeated in the ``Manifest``: one scores ``BIASED_SCORE_OFFSET`` above what a fair validator would
on the same run, one lets ``STALE_LEASE_RATE`` of its leases go stale, one is ``SLOW_DURATION_FACTOR``
times slower and times out at ``SLOW_TIMEOUT_RATE``. Nothing in the data names them.

Races (``services/races.py``) run through the same weeks: one opens every ``RACE_PERIOD_DAYS`` from
day ``FIRST_RACE_DAYS`` (or when the one before ends), its field, threshold, draw, X-of-Y settlement,
race scores, ranks and crowning all come from the services' own rule functions, and the same validators
claim race work before qualifying work, with their planted faults. Some miners pin a version
(``PIN_RATE``) and some entries are flaky under race load (``FLAKY_ENTRY_RATE``: they fail most race
runs and so do not finish). The latest race may still be qualifying or running at the end.

Demo rules that the services do not have: a version whose agent crashes on every run is DISCARDED
after ``DISCARD_AFTER_FAILURES`` failed runs, and some miners cancel a version while it is evaluated.
The submission cooldown is not applied (at large sizes miners submit more often than it allows).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Table, Uuid, func, insert, text
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, select

from oro_graph.db import Database
from oro_graph.errors import ValidationFailed
from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Miner,
    ProblemResult,
    Race,
    RaceQualifier,
    RaceSelection,
    RaceStatus,
    ValidatorState,
    WorkItem,
)
from oro_graph.services import events, races, suites
from oro_graph.services.leaderboard import recompute_top_agent
from oro_graph.settings import Settings
from oro_graph.storage import make_storage

BASE_TIME = datetime(2026, 10, 1, tzinfo=UTC)
_BASE_MS = int(BASE_TIME.timestamp() * 1000)
_BASE_US = np.datetime64(BASE_TIME.replace(tzinfo=None), "us")
SPAN = timedelta(weeks=6)

# Planted faults (documented in the manifest, never in the data).
BIASED_SCORE_OFFSET = 0.05  # added to every run score of the biased validator (spread over its problems)
STALE_LEASE_RATE = 0.20  # share of the stale validator's runs whose lease it lets lapse
SLOW_DURATION_FACTOR = 1.8  # the slow validator's runs take this much longer ...
SLOW_TIMEOUT_RATE = 0.15  # ... and this share of them time out (plus the natural ones)

# Healthy validators.
PEER_STALE_RATE = 0.02
PEER_TIMEOUT_RATE = 0.03
INFRA_FAILURE_RATE = 0.03  # sandbox/infrastructure failures of a sound agent
PROBLEM_FAILED_RATE = 0.05  # one problem of a run errors (score 0)
PROBLEM_TIMEOUT_RATE = 0.02  # one problem of a run times out (score 0)

# Agents and miners.
BROKEN_VERSION_RATE = 0.04  # versions whose code crashes on every run
DISCARD_AFTER_FAILURES = 3
CANCEL_RATE = 0.03  # versions their miner cancels while they are being evaluated
IDLE_MINER_SHARE = 0.1  # registered miners that never submit

HEARTBEAT_SECONDS = 60.0
MAX_RUN_MINUTES = 40.0  # nominal run length at small sizes; shorter when many runs share six weeks
SWEEP_SECONDS = 15.0  # the server's lease sweep period
PROBLEMS = 30

PROGRESS_STEP = 1000

# Races.
FIRST_RACE_DAYS = 6.0  # the first race opens once the board has filled up a little
RACE_PERIOD_DAYS = 3.5  # then one opens every this many days (or when the one before ends, if later)
PIN_RATE = 0.25  # per race, the share of miners with several eligible versions that pin one of them
FLAKY_ENTRY_RATE = 0.08  # race entries whose agent breaks under race load ...
FLAKY_FAILURE_RATE = 0.75  # ... and fails this share of its race runs

_STATUS_NAMES = ("PENDING", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED")
PENDING, RUNNING, P_SUCCESS, P_FAILED, P_TIMED_OUT, SKIPPED = range(6)
ABSENT = 6  # a problem slot a race run does not have (it evaluates only the drawn problems)


class DatabaseNotEmpty(ValidationFailed):
    """The demo only fills an empty database; it never mixes with real data."""


@dataclass
class Manifest:
    """What was generated, and the planted faults with their parameters (for tests, never notebooks)."""

    seed: int
    validators: list[dict[str, Any]]
    counts: dict[str, Any]
    now: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def is_empty(db: Database) -> bool:
    """True while the database has no agent versions (the demo refuses to write into anything else)."""
    with db.session() as session:
        return session.exec(select(func.count()).select_from(AgentVersion)).one() == 0


Progress = Callable[[int, int], None]


def generate(
    db: Database,
    settings: Settings,
    *,
    seed: int = 7,
    miners: int = 120,
    validators: int = 20,
    runs: int = 2500,
    progress: Progress | None = None,
) -> Manifest:
    """Fill an empty database with the demo world; the same arguments always give the same rows."""
    if validators < 4:
        raise ValidationFailed("the demo needs at least 4 validators (three carry planted faults)")
    if miners < 1 or runs < 10:
        raise ValidationFailed("the demo needs at least 1 miner and 10 runs")
    if not is_empty(db):
        raise DatabaseNotEmpty(
            "the database already has agent versions; the demo only fills an empty database"
        )
    report = _Progress(progress, total=2 * runs)
    world = _World(seed=seed, miners=miners, validators=validators, runs=runs, settings=settings)
    world.simulate(report)
    tables = world.results(report)
    storage = make_storage(settings)
    # The agents' code goes to the artifact store (I/O bound) while the database loads. Content-addressed
    # keys: a failed load leaves only files that a later run writes again.
    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = [
            pool.submit(storage.put, key, code, "text/x-python") for key, code in world.code_artifacts()
        ]
        with db.session(write=True) as session:
            if session.exec(select(func.count()).select_from(AgentVersion)).one():
                raise DatabaseNotEmpty(
                    "the database already has agent versions; the demo only fills an empty database"
                )
            manifest = world.write(session, tables, report)
        for future in stored:
            future.result()
    report.finish()
    return manifest


class _Progress:
    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def advance(self, step: int) -> None:
        step = min(step, self.total - self.done)
        if self.callback is not None and step > 0:
            self.done += step
            self.callback(step, self.total)

    def finish(self) -> None:
        self.advance(self.total - self.done)


# --- the built-in suite -----------------------------------------------------------------------------

_SUITE: dict[str, list[tuple[str, str]]] = {
    "Product": [
        ("Looking for a waterproof motorcycle waist bag from hosport, priced from 180 to 505 PHP.", "easy"),
        ("Show me headlight covers in matte black that cost more than 85 PHP.", "easy"),
        ("Find a pack of 10 microfiber car detailing sponges priced between 15 and 37 pesos.", "easy"),
        ("I need a blue power button flex cable replacement for an Oppo A5S.", "easy"),
        ("Looking for a stainless steel insulated tumbler, 900 ml, with a straw lid.", "easy"),
        ("Show me USB-C fast chargers rated 20W or more with free shipping.", "easy"),
        ("Find a children's raincoat in yellow, size M, under 300 PHP.", "easy"),
        ("Show me orange battery-powered calculators (1 piece) that cost over 176 PHP.", "medium"),
        ("Looking for 0.5mm black gel pens, pack of 10, for students, with cash on delivery.", "medium"),
        (
            "Find a dimmable LED garden flood light, 12V, cool white, that supports cash on delivery.",
            "medium",
        ),
    ],
    "Shop": [
        ("Find a shop that sells both a cartoon hair brush and a compact makeup mirror.", "easy"),
        ("Find shops offering patterned cotton face towels with one option between 17 and 60 PHP.", "easy"),
        ("Find a shop with a wall-mounted kitchen cabinet above 410 PHP and a spice rack.", "easy"),
        ("I want a shop that sells a large canvas tote bag and a matching coin purse.", "easy"),
        ("Find a shop with a yellow silicone pot holder with free delivery and a cast iron skillet.", "easy"),
        ("Find a shop that sells silver wired earbuds and a USB-C adapter.", "easy"),
        ("Find shops with a men's 5XL down vest and a short sleeve linen shirt.", "easy"),
        ("Find shops offering black scooters above 1513 PHP and white ones from 1889 to 3315 PHP.", "medium"),
        ("Find a shop with a color-protect hair developer (126 to 210 PHP) and a matching toner.", "medium"),
        (
            "Find a shop that sells a trio lip balm set, a mass-market moisturiser and a single-unit serum.",
            "medium",
        ),
    ],
    "Voucher": [
        ("Show me healthier processed cheese; my budget is 82 and I have a 10% voucher.", "easy"),
        (
            "Find an oily-skin travel size cream and a beige silicone baby bowl within 250 with a voucher.",
            "easy",
        ),
        (
            "Find a dry dog shampoo with free delivery and a flash deal; budget 300, voucher 50 off 250.",
            "easy",
        ),
        ("Show me Oppo A16 phone cases with a stand, cash on delivery, and apply a 15% voucher.", "easy"),
        ("Find floral press-on nails and a lightweight large bike helmet under 900 after vouchers.", "easy"),
        ("Find a thick 40x40 seat cushion; budget 263 with a 20 PHP voucher over 199.", "easy"),
        ("Find a rice cooker under 1200 using the best of two store vouchers.", "easy"),
        ("Combine a shop voucher and a platform voucher to buy two phone chargers under 400.", "medium"),
        ("Find three school supplies from one shop that fit 500 after a tiered voucher.", "medium"),
        ("Pick a laptop stand and a mouse so the cart total after vouchers is closest to 1000.", "medium"),
    ],
}


def suite_json() -> bytes:
    """The built-in 30-problem suite: Product/Shop/Voucher x easy/medium, in the ORO suite format."""
    problems = []
    for category, items in _SUITE.items():
        for index, (query, difficulty) in enumerate(items, start=1):
            problems.append(
                {
                    "query": query,
                    "title": f"{category} {index}",
                    "category": category,
                    "difficulty": difficulty,
                    "reward": {"product_id": str(1_000_000_000 + 7919 * len(problems))},
                }
            )
    return json.dumps(problems, indent=1).encode()


# --- names -------------------------------------------------------------------------------------------

_ADJECTIVES = (
    "amber azure bold brisk calm cedar clever copper coral crimson dapper deft eager early fair fleet "
    "gentle golden grand hazel honest indigo ivory jade keen lively lucky lunar maple merry misty noble "
    "olive opal patient plucky quiet rapid rustic sage scarlet silver sly solar steady swift tidal "
    "topaz true urban velvet vivid warm wild witty young zesty"
).split()
_NOUNS = (
    "badger beacon bison cardinal comet condor coyote crane dolphin eagle falcon ferret finch fox "
    "gecko harbor hare heron ibis jaguar kestrel koala lark lemur lynx magpie marten meadow mink moose "
    "narwhal ocelot orca osprey otter owl panda pelican puffin quail raven robin salmon sparrow stoat "
    "swift tapir tern tiger toucan walrus wren yak zebra"
).split()
_AGENT_WORDS = (
    "cartwise dealhound shopscout bargainbot pricepilot voucherwiz basketbrain checkout-ace "
    "findr lazfinder smartcart thrifty pickwise goodbuy aisle-agent scoutly"
).split()


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        if name not in taken:
            taken.add(name)
            return name


def demo_hotkey(seed: int, role: str, index: int) -> str:
    """The SS58 hotkey of demo miner/validator ``index``: the dev key ``//oro-demo/<seed>/<role>/<index>``."""
    from substrateinterface import Keypair

    return str(Keypair.create_from_uri(f"//oro-demo/{seed}/{role}/{index}").ss58_address)


# --- the simulation ----------------------------------------------------------------------------------

# Run outcomes decided at claim time.
K_SUCCESS, K_FAILED, K_BROKEN, K_TIMEOUT, K_STALE = range(5)
# Run statuses at the end of the simulation.
RUN_STATUSES = ("SUCCESS", "FAILED", "TIMED_OUT", "STALE", "CANCELLED", "CLAIMED", "RUNNING")
S_SUCCESS, S_FAILED, S_TIMED_OUT, S_STALE, S_CANCELLED, S_CLAIMED, S_RUNNING = range(7)

E_SUBMIT, E_READY, E_END, E_CANCEL, E_BURST, E_RACE = range(6)
R_OPEN, R_CLOSE, R_DEADLINE = range(3)


@dataclass
class _Validator:
    index: int
    hotkey: str
    name: str
    speed: float
    stale_rate: float = PEER_STALE_RATE
    timeout_rate: float = PEER_TIMEOUT_RATE
    bias: float = 0.0
    fault: str | None = None
    run: int | None = None  # the run it holds
    idle: bool = False
    down: bool = False  # crashed; comes back by itself
    wake: int = 0  # generation of its pending READY event
    upgrade_at: float = 0.0  # when it moves to the newer validator release


@dataclass
class _Miner:
    index: int
    hotkey: str
    name: str
    skill: float
    growth: float
    agents: list[int] = field(default_factory=list)


@dataclass
class _Agent:
    index: int
    miner: int
    name: str
    id: uuid.UUID
    versions: int = 0
    created_at: float | None = None


@dataclass
class _Version:
    index: int
    id: uuid.UUID
    work_id: uuid.UUID
    agent: int
    number: int
    submitted: float
    skill: float
    work_factor: float
    broken: bool
    cancel_planned: bool
    included: int = 0
    active: set[int] = field(default_factory=set)
    tried: set[int] = field(default_factory=set)
    failures: int = 0
    closed_at: float | None = None
    state: str | None = None  # ELIGIBLE, DISCARDED or CANCELLED once settled
    cancel_scheduled: bool = False
    included_runs: list[int] = field(default_factory=list)
    final_score: float | None = None


@dataclass
class _Race:
    index: int
    id: uuid.UUID
    secret: str
    opened: float
    closes: float
    threshold: float
    status: str = RaceStatus.QUALIFYING_OPEN.value
    started: float | None = None
    deadline: float | None = None
    ended: float | None = None  # completed or cancelled
    draw_seed: str | None = None
    drawn: list[int] = field(default_factory=list)  # problem positions in the suite, in draw order
    entries: list[int] = field(default_factory=list)
    winner: int | None = None  # entry index

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass
class _Entry:
    """A qualifier of a race and its race work item (X of Y runs by distinct validators)."""

    index: int
    race: int
    version: int
    work_id: uuid.UUID
    kind: str
    entered: float
    flaky: bool
    included: int = 0
    failed: int = 0
    active: set[int] = field(default_factory=set)
    tried: set[int] = field(default_factory=set)
    included_runs: list[int] = field(default_factory=list)
    closed_at: float | None = None
    finished_at: float | None = None
    did_not_finish: bool = False
    race_score: float | None = None
    rank: int | None = None


class _Runs:
    """Column lists of every run, appended at claim time and settled by events."""

    def __init__(self) -> None:
        self.id: list[uuid.UUID] = []
        self.version: list[int] = []
        self.validator: list[int] = []
        self.claimed: list[float] = []
        self.kind: list[int] = []
        self.overhead: list[float] = []
        self.work: list[float] = []  # seconds of problem work if nothing interrupts it
        self.first_hb: list[float] = []
        self.crash: list[float] = []  # seconds after claim the run stops making progress (inf: never)
        self.end: list[float] = []  # absolute time of its completion / stale mark
        self.status: list[int] = []  # -1 while active
        self.stopped: list[float] = []  # absolute time its progress stopped (completion, crash, cancel)
        self.hung: list[int] = []  # problem that hangs on a designated timeout (-1: none)
        self.service: list[int] = []  # validator release index
        self.entry: list[int] = []  # race entry of a race run (-1: qualifying work)

    def __len__(self) -> int:
        return len(self.id)


class _World:
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
        self.validators: list[_Validator] = []
        self.miners: list[_Miner] = []
        self.agents: list[_Agent] = []
        self.versions: list[_Version] = []
        self.runs = _Runs()
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
        self.difficulty = np.array(_difficulties(random.Random(seed + 2)))
        self.races: list[_Race] = []
        self.entries: list[_Entry] = []
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

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def _uuid7(self, when: float) -> uuid.UUID:
        """Time-ordered ids for runs (UUIDv7): consecutive runs land next to each other in the indexes."""
        ms = _BASE_MS + int(when * 1000)
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
                _Validator(
                    index=i,
                    hotkey=demo_hotkey(self.seed, "validator", i),
                    name=_name(rng, self.names).replace("-", " ").title(),
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
            miner = _Miner(
                index=i,
                hotkey=demo_hotkey(self.seed, "miner", i),
                name=_name(rng, self.names),
                skill=rng.gauss(-0.7, 0.55),
                growth=rng.uniform(0.0, 0.16),
            )
            for _ in range(1 if rng.random() < 0.7 else 2):
                agent = _Agent(index=len(self.agents), miner=i, name=self._agent_name(miner), id=self._uuid())
                miner.agents.append(agent.index)
                self.agents.append(agent)
            self.miners.append(miner)

    def _agent_name(self, miner: _Miner) -> str:
        taken = {self.agents[a].name for a in miner.agents}
        while True:
            name = f"{self.rng.choice(_AGENT_WORDS)}-{self.rng.randint(1, 99)}"
            if name not in taken:
                return name

    # events ---------------------------------------------------------------------------------------------

    def _push(self, when: float, kind: int, a: int, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, a, b))

    def _ready(self, v: _Validator, when: float) -> None:
        v.wake += 1
        v.idle = False
        self._push(when, E_READY, v.index, v.wake)

    def _wake_idle(self, when: float) -> None:
        for v in self.validators:
            if v.idle and not v.down:
                self._ready(v, when + self.rng.uniform(5, 60))

    def _expected_runs_per_version(self) -> float:
        failing = PEER_STALE_RATE + PEER_TIMEOUT_RATE + INFRA_FAILURE_RATE
        sound = self.required / (1 - failing)
        return (1 - BROKEN_VERSION_RATE) * sound + BROKEN_VERSION_RATE * (DISCARD_AFTER_FAILURES + 0.5)

    def simulate(self, report: _Progress) -> None:
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
            self._push(when, E_SUBMIT, miner.index, 0)
        self._push(self.span - 4 * 3600.0, E_BURST, 0)
        if FIRST_RACE_DAYS * 86400 < self.span:
            self._push(FIRST_RACE_DAYS * 86400, E_RACE, R_OPEN, 0)
        for v in self.validators:
            self._ready(v, rng.uniform(0, 600))
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
                self._on_race(a, b)
            if len(self.runs) - done >= PROGRESS_STEP:
                report.advance(len(self.runs) - done)
                done = len(self.runs)
        self._score()
        self._settle_races()
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
        version = _Version(
            index=index,
            id=self._uuid(),
            work_id=self._uuid(),
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
        self._wake_idle(self.now)

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
            self._push(self.now + self.rng.uniform(0, 1800), E_SUBMIT, miner.index, 1)

    def _on_ready(self, v: _Validator, wake: int) -> None:
        if wake != v.wake or v.run is not None or self.stopping:
            return
        v.down = False
        found = self._find_work(v)
        if found is None:
            v.idle = True
            return
        self._claim(v, *found)

    def _find_work(self, v: _Validator) -> tuple[_Version, _Entry | None] | None:
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

    def _claim(self, v: _Validator, version: _Version, entry: _Entry | None = None) -> None:
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
            last_hb = self._last_heartbeat(first_hb, crash)
            end = now + (last_hb if last_hb is not None else 0.0) + self.lease + rng.uniform(0, SWEEP_SECONDS)
            self._ready(v, end + rng.uniform(120, 3600))
            v.down = True
        else:
            end = now + stop
        runs.id.append(self._uuid7(now))
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
        self._push(end, E_END, index)
        if entry is None and version.cancel_planned and not version.cancel_scheduled:
            version.cancel_scheduled = True
            self._push(now + rng.uniform(0.2, 0.8) * min(stop, full), E_CANCEL, version.index)
        if len(runs) >= self.target_runs:
            self.stopping = True
            self.now = now + 1.0  # "now" of the world: the last claim has no heartbeat yet
        elif not self.burst_done and len(runs) >= self.target_runs - max(
            3 * self.n_validators, self.target_runs // 50
        ):
            self._burst()

    def _last_heartbeat(self, first_hb: float, elapsed: float) -> float | None:
        """Seconds after the claim of the last heartbeat sent within ``elapsed`` seconds."""
        if elapsed < first_hb:
            return None
        return first_hb + math.floor((elapsed - first_hb) / self.heartbeat) * self.heartbeat

    def _on_end(self, index: int) -> None:
        runs = self.runs
        if runs.status[index] != -1:
            return  # cancelled earlier
        if runs.entry[index] >= 0:
            self._on_race_run_end(index)
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
            if version.included >= self.required:
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
            self._ready(v, self.now + self.rng.uniform(2, 30))
        if kind != K_SUCCESS:
            self._wake_idle(self.now)

    def _on_cancel(self, version_index: int) -> None:
        version = self.versions[version_index]
        if version.closed_at is None:
            self._close(version, "CANCELLED")

    def _close(self, version: _Version, state: str) -> None:
        """Settle a version as DISCARDED or CANCELLED: its runs in flight are cancelled."""
        version.state, version.closed_at = state, self.now
        for index in sorted(version.active):
            self.runs.status[index] = S_CANCELLED
            self.runs.end[index] = self.now
            self.runs.stopped[index] = min(self.now, self.runs.claimed[index] + self.runs.crash[index])
            v = self.validators[self.runs.validator[index]]
            v.run = None
            if not v.down:
                self._ready(v, self.now + self.rng.uniform(2, 30))
        version.active.clear()

    # races ---------------------------------------------------------------------------------------------

    def _on_race(self, action: int, index: int) -> None:
        if action == R_OPEN:
            self._open_race()
            return
        race = self.races[index]
        if action == R_CLOSE and race.status == RaceStatus.QUALIFYING_OPEN:
            self._close_qualifying(race)
        elif action == R_DEADLINE and race.status == RaceStatus.RACE_RUNNING:
            self._complete_race(race)

    def _last_completed(self) -> _Race | None:
        done = [r for r in self.races if r.status == RaceStatus.RACE_COMPLETE]
        return done[-1] if done else None

    def _open_race(self) -> None:
        """As ``races.open_race``: commit to a secret, the threshold from the reigning winner's score."""
        now, rng, hours = self.now, self.rng, self.settings.race_qualifying_hours
        last = self._last_completed()
        won = self.entries[last.winner].race_score if last and last.winner is not None else None
        threshold = races.decayed_threshold(
            won, _at(last.ended) if last else None, settings=self.settings, now=_at(now) or BASE_TIME
        )
        index = len(self.races)
        secret = hashlib.sha256(f"oro-demo/{self.seed}/race/{index + 1}".encode()).hexdigest()
        race = _Race(index, self._uuid(), secret, now, now + hours * 3600, threshold)
        self.races.append(race)
        # Some miners with several eligible versions pin one of them while qualifying is open.
        eligible: dict[int, list[int]] = {}
        for version in self.versions:
            if version.state == "ELIGIBLE":
                eligible.setdefault(self.agents[version.agent].miner, []).append(version.index)
        for miner, versions in sorted(eligible.items()):
            if len(versions) >= 2 and rng.random() < PIN_RATE:
                at = now + rng.uniform(0.05, 0.8) * hours * 3600
                self.pins.setdefault(miner, []).append((at, rng.choice(versions)))
        self._push(race.closes, E_RACE, R_CLOSE, index)

    def _final_score(self, version: _Version) -> float:
        """As ``complete_run``: the mean of the included runs' scores."""
        if version.final_score is None:
            scores = [float(self.run_score[r]) for r in version.included_runs]
            version.final_score = sum(scores) / len(scores)
        return version.final_score

    def _field(self, race: _Race, at: float) -> list[tuple[_Version, str]]:
        """Who races at ``at``, by ``races.choose_field`` over the versions eligible then."""
        self._score()
        candidates, by_id = [], {}
        for version in self.versions:
            if version.state == "ELIGIBLE" and (version.closed_at or 0.0) <= at:
                hotkey = self.miners[self.agents[version.agent].miner].hotkey
                by_id[version.id] = version
                candidates.append(
                    races.Candidate(version.id, hotkey, self._final_score(version), _at(version.closed_at))
                )
        pins = {}
        for miner, history in self.pins.items():
            chosen = [v for t, v in history if t <= at]
            if chosen:
                pins[self.miners[miner].hotkey] = self.versions[chosen[-1]].id
        last = self._last_completed()
        incumbent = (
            self.versions[self.entries[last.winner].version].id if last and last.winner is not None else None
        )
        field = races.choose_field(
            candidates,
            pins=pins,
            incumbent=incumbent,
            threshold=race.threshold,
            cap=self.settings.race_max_qualifiers,
            opened_at=_at(race.opened) or BASE_TIME,
        )
        return [(by_id[c.version_id], kind.value) for c, kind in field]

    def _enter(self, race: _Race, at: float) -> list[_Entry]:
        entries = []
        for version, kind in self._field(race, at):
            entry = _Entry(
                index=len(self.entries),
                race=race.index,
                version=version.index,
                work_id=self._uuid(),
                kind=kind,
                entered=max(race.opened, version.closed_at or 0.0),
                flaky=self.rng.random() < FLAKY_ENTRY_RATE,
            )
            self.entries.append(entry)
            entries.append(entry)
        # Race work is claimed oldest first, then by id (it is all created at once).
        race.entries = [e.index for e in sorted(entries, key=lambda e: e.work_id.hex)]
        return entries

    def _close_qualifying(self, race: _Race) -> None:
        """As ``races.close_qualifying``: freeze the field, draw from the secret and the field, hand out
        race work; a race nobody qualified for is cancelled."""
        now = self.now
        entries = self._enter(race, now)
        if not entries:
            race.status, race.ended = RaceStatus.CANCELLED.value, now
            self._schedule_next(race)
            return
        race.draw_seed = races.draw_seed(race.secret, [self.versions[e.version].id for e in entries])
        drawn = races.draw_problems(race.draw_seed, self.problem_ids, self.settings.race_problems)
        race.drawn = [self.problem_at[p] for p in drawn]
        race.status, race.started = RaceStatus.RACE_RUNNING.value, now
        race.deadline = now + self.settings.race_max_hours * 3600
        self._push(race.deadline, E_RACE, R_DEADLINE, race.index)
        self._wake_idle(now)

    def _on_race_run_end(self, index: int) -> None:
        """As ``complete_run`` and ``races.on_race_run_finished`` (a lapsed lease is no attempt)."""
        runs, now = self.runs, self.now
        entry, v = self.entries[runs.entry[index]], self.validators[runs.validator[index]]
        kind = runs.kind[index]
        entry.active.discard(index)
        v.run = None
        runs.stopped[index] = min(now, runs.claimed[index] + runs.crash[index])
        runs.status[index] = {K_SUCCESS: S_SUCCESS, K_STALE: S_STALE, K_TIMEOUT: S_TIMED_OUT}.get(
            kind, S_FAILED
        )
        if kind == K_SUCCESS:
            self.unscored.append(index)
            if entry.closed_at is None:
                entry.included += 1
                entry.included_runs.append(index)
            else:
                self.late_successes.add(index)
        elif kind != K_STALE:
            entry.failed += 1
        if entry.closed_at is None:
            settled = races.settlement(
                entry.included,
                entry.failed,
                self.settings.race_required_successes,
                self.settings.race_max_attempts,
            )
            if settled is not None:
                entry.closed_at = entry.finished_at = now
                entry.did_not_finish = settled == "DID_NOT_FINISH"
        if kind != K_STALE:
            self._ready(v, now + self.rng.uniform(2, 30))
        if kind != K_SUCCESS:
            self._wake_idle(now)
        race = self.races[entry.race]
        if race.status == RaceStatus.RACE_RUNNING and all(
            self.entries[e].closed_at is not None for e in race.entries
        ):
            self._complete_race(race)

    def _race_scores(self, race: _Race) -> None:
        """Race scores of the entries that finished (``races.race_score_of`` their included runs)."""
        self._score()
        for e in race.entries:
            entry = self.entries[e]
            if entry.closed_at is not None and not entry.did_not_finish and entry.race_score is None:
                entry.race_score = races.race_score_of(float(self.run_score[r]) for r in entry.included_runs)

    def _complete_race(self, race: _Race) -> None:
        """As ``races.complete_race``: the unsettled did not finish, finishers ranked, rank 1 wins."""
        now = self.now
        self._race_scores(race)
        for e in race.entries:
            entry = self.entries[e]
            if entry.closed_at is None:
                entry.closed_at = entry.finished_at = now
                entry.did_not_finish = True
        finishers = sorted(
            (self.entries[e] for e in race.entries if self.entries[e].race_score is not None),
            key=lambda e: races.finisher_order(e.race_score or 0.0, self.versions[e.version].id),
        )
        for rank, entry in enumerate(finishers, 1):
            entry.rank = rank
        race.winner = finishers[0].index if finishers else None
        race.status, race.ended = RaceStatus.RACE_COMPLETE.value, now
        self._schedule_next(race)

    def _schedule_next(self, race: _Race) -> None:
        ended = race.ended or self.now
        at = max(race.opened + RACE_PERIOD_DAYS * 86400, ended + self.settings.race_interval_hours * 3600)
        if at < self.span:
            self._push(at, E_RACE, R_OPEN, 0)

    def _settle_races(self) -> None:
        """At the end of the world: the live race's field (qualifying) or finished scores (running)."""
        race = self.races[-1] if self.races else None
        if race is None:
            return
        if race.status == RaceStatus.QUALIFYING_OPEN:
            self._enter(race, self.now)
        elif race.status == RaceStatus.RACE_RUNNING:
            self._race_scores(race)

    # scores -------------------------------------------------------------------------------------------

    def slots(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per run, the suite position of each problem slot and whether the run has that slot: a race
        run evaluates only its race's drawn problems, in draw order."""
        slots = np.tile(np.arange(PROBLEMS), (len(idx), 1))
        present = np.ones((len(idx), PROBLEMS), dtype=bool)
        for row, run in enumerate(idx.tolist()):
            e = self.runs.entry[run]
            if e >= 0:
                drawn = self.races[self.entries[e].race].drawn
                slots[row, : len(drawn)] = drawn
                present[row, len(drawn) :] = False
        return slots, present

    def problem_scores(self, idx: np.ndarray, slots: np.ndarray, pstatus: np.ndarray) -> np.ndarray:
        """Problem scores of runs ``idx``: agent skill against problem difficulty, with run-level and
        problem-level noise, 0 for a failed or timed-out problem, the biased validator's lenience."""
        skill = np.array([self.versions[self.runs.version[i]].skill for i in idx.tolist()])
        logit = (
            1.6 * (skill[:, None] - self.difficulty[slots] + self.run_noise[idx][:, None])
            + self.problem_noise[idx]
        )
        quality = 1.0 / (1.0 + np.exp(-logit))
        score = np.where(
            pstatus == P_SUCCESS, quality, np.where(np.isin(pstatus, (P_FAILED, P_TIMED_OUT)), 0.0, np.nan)
        )
        bias = np.array([self.validators[self.runs.validator[i]].bias for i in idx.tolist()])
        return np.round(_lenient(score, pstatus == P_SUCCESS, bias), 4)

    def _score(self) -> None:
        """Score the successful runs that ended since the last call."""
        if not self.unscored:
            return
        idx = np.array(self.unscored)
        self.unscored = []
        slots, present = self.slots(idx)
        pstatus = np.where(present, _outcomes(self.outcome_draw[idx]), ABSENT)
        scores = self.problem_scores(idx, slots, pstatus)
        self.scores[idx] = scores
        self.run_score[idx] = np.nanmean(scores, axis=1)

    # per-problem results ------------------------------------------------------------------------------

    def results(self, report: _Progress) -> _Results:
        """Per-problem statuses, scores and timings of every run, drawn in bulk with numpy."""
        return _Results.build(self, self.gen)

    # writing ------------------------------------------------------------------------------------------

    def write(self, session: Session, results: _Results, report: _Progress) -> Manifest:
        writer = _Writer(session)
        imported = suites.import_suite(
            session, suite_json(), activate=True, benchmark_name="shoppingbench-demo"
        )
        suite = imported.suite
        if imported.created:
            suite.created_at = BASE_TIME - timedelta(days=1)  # not the clock: same seed, same rows
            session.add(suite)
        suite_id = suite.id or 0
        problems = suites.problems_for_suite(session, suite_id)
        problem_ids = _uuid_bytes(p.id for p in problems)
        now = self.now
        versions, runs = self.versions, self.runs

        registered = BASE_TIME - timedelta(days=60)
        hotkeys = [
            (v.hotkey, "validator", True, v.name, False, i, registered + timedelta(hours=i))
            for i, v in enumerate(self.validators)
        ] + [
            (
                m.hotkey,
                "miner",
                False,
                m.name,
                False,
                len(self.validators) + i,
                registered + timedelta(days=1, hours=7 * i),
            )
            for i, m in enumerate(self.miners)
        ]
        writer.rows(
            Hotkey.__table__,
            ("ss58", "role", "validator_permit", "name", "banned", "uid", "registered_at"),
            hotkeys,
        )

        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for version in versions:
            miner = self.agents[version.agent].miner
            first.setdefault(miner, version.submitted)
            last[miner] = version.submitted
        writer.rows(
            Miner.__table__,
            ("hotkey", "created_at", "last_submitted_at"),
            [(self.miners[m].hotkey, _at(first[m]), _at(last[m])) for m in sorted(first)],
        )
        writer.rows(
            Agent.__table__,
            ("id", "miner_hotkey", "name", "created_at"),
            [
                (a.id.hex, self.miners[a.miner].hotkey, a.name, _at(a.created_at))
                for a in self.agents
                if a.created_at is not None
            ],
        )

        # Scores, work items and version states as of "now".
        final_scores = {
            index: self._final_score(version)
            for index, version in enumerate(versions)
            if version.state == "ELIGIBLE"
        }
        version_rows, work_rows = [], []
        for index, version in enumerate(versions):
            active = results.active_by_version.get(index, 0)
            included = len(results.included_by_version.get(index, ()))
            state = version.state or ("RUNNING" if active or included else "QUEUED")
            stored_state = "RUNNING" if state == "ELIGIBLE" else state  # crowned in order below
            code = self.code(version)
            digest = hashlib.sha256(code).hexdigest()
            version_rows.append(
                (
                    version.id.hex,
                    self.agents[version.agent].id.hex,
                    version.number,
                    suite_id,
                    stored_state,
                    _at(version.submitted),
                    _at(version.closed_at) if state == "ELIGIBLE" else None,
                    _at(version.closed_at) if state == "DISCARDED" else None,
                    final_scores.get(index),
                    f"agents/{digest}.py",
                    digest,
                    len(code),
                )
            )
            work_rows.append(
                (
                    version.work_id.hex,
                    version.id.hex,
                    suite_id,
                    self.required,
                    included,
                    active,
                    version.closed_at is not None,
                    _at(version.submitted),
                    _at(version.closed_at),
                    None,
                    None,
                    0,
                )
            )
        work_rows.extend(self._race_work_rows(suite_id, results))

        def batches() -> Iterable[dict[str, Any]]:
            for start, stop in _spans(len(runs), 60_000 // PROBLEMS):
                yield results.problem_columns(self, problem_ids, start, stop)
                report.advance(stop - start)

        bulk = (AgentVersion.__table__, WorkItem.__table__, EvaluationRun.__table__, ProblemResult.__table__)
        with writer.foreign_keys_checked_once(*bulk):
            # Races before their work items; completed ones are stored RACE_RUNNING and completed in
            # order below, so the top agent's history is replayed through the services' rules.
            writer.rows(
                AgentVersion.__table__,
                (
                    "id",
                    "agent_id",
                    "version_number",
                    "suite_id",
                    "state",
                    "submitted_at",
                    "eligible_at",
                    "discarded_at",
                    "final_score",
                    "code_key",
                    "code_sha256",
                    "code_size",
                ),
                version_rows,
            )
            self._write_races(writer, suite_id)
            writer.rows(
                WorkItem.__table__,
                (
                    "id",
                    "agent_version_id",
                    "suite_id",
                    "required_successes",
                    "included_successes",
                    "active_runs",
                    "is_closed",
                    "created_at",
                    "closed_at",
                    "race_id",
                    "max_attempts",
                    "failed_attempts",
                ),
                work_rows,
            )
            writer.columns(
                EvaluationRun.__table__,
                _RUN_COLUMNS,
                (
                    results.run_columns(self, suite_id, start, stop)
                    for start, stop in _spans(len(runs), 10_000)
                ),
            )
            writer.columns(ProblemResult.__table__, _RESULT_COLUMNS, batches())
        writer.rows(ValidatorState.__table__, _STATE_COLUMNS, self._validator_states())
        writer.rows(
            RaceSelection.__table__, ("miner_hotkey", "agent_version_id", "updated_at"), self._pins_now()
        )
        reigns = self._crown(session, suite_id, final_scores)

        statuses = Counter(RUN_STATUSES[s] for s in results.status)
        states = Counter(
            v.state
            or (
                "RUNNING"
                if results.active_by_version.get(i) or results.included_by_version.get(i)
                else "QUEUED"
            )
            for i, v in enumerate(versions)
        )
        counts: dict[str, Any] = {
            "miners": len(self.miners),
            "submitting_miners": len(first),
            "validators": len(self.validators),
            "problems": len(problems),
            "agents": sum(1 for a in self.agents if a.created_at is not None),
            "agent_versions": len(versions),
            "eligible_versions": states.get("ELIGIBLE", 0),
            "runs": len(runs),
            "problem_results": int(results.present.sum()),
            "top_agent_reigns": reigns,
            "races": len(self.races),
            "races_by_status": dict(sorted(Counter(str(r.status) for r in self.races).items())),
            "race_qualifiers": sum(len(r.entries) for r in self.races),
            "race_runs": sum(1 for e in runs.entry if e >= 0),
            "versions_by_state": dict(sorted(states.items())),
            "runs_by_status": dict(sorted(statuses.items())),
        }
        return Manifest(
            seed=self.seed,
            validators=[self._fault(v) for v in self.validators if v.fault],
            counts=counts,
            now=_at(now).isoformat(),
            parameters={
                "base_time": BASE_TIME.isoformat(),
                "required_successes": self.required,
                "challenge_threshold": self.settings.challenge_threshold,
                "nominal_run_seconds": round(self.run_seconds, 1),
                "run_time_limit_seconds": round(self.limit, 1),
                "peer_stale_rate": PEER_STALE_RATE,
                "peer_timeout_rate": PEER_TIMEOUT_RATE,
                "infra_failure_rate": INFRA_FAILURE_RATE,
                "broken_version_rate": BROKEN_VERSION_RATE,
                "discard_after_failures": DISCARD_AFTER_FAILURES,
                "cancel_rate": CANCEL_RATE,
                "first_race_days": FIRST_RACE_DAYS,
                "race_period_days": RACE_PERIOD_DAYS,
                "pin_rate": PIN_RATE,
                "flaky_entry_rate": FLAKY_ENTRY_RATE,
                "flaky_failure_rate": FLAKY_FAILURE_RATE,
            },
        )

    def _fault(self, v: _Validator) -> dict[str, Any]:
        entry: dict[str, Any] = {"hotkey": v.hotkey, "name": v.name, "fault": v.fault}
        if v.fault == "biased":
            entry["score_offset"] = BIASED_SCORE_OFFSET
        elif v.fault == "stale":
            entry.update(stale_rate=STALE_LEASE_RATE, peer_stale_rate=PEER_STALE_RATE)
        else:
            entry.update(
                duration_factor=SLOW_DURATION_FACTOR,
                timeout_rate=SLOW_TIMEOUT_RATE,
                peer_timeout_rate=PEER_TIMEOUT_RATE,
            )
        return entry

    def _validator_states(self) -> list[tuple[Any, ...]]:
        runs, rng = self.runs, random.Random(self.seed + 1)
        last_claim: dict[int, float] = {}
        last_seen: dict[int, float] = {}
        last_hb: dict[int, float] = {}
        for i in range(len(runs)):
            v = runs.validator[i]
            last_claim[v] = runs.claimed[i]
            seen = min(self.now, runs.stopped[i], runs.claimed[i] + runs.crash[i])
            hb = self._last_heartbeat(runs.first_hb[i], seen - runs.claimed[i])
            if hb is not None:
                last_hb[v] = max(last_hb.get(v, 0.0), runs.claimed[i] + hb)
            last_seen[v] = max(
                last_seen.get(v, 0.0), runs.claimed[i], seen if runs.status[i] != S_CANCELLED else 0.0
            )
        rows = []
        for v in self.validators:
            if v.index not in last_claim:
                continue
            rows.append(
                (
                    v.hotkey,
                    _at(last_claim[v.index]),
                    _at(last_seen[v.index]),
                    round(rng.uniform(20, 95), 1),
                    round(rng.uniform(30, 85), 1),
                    round(rng.uniform(15, 70), 1),
                    rng.randint(1, 6),
                    _service_versions(1 if self.now >= v.upgrade_at else 0),
                    _at(last_hb.get(v.index)),
                )
            )
        return rows

    def _crown(self, session: Session, suite_id: int, final_scores: dict[int, float]) -> int:
        """Replay eligibility and race completions in time order through the services' own rules.

        Only a version that beats every earlier eligible one can change the top agent, so those are
        made ELIGIBLE one by one (with the service called at their eligible_at); the rest follow in bulk.
        Completed races are completed at their hour and their winners crowned (``races.crown``); the
        races' events go to the log in between, in time order, as the services record them.
        """
        order = sorted(final_scores, key=lambda i: (self.versions[i].closed_at, self.versions[i].id.hex))
        best = -math.inf
        table = AgentVersion.__table__
        # (when, 0: eligible / 1: race event / 2: race completed, index)
        timeline: list[tuple[float, int, int]] = []
        for index in order:
            score = final_scores[index]
            if score <= best:
                continue
            best = score
            timeline.append((self.versions[index].closed_at or 0.0, 0, index))
        timeline.extend(
            (race.ended or 0.0, 2, race.index)
            for race in self.races
            if race.status == RaceStatus.RACE_COMPLETE
        )
        race_events = self._race_events()
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
                    at=_at(when),
                )
                continue
            if kind == 2:
                self._complete_stored_race(session, self.races[index])
                continue
            session.execute(
                table.update().where(table.c.id == self.versions[index].id).values(state="ELIGIBLE")
            )
            recompute_top_agent(session, suite_id, settings=self.settings, now=_at(when))
        session.execute(
            table.update()
            .where(table.c.final_score.is_not(None), table.c.state == "RUNNING")
            .values(state="ELIGIBLE")
        )
        session.flush()
        return int(session.execute(text("SELECT count(*) FROM topagenthistory")).scalar_one())

    def _race_events(self) -> list[tuple[float, events.RaceEvent, uuid.UUID, uuid.UUID | None]]:
        """The raceChanges log of every race, as the services record it: opened, each entry, qualifying
        closed (or cancelled), each finisher, then at completion the non-finishers and the completion."""
        out: list[tuple[float, events.RaceEvent, uuid.UUID, uuid.UUID | None]] = []
        for race in self.races:
            out.append((race.opened, events.RaceEvent.RACE_OPENED, race.id, None))
            for e in race.entries:
                entry = self.entries[e]
                version = self.versions[entry.version].id
                out.append((entry.entered, events.RaceEvent.QUALIFIER_ENTERED, race.id, version))
                if entry.finished_at is not None and not entry.did_not_finish:
                    out.append((entry.finished_at, events.RaceEvent.QUALIFIER_FINISHED, race.id, version))
                if entry.did_not_finish and race.status == RaceStatus.RACE_COMPLETE:
                    out.append(
                        (race.ended or 0.0, events.RaceEvent.QUALIFIER_DID_NOT_FINISH, race.id, version)
                    )
            if race.started is not None:
                out.append((race.started, events.RaceEvent.QUALIFYING_CLOSED, race.id, None))
            if race.status == RaceStatus.CANCELLED:
                out.append((race.ended or 0.0, events.RaceEvent.RACE_CANCELLED, race.id, None))
            elif race.status == RaceStatus.RACE_COMPLETE:
                winner = (
                    self.versions[self.entries[race.winner].version].id if race.winner is not None else None
                )
                out.append((race.ended or 0.0, events.RaceEvent.RACE_COMPLETED, race.id, winner))
        return out

    def _write_races(self, writer: _Writer, suite_id: int) -> None:
        race_rows = []
        for race in self.races:
            complete = race.status == RaceStatus.RACE_COMPLETE
            winner = self.entries[race.winner] if race.winner is not None else None
            scored = sum(1 for e in race.entries if self.entries[e].race_score is not None)
            race_rows.append(
                (
                    race.id.hex,
                    race.number,
                    suite_id,
                    RaceStatus.RACE_RUNNING.value if complete else race.status,  # completed below
                    race.threshold,
                    self.settings.race_max_qualifiers,
                    self.settings.race_problems,
                    self.settings.race_required_successes,
                    self.settings.race_max_attempts,
                    _at(race.opened),
                    _at(race.closes),
                    _at(race.started),
                    _at(race.deadline),
                    _at(race.ended) if complete else None,
                    _at(race.ended) if race.status == RaceStatus.CANCELLED else None,
                    races.commitment_of(race.secret),
                    race.secret,
                    race.ended is not None,
                    race.draw_seed,
                    [str(self.problem_ids[p]) for p in race.drawn] if race.draw_seed else None,
                    self.versions[winner.version].id.hex if winner else None,
                    winner.race_score if winner else None,
                    len(race.entries),
                    scored if complete else None,
                    _at(race.ended or race.started or race.opened),
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
        for race in self.races:
            for e in race.entries:
                entry = self.entries[e]
                version = self.versions[entry.version]
                qualifier_rows.append(
                    (
                        race.id.hex,
                        version.id.hex,
                        self.miners[self.agents[version.agent].miner].hotkey,
                        entry.kind,
                        self._final_score(version),
                        _at(entry.entered),
                        entry.race_score,
                        entry.rank,
                        _at(entry.finished_at),
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

    def _race_work_rows(self, suite_id: int, results: _Results) -> list[tuple[Any, ...]]:
        """One work item per qualifier of a race whose qualifying closed (as ``close_qualifying``)."""
        rows = []
        for race in self.races:
            if race.draw_seed is None:
                continue
            for e in race.entries:
                entry = self.entries[e]
                rows.append(
                    (
                        entry.work_id.hex,
                        self.versions[entry.version].id.hex,
                        suite_id,
                        self.settings.race_required_successes,
                        entry.included,
                        results.active_by_entry.get(e, 0),
                        entry.closed_at is not None,
                        _at(race.started),
                        _at(entry.closed_at),
                        race.id.hex,
                        self.settings.race_max_attempts,
                        entry.failed,
                    )
                )
        return rows

    def _pins_now(self) -> list[tuple[Any, ...]]:
        rows = []
        for miner, history in sorted(self.pins.items()):
            made = [(at, v) for at, v in history if at <= self.now]
            if made:
                at, version = made[-1]
                rows.append((self.miners[miner].hotkey, self.versions[version].id.hex, _at(at)))
        return rows

    def _complete_stored_race(self, session: Session, race: _Race) -> None:
        """Complete a stored race at its hour and crown its winner through ``races.crown``."""
        table = Race.__table__
        session.execute(
            table.update().where(table.c.id == race.id).values(status=RaceStatus.RACE_COMPLETE.value)
        )
        if race.winner is None:
            return
        stored = session.get(Race, race.id)
        winner = session.get(RaceQualifier, (race.id, self.versions[self.entries[race.winner].version].id))
        assert stored is not None and winner is not None
        session.refresh(stored)
        races.crown(session, stored, winner, _at(race.ended) or BASE_TIME)

    def code(self, version: _Version) -> bytes:
        agent = self.agents[version.agent]
        return (
            f'"""{agent.name} v{version.number}: a demo shopping agent (generated; seed {self.seed})."""\n\n'
            f"SEARCH_DEPTH = {2 + version.number % 5}\n"
            f"TEMPERATURE = {round(0.1 + (version.index % 7) / 10, 1)}\n"
            f"VERSION = {str(version.id)!r}\n\n\n"
            "def solve(problem):\n"
            "    query = problem['query']\n"
            "    return {'answer': query, 'depth': SEARCH_DEPTH}\n"
        ).encode()

    def code_artifacts(self) -> Iterable[tuple[str, bytes]]:
        for version in self.versions:
            code = self.code(version)
            yield f"agents/{hashlib.sha256(code).hexdigest()}.py", code


def _spans(total: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(total, start + step)


def _service_versions(release: int) -> dict[str, str]:
    return {"validator": ("2.3.4", "2.4.0")[release], "sandbox": ("0.9.1", "0.10.0")[release]}


# --- per-problem results -----------------------------------------------------------------------------


def _difficulties(rng: random.Random) -> list[float]:
    """Logit difficulty per problem in suite order; two problems nobody solves, one everybody does."""
    offsets = {"Product": -0.2, "Shop": 0.3, "Voucher": 0.1}
    out = []
    for category, items in _SUITE.items():
        for _query, difficulty in items:
            out.append(offsets[category] + (-0.6 if difficulty == "easy" else 0.6) + rng.gauss(0, 0.4))
    out[9] = 6.0  # a dead problem: medium Product
    out[27] = 6.0  # a dead problem: medium Voucher
    out[10] = -6.0  # a giveaway: easy Shop
    return out


@dataclass
class _Results:
    status: np.ndarray  # per run, final status code
    pstatus: np.ndarray  # runs x problems
    score: np.ndarray  # NaN where absent
    reasoning: np.ndarray
    exec_time: np.ndarray
    inf_total: np.ndarray  # -1 where absent
    inf_fail: np.ndarray
    updated: np.ndarray  # datetime64[us]
    validator_score: np.ndarray  # NaN unless the run succeeded
    included_by_version: dict[int, list[int]]  # qualifying runs
    active_by_version: dict[int, int]  # qualifying runs
    active_by_entry: dict[int, int]  # race runs
    slots: np.ndarray  # runs x problem slots: the problem's position in the suite
    present: np.ndarray  # runs x problem slots: whether the run has that problem
    completed: np.ndarray  # NaN while active
    last_hb: np.ndarray  # NaN: none
    lease: np.ndarray

    @classmethod
    def build(cls, world: _World, gen: np.random.Generator) -> _Results:
        runs, n, now = world.runs, len(world.runs), world.now
        claimed = np.array(runs.claimed)
        status = np.array(runs.status)
        kind = np.array(runs.kind)
        active = status == -1
        status = np.where(active, S_RUNNING, status)
        first_hb = np.array(runs.first_hb)
        crash = np.array(runs.crash)
        # Seconds after the claim that the run stopped making progress.
        stopped = np.minimum(np.array(runs.stopped), now) - claimed
        stopped = np.minimum(stopped, crash)
        status = np.where(active & (stopped < first_hb), S_CLAIMED, status)

        overhead = np.array(runs.overhead)
        idx = np.arange(n)
        slots, present = world.slots(idx)
        weights = np.where(present, world.time_weights[:n], 0.0)
        times = weights / weights.sum(axis=1, keepdims=True) * np.array(runs.work)[:, None]
        ends = overhead[:, None] + np.cumsum(times, axis=1)
        starts = ends - times

        # Which problem was in progress when the run stopped, and how it ended.
        finished = status == S_SUCCESS
        done = (ends <= stopped[:, None]) | finished[:, None]
        current = np.where(done.all(axis=1), PROBLEMS, np.argmin(done, axis=1))
        hung = np.array(runs.hung)
        timed_out = status == S_TIMED_OUT
        designated = timed_out & (hung >= 0)
        k_designated = np.minimum(hung, np.maximum(0, (starts < world.limit - 30).sum(axis=1) - 1))
        current = np.where(designated, k_designated, current)
        broken = kind == K_BROKEN
        current = np.where(broken & (status == S_FAILED), 0, current)
        current = np.where(status == S_CLAIMED, 0, current)  # nothing reported before the first heartbeat
        cols = np.arange(PROBLEMS)[None, :]
        done = cols < current[:, None]

        # Problem outcomes where the agent ran to the end of a problem.
        outcome = _outcomes(world.outcome_draw[:n])
        pstatus = np.where(done, outcome, PENDING)
        at_current = cols == current[:, None]
        terminal = np.isin(status, (S_FAILED, S_TIMED_OUT))
        pstatus = np.where(at_current & (status == S_FAILED)[:, None], P_FAILED, pstatus)
        pstatus = np.where(at_current & timed_out[:, None], P_TIMED_OUT, pstatus)
        pstatus = np.where(at_current & ~terminal[:, None] & (status != S_CLAIMED)[:, None], RUNNING, pstatus)
        pstatus = np.where((cols > current[:, None]) & terminal[:, None], SKIPPED, pstatus)
        pstatus = np.where(present, pstatus, ABSENT)

        # Scores: successful runs were scored as they ended; the others from the same draws.
        score = world.problem_scores(idx, slots, pstatus)
        succeeded = status == S_SUCCESS
        score[succeeded] = world.scores[:n][succeeded]
        reasoning = np.where(
            pstatus == P_SUCCESS,
            np.round(np.clip(score + gen.normal(0, 0.08, (n, PROBLEMS)), 0, 1), 4),
            np.nan,
        )

        # Timings and inference counts.
        scored = np.isin(pstatus, (P_SUCCESS, P_FAILED, P_TIMED_OUT))
        stop_at = np.where(designated, world.limit, stopped)
        cut_time = np.maximum(stop_at[:, None] - starts, 1.0)
        exec_time = np.where(done, times, np.where(at_current & scored, cut_time, np.nan))
        exec_time = np.round(exec_time, 3)
        inf_total = np.where(scored, 3 + gen.poisson(np.clip(times / 8, 1, 60)), -1)
        inf_fail = np.where(scored, gen.binomial(np.maximum(inf_total, 0), 0.03), -1)
        completed = np.where(active, np.nan, np.array(runs.end))
        updated = np.where(
            done,
            claimed[:, None] + ends,
            np.where(
                at_current & scored,
                claimed[:, None] + stop_at[:, None],
                np.where(pstatus == RUNNING, claimed[:, None] + starts, np.nan),
            ),
        )
        updated = np.where(pstatus == SKIPPED, completed[:, None], updated)
        pending_at = claimed + np.minimum(overhead, np.maximum(stopped, 0))
        updated = np.where(np.isnan(updated), pending_at[:, None], updated)

        # Heartbeats and leases.
        beats = np.where(
            stopped >= first_hb,
            first_hb + np.floor((stopped - first_hb) / world.heartbeat) * world.heartbeat,
            np.nan,
        )
        last_hb = claimed + beats
        lease = np.where(np.isnan(last_hb), claimed, last_hb) + world.lease

        included: dict[int, list[int]] = {}
        active_by_version: dict[int, int] = {}
        active_by_entry: dict[int, int] = {}
        for i in range(n):
            entry = runs.entry[i]
            if status[i] == S_SUCCESS and entry < 0:
                included.setdefault(runs.version[i], []).append(i)
            elif status[i] in (S_CLAIMED, S_RUNNING):
                active = active_by_entry if entry >= 0 else active_by_version
                key = entry if entry >= 0 else runs.version[i]
                active[key] = active.get(key, 0) + 1
        return cls(
            status=status,
            pstatus=pstatus,
            score=score,
            reasoning=reasoning,
            exec_time=exec_time,
            inf_total=inf_total,
            inf_fail=inf_fail,
            updated=_times(updated),
            validator_score=np.where(succeeded, world.run_score[:n], np.nan),
            included_by_version=included,
            active_by_version=active_by_version,
            active_by_entry=active_by_entry,
            slots=slots,
            present=present,
            completed=completed,
            last_hb=last_hb,
            lease=lease,
        )

    def run_columns(self, world: _World, suite_id: int, start: int, stop: int) -> dict[str, Any]:
        """The runs ``start:stop`` as columns (in the forms ``_Writer.columns`` takes)."""
        runs, at = world.runs, slice(start, stop)
        status = self.status[at]
        terminal = np.isin(status, (S_SUCCESS, S_FAILED, S_TIMED_OUT))
        failures = {
            S_FAILED: "sandbox exited with code 137 (out of memory)",
            S_TIMED_OUT: f"evaluation exceeded the {int(world.limit)} s limit",
            S_STALE: "lease expired without a heartbeat",
            S_CANCELLED: "agent version was cancelled",
        }
        crashed = "agent crashed on import: ModuleNotFoundError: No module named 'playwright_stealth'"
        reasons = [
            crashed if s == S_FAILED and k == K_BROKEN else failures.get(s)
            for s, k in zip(status.tolist(), runs.kind[at], strict=True)
        ]
        score = self.validator_score[at]
        succeeded = (self.pstatus[at] == P_SUCCESS).sum(axis=1)
        problems = self.present[at].sum(axis=1)
        components = [
            None if x != x else {"mean_problem_score": round(x, 6), "problems_succeeded": k, "problems": p}
            for x, k, p in zip(score.tolist(), succeeded.tolist(), problems.tolist(), strict=True)
        ]
        # As complete_run does: sums over the reported problems of a finished run.
        counted = self.inf_total[at] >= 0
        reported = terminal & counted.any(axis=1)

        def inference(values: np.ndarray) -> np.ndarray:
            return np.where(reported, np.where(counted, values[at], 0).sum(axis=1), np.nan)

        releases = [_service_versions(release) for release in (0, 1)]
        sandboxes = [
            {"image": f"oro-sandbox:{versions['sandbox']}", "cpus": 4, "memory_mb": 8192}
            for versions in releases
        ]
        versions = [world.versions[v] for v in runs.version[at]]
        return {
            "id": _uuid_bytes(runs.id[at]),
            "work_item_id": _uuid_bytes(
                v.work_id if e < 0 else world.entries[e].work_id
                for v, e in zip(versions, runs.entry[at], strict=True)
            ),
            "agent_version_id": _uuid_bytes(v.id for v in versions),
            "validator_hotkey": [world.validators[v].hotkey for v in runs.validator[at]],
            "suite_id": [suite_id] * (stop - start),
            "status": np.asarray(RUN_STATUSES, dtype=object)[status].tolist(),
            "claimed_at": _times(np.array(runs.claimed[at])),
            "lease_expires_at": _times(self.lease[at]),
            "last_heartbeat_at": _times(self.last_hb[at]),
            "completed_at": _times(self.completed[at]),
            "validator_score": score,
            "score_components": components,
            "failure_reason": reasons,
            "sandbox_metadata": [
                sandboxes[r] if t else None for r, t in zip(runs.service[at], terminal.tolist(), strict=True)
            ],
            "service_versions": [releases[r] for r in runs.service[at]],
            "is_included": (status == S_SUCCESS)
            & ~np.isin(np.arange(start, stop), sorted(world.late_successes)),
            "race_id": [None if e < 0 else world.races[world.entries[e].race].id.hex for e in runs.entry[at]],
            "inference_failure_count": inference(self.inf_fail),
            "inference_total": inference(self.inf_total),
        }

    def problem_columns(
        self, world: _World, problem_ids: np.ndarray, start: int, stop: int
    ) -> dict[str, Any]:
        """The problem results of runs ``start:stop`` as columns (in the forms ``_Writer.columns`` takes).

        Ids are UUIDv7 from the run's claim time, so rows arrive in index order (much faster to load).
        """
        present = self.present[start:stop]
        per_run = present.sum(axis=1)
        n = int(per_run.sum())
        claimed_ms = np.repeat(np.array(world.runs.claimed[start:stop]) * 1000, per_run).astype(np.int64)

        def rows(values: np.ndarray) -> np.ndarray:
            return values[start:stop][present]

        def counts(values: np.ndarray) -> np.ndarray:
            return np.where(rows(values) < 0, np.nan, rows(values))

        return {
            "id": _uuid7(claimed_ms, np.random.default_rng([world.seed, 7, start])),
            "run_id": np.repeat(_uuid_bytes(world.runs.id[start:stop]), per_run, axis=0),
            "problem_id": problem_ids[self.slots[start:stop][present]],
            "status": np.asarray(_STATUS_NAMES, dtype=object)[rows(self.pstatus)].tolist(),
            "score": rows(self.score),
            "reasoning_score": rows(self.reasoning),
            "score_components": [None] * n,
            "logs_key": [None] * n,
            "execution_time": rows(self.exec_time),
            "inference_failure_count": counts(self.inf_fail),
            "inference_total": counts(self.inf_total),
            "updated_at": rows(self.updated),
        }


def _outcomes(draw: np.ndarray) -> np.ndarray:
    """How each problem a run reached ended, from its uniform draw."""
    return np.where(
        draw < PROBLEM_FAILED_RATE,
        P_FAILED,
        np.where(draw < PROBLEM_FAILED_RATE + PROBLEM_TIMEOUT_RATE, P_TIMED_OUT, P_SUCCESS),
    )


def _uuid7(unix_ms: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """UUIDv7 (RFC 9562) as rows of 16 bytes: 48-bit Unix milliseconds, then random bits."""
    raw = gen.integers(0, 256, size=(len(unix_ms), 16), dtype=np.uint8)
    ms = (unix_ms + _BASE_MS).astype(np.uint64)
    for byte in range(6):
        raw[:, byte] = (ms >> np.uint64(8 * (5 - byte))) & np.uint64(0xFF)
    raw[:, 6] = 0x70 | (raw[:, 6] & 0x0F)
    raw[:, 8] = 0x80 | (raw[:, 8] & 0x3F)
    return raw


def _uuid_bytes(ids: Iterable[uuid.UUID]) -> np.ndarray:
    return np.frombuffer(b"".join(u.bytes for u in ids), dtype=np.uint8).reshape(-1, 16)


def _lenient(score: np.ndarray, eligible: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Raise each biased run's mean score by its bias, spread over its successful problems (water-filling
    under the cap of 1.0), so the run score moves by exactly the bias whenever there is headroom."""
    out = score.copy()
    rows = np.nonzero((bias > 0) & eligible.any(axis=1))[0]
    mask, biased = eligible[rows], score[rows]
    need = bias[rows] * (~np.isnan(biased)).sum(axis=1)
    head = np.where(mask, 1.0 - biased, 0.0)
    lo, hi = np.zeros(len(rows)), np.ones(len(rows))
    for _ in range(50):  # bisection on each run's water level
        mid = (lo + hi) / 2
        below = np.minimum(head, mid[:, None]).sum(axis=1) < need
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    full = (head.sum(axis=1) <= need)[:, None]  # no room for all of the bias: every problem to 1.0
    out[rows] = np.where(mask, np.where(full, 1.0, biased + np.minimum(head, hi[:, None])), biased)
    return out


def _at(seconds: float | None) -> datetime | None:
    """A time of the simulation (seconds after BASE_TIME) as a UTC datetime, to the microsecond."""
    if seconds is None or (isinstance(seconds, float) and (math.isnan(seconds) or math.isinf(seconds))):
        return None
    return BASE_TIME + timedelta(microseconds=round(seconds * 1_000_000))


def _times(seconds: np.ndarray) -> np.ndarray:
    """``_at`` for an array: datetime64[us] in UTC, NaT where the time is NaN or infinite."""
    finite = np.isfinite(seconds)
    micros = np.rint(np.where(finite, seconds, 0) * 1_000_000).astype(np.int64)
    return np.where(finite, _BASE_US + micros.astype("timedelta64[us]"), np.datetime64("NaT"))


_RUN_COLUMNS = (
    "id",
    "work_item_id",
    "agent_version_id",
    "validator_hotkey",
    "suite_id",
    "status",
    "claimed_at",
    "lease_expires_at",
    "last_heartbeat_at",
    "completed_at",
    "validator_score",
    "score_components",
    "failure_reason",
    "sandbox_metadata",
    "service_versions",
    "is_included",
    "inference_failure_count",
    "inference_total",
    "race_id",
)
_RESULT_COLUMNS = (
    "id",
    "run_id",
    "problem_id",
    "status",
    "score",
    "reasoning_score",
    "score_components",
    "logs_key",
    "execution_time",
    "inference_failure_count",
    "inference_total",
    "updated_at",
)
_STATE_COLUMNS = (
    "hotkey",
    "last_claim_at",
    "last_seen_at",
    "cpu_pct",
    "ram_pct",
    "disk_pct",
    "docker_container_count",
    "service_versions",
    "metrics_reported_at",
)


# --- bulk writes -------------------------------------------------------------------------------------


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # then no flags and no header extension
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


class _Writer:
    """Rows into a table: binary COPY on PostgreSQL, executemany on SQLite.

    A column is a sequence of plain values (None for NULL; UUIDs as 32 hex digits) or a numpy
    array: UUIDs as rows of 16 bytes, times as datetime64[us] (NaT for NULL), numbers as floats
    (NaN for NULL), booleans as booleans.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def rows(self, table: Table, names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        if not self.postgres:
            self._insert(table, names, rows)
            return
        columns = list(zip(*rows, strict=True)) or [() for _ in names]
        self.columns(table, names, [dict(zip(names, columns, strict=True))])

    def columns(self, table: Table, names: Sequence[str], batches: Iterable[dict[str, Any]]) -> None:
        """Rows given as batches of columns.

        On PostgreSQL all batches go through one COPY, so the server loads one batch while the
        next is being encoded.
        """
        kinds = [_pg_kind(table.c[c].type) for c in names]
        if not self.postgres:
            for data in batches:
                columns = [_plain(kind, data[c]) for kind, c in zip(kinds, names, strict=True)]
                self._insert(table, names, zip(*columns, strict=True))
            return
        with self._copy(table, names) as copy:
            for data in batches:
                copy.write(
                    _binary_rows([_binary(kind, data[c]) for kind, c in zip(kinds, names, strict=True)])
                )

    @contextmanager
    def foreign_keys_checked_once(self, *tables: Table) -> Iterator[None]:
        """On PostgreSQL, check the tables' foreign keys once after the load instead of once per row.

        The constraints are dropped and re-added (with their own definitions) in this transaction, as
        the PostgreSQL manual advises for bulk loads ("Populating a Database"); re-adding validates
        every row, so nothing unchecked is committed. SQLite checks rows as they come, cheaply.
        """
        if not self.postgres:
            yield
            return
        constraints = [
            (table.name, name, definition)
            for table in tables
            for name, definition in self.session.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = CAST(:table AS regclass) AND contype = 'f' ORDER BY conname"
                ),
                {"table": table.name},
            ).all()
        ]
        for table, name, _ in constraints:
            self.session.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
        yield
        for table, name, definition in constraints:
            self.session.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))

    @contextmanager
    def _copy(self, table: Table, columns: Sequence[str]) -> Iterator[Any]:
        self.session.flush()
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        # Binary: the server parses text timestamps, UUIDs and floats three times slower than it stores them.
        statement = f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN (FORMAT BINARY)'
        with raw.cursor() as cursor:
            # A worker thread sends while this one encodes the next batch (the server loads meanwhile).
            with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
                copy.write(_COPY_SIGNATURE)
                yield copy
                copy.write(_COPY_TRAILER)

    def _insert(self, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        uuids = {c for c in columns if isinstance(table.c[c].type, Uuid)}
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(
                {
                    c: uuid.UUID(hex=v) if c in uuids and v is not None else v
                    for c, v in zip(columns, row, strict=True)
                }
            )
            if len(batch) >= 5000:
                self.session.execute(insert(table), batch)
                batch = []
        if batch:
            self.session.execute(insert(table), batch)


def _pg_kind(column_type: Any) -> str:
    """The PostgreSQL type of a column without its length: how binary COPY encodes its values."""
    return column_type.compile(dialect=postgresql.dialect()).split("(")[0]


def _plain(kind: str, values: Sequence[Any] | np.ndarray) -> Sequence[Any]:
    """A column as plain values for executemany (see ``_Writer``)."""
    if not isinstance(values, np.ndarray):
        return values
    if kind == "UUID":
        text = values.tobytes().hex()
        return [text[i : i + 32] for i in range(0, len(text), 32)]
    if kind == "TIMESTAMP WITH TIME ZONE":
        return [None if t is None else t.replace(tzinfo=UTC) for t in values.astype(object)]
    if kind == "INTEGER":
        return [None if x != x else int(x) for x in values.tolist()]
    return [None if x != x else x for x in values.tolist()]


def _binary(kind: str, values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A column in the binary COPY format: each value's bytes (zero padded to a common width) and length
    (-1 for NULL)."""
    if kind in ("VARCHAR", "JSONB"):
        # Each distinct object is encoded once: columns repeat a few statuses, reasons and documents.
        ids = np.fromiter(map(id, values), dtype=np.int64, count=len(values))
        _, first, rows = np.unique(ids, return_index=True, return_inverse=True)
        encoded = [
            None if v is None else (b"\x01" + json.dumps(v).encode() if kind == "JSONB" else v.encode())
            for v in (values[i] for i in first)
        ]
        padded = np.array([b or b"" for b in encoded], dtype=bytes)
        lengths = np.array([-1 if b is None else len(b) for b in encoded], dtype=np.int32)
        return padded.view(np.uint8).reshape(len(encoded), padded.dtype.itemsize)[rows], lengths[rows]
    if kind == "UUID":
        if isinstance(values, np.ndarray):
            return values, np.full(len(values), 16, dtype=np.int32)
        null = np.array([v is None for v in values], dtype=bool)
        raw = bytes.fromhex("".join("0" * 32 if v is None else v for v in values))
        data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16)
        return data, np.where(null, -1, 16).astype(np.int32)
    if kind == "TIMESTAMP WITH TIME ZONE":
        if not isinstance(values, np.ndarray):
            values = np.array(
                [None if t is None else t.astimezone(UTC).replace(tzinfo=None) for t in values],
                dtype="datetime64[us]",
            )
        null = np.isnat(values)
        data = (values - _PG_EPOCH).astype(">i8")  # microseconds since 2000-01-01
    elif kind == "BOOLEAN":
        null = np.array([v is None for v in values], dtype=bool)
        data = np.asarray(values, dtype=bool)
    else:
        numbers = np.asarray(values, dtype=float)
        null = np.isnan(numbers)
        data = np.where(null, 0, numbers).astype({"FLOAT": ">f8", "INTEGER": ">i4"}[kind])  # FLOAT: double
    width = data.dtype.itemsize
    return data.view(np.uint8).reshape(len(data), width), np.where(null, -1, width).astype(np.int32)


def _binary_rows(columns: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Tuples in the binary COPY format from columns encoded by ``_binary``.

    Every row is laid out at the widest size of each field; a mask keeps the bytes each value uses.
    """
    n = len(columns[0][1])
    out = np.empty((n, 2 + sum(4 + data.shape[1] for data, _ in columns)), dtype=np.uint8)
    keep = np.empty(out.shape, dtype=bool)
    out[:, :2] = np.frombuffer(len(columns).to_bytes(2, "big"), dtype=np.uint8)
    keep[:, :2] = True
    at = 2
    for data, lengths in columns:
        width = 4 + data.shape[1]
        out[:, at : at + 4] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        out[:, at + 4 : at + width] = data
        if (lengths == data.shape[1]).all():
            keep[:, at : at + width] = True
        else:
            keep[:, at : at + width] = np.arange(width) < 4 + np.maximum(lengths, 0)[:, None]
        at += width
    return out[keep].tobytes()
