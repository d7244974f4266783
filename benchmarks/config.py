"""Sizes, durations, ports and addresses of one benchmark run, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_DIR = HERE / "peer"  # gitignored: node_modules of the peer live here
PEER_TEMPLATE = HERE / "peer_template"
SCHEMA_SDL = REPO / "schema.graphql"

PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# Several checkouts benchmarking on one machine: each its own database names and ports.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench")
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "18431"))


def dsn(database: str) -> str:
    """A libpq URL for one bench database (psycopg, PostGraphile)."""
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{database}"


def sqlalchemy_url(database: str) -> str:
    return dsn(database).replace("postgresql://", "postgresql+psycopg://", 1)


@dataclass(frozen=True)
class Size:
    """One dataset: what ``oro_graph.demo.generate`` is asked for."""

    name: str
    runs: int
    miners: int
    validators: int
    seed: int = 15
    named: str | None = None  # an existing database used as it is (``profile --database``)

    @property
    def database(self) -> str:
        return self.named or f"{DB_PREFIX}_{self.name}"


SIZES = {
    # large: 200k runs over about 5k versions and 30 validators (issue 6); miners set the version count.
    "small": Size("small", runs=1_000, miners=60, validators=12),
    "medium": Size("medium", runs=20_000, miners=500, validators=20),
    "large": Size("large", runs=200_000, miners=1_700, validators=30),
}
LOOP_DATABASE = f"{DB_PREFIX}_loop"  # the validator loop writes: it gets its own database, rebuilt each run


@dataclass(frozen=True)
class Plan:
    """What a run measures and for how long."""

    quick: bool
    warmup: float
    duration: float
    concurrency: int = 8
    primary: str = "small"  # dataset of workloads 1, 2, 4 and 6
    scale_sizes: tuple[str, ...] = ("small",)
    loop_validators: tuple[int, ...] = (1, 8, 32)
    loop_duration: float = 6.0
    paging_size: str = "small"
    paging_budget: float = 60.0  # seconds of walking before the walk stops and says where
    server_workers: int = 2
    ports: dict[str, int] = field(
        default_factory=lambda: {
            "ours": PORT_BASE,
            "ours_1w": PORT_BASE + 1,
            "peer": PORT_BASE + 2,
            "loop": PORT_BASE + 3,
            "scale": PORT_BASE + 4,
            "writes": PORT_BASE + 5,
        }
    )


def make_plan(quick: bool) -> Plan:
    if quick:
        return Plan(
            quick=True,
            warmup=1.5,
            duration=5.0,
            primary="small",
            scale_sizes=("small", "medium"),
            loop_duration=5.0,
            paging_size="small",
            paging_budget=30.0,
        )
    return Plan(
        quick=False,
        warmup=3.0,
        duration=15.0,
        primary="medium",
        scale_sizes=("small", "medium", "large"),
        loop_duration=12.0,
        paging_size="large",
        paging_budget=240.0,
    )
