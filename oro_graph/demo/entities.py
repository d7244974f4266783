"""The demo world's people, agents, versions, races and runs while the simulation runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from oro_graph.demo.parameters import PEER_STALE_RATE, PEER_TIMEOUT_RATE
from oro_graph.models import RaceStatus


@dataclass
class DemoValidator:
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
class DemoMiner:
    index: int
    hotkey: str
    name: str
    skill: float
    growth: float
    agents: list[int] = field(default_factory=list)


@dataclass
class DemoAgent:
    index: int
    miner: int
    name: str
    id: uuid.UUID
    versions: int = 0
    created_at: float | None = None


@dataclass
class DemoVersion:
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
class DemoRace:
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
class DemoEntry:
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


class DemoRuns:
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
