"""A seeded simulation of a validator population, for the flag rules and the plots; the graph
served over a test's database, with the analytics client to it (the frames' tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from oro_graph.analytics.client import Client
from oro_graph.app import create_app
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.support.threadserver import loopback_socket, served

RUN_STATUSES = ["CLAIMED", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "STALE", "CANCELLED"]
RESULT_STATUSES = ["PENDING", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED"]
CATEGORIES = ["Product", "Shop", "Voucher"]
DIFFICULTIES = ["easy", "medium"]
START = pd.Timestamp("2025-01-01", tz="UTC")


@dataclass(frozen=True)
class Population:
    runs: pd.DataFrame
    results: pd.DataFrame
    planted: dict[str, str]  # hotkey -> "biased" | "stale" | "slow"


def simulate_population(
    seed: int,
    *,
    n_validators: int = 20,
    n_versions: int = 800,
    validators_per_version: int = 4,
    n_problems: int = 30,
    slow_duration: float = 2.5,
    slow_run_timeout: float = 0.15,
    slow_problem_timeout: float = 0.25,
) -> Population:
    """Normal validators plus one biased (+0.05), one stale (20% of leases) and one slow one.

    Normal: run-score noise sd 0.02-0.03 and a tiny personal offset (sd 0.005), 2.5% stale runs,
    1% timed-out runs, 5% of problems timed out, log-normal durations around 15 minutes. Slow:
    ``slow_duration`` x longer runs, ``slow_run_timeout`` of runs and ``slow_problem_timeout`` of
    problems timed out.
    """
    rng = np.random.default_rng(seed)
    hotkeys = np.array([f"5Val{i:02d}" for i in range(n_validators)])
    biased, stale, slow = rng.choice(n_validators, size=3, replace=False)
    planted = {str(hotkeys[biased]): "biased", str(hotkeys[stale]): "stale", str(hotkeys[slow]): "slow"}

    # Each version is run by a random subset of validators.
    picks = np.argsort(rng.random((n_versions, n_validators)), axis=1)[:, :validators_per_version]
    validator = picks.ravel()
    version = np.repeat(np.arange(n_versions), validators_per_version)
    n_runs = validator.size
    quality = rng.uniform(0.2, 0.8, n_versions)

    p_stale = np.where(validator == stale, 0.20, 0.025)
    p_timeout = np.where(validator == slow, slow_run_timeout, 0.01)
    u = rng.random(n_runs)
    status = np.select(
        [u < p_stale, u < p_stale + 0.02, u < p_stale + 0.02 + p_timeout, u < p_stale + 0.025 + p_timeout],
        ["STALE", "FAILED", "TIMED_OUT", "CANCELLED"],
        "SUCCESS",
    )
    noise_sd = rng.uniform(0.02, 0.03, n_validators)
    offset = rng.normal(0, 0.005, n_validators)
    offset[biased] = 0.05
    score = np.clip(quality[version] + offset[validator] + rng.normal(0, noise_sd[validator]), 0, 1)
    success = status == "SUCCESS"

    claimed = START + pd.to_timedelta(rng.uniform(0, 21 * 86400, n_runs), unit="s")
    seconds = rng.lognormal(np.log(900), 0.35, n_runs) * np.where(validator == slow, slow_duration, 1.0)
    finished = np.isin(status, ["SUCCESS", "FAILED", "TIMED_OUT"])
    completed = pd.Series(claimed + pd.to_timedelta(seconds, unit="s")).where(finished)
    alive = seconds * np.where(finished, 0.98, rng.uniform(0.1, 0.6, n_runs))
    heartbeat = pd.Series(claimed + pd.to_timedelta(alive, unit="s")).where(rng.random(n_runs) > 0.03)
    runs = pd.DataFrame(
        {
            "run_id": np.arange(n_runs),
            "agent_version_id": pd.Series(version).map("ver-{:04d}".format),
            "validator_hotkey": hotkeys[validator],
            "suite_id": 1,
            "status": pd.Categorical(status, categories=RUN_STATUSES),
            "claimed_at": claimed,
            "completed_at": completed,
            "last_heartbeat_at": heartbeat,
            "lease_expires_at": heartbeat.fillna(pd.Series(claimed)) + pd.Timedelta(minutes=10),
            "validator_score": pd.array(np.where(success, score, np.nan), dtype="Float64"),
            "is_included": success,
        }
    )

    # Per-problem results of runs that got as far as scoring problems.
    scored = np.flatnonzero(finished)
    run_idx = np.repeat(scored, n_problems)
    problem = np.tile(np.arange(n_problems), scored.size)
    p_problem_timeout = np.where(validator[run_idx] == slow, slow_problem_timeout, 0.05)
    timed_out = rng.random(run_idx.size) < p_problem_timeout
    ease = np.linspace(-0.3, 0.3, n_problems)[problem]
    problem_score = np.clip(quality[version[run_idx]] + ease + rng.normal(0, 0.1, run_idx.size), 0, 1)
    results = pd.DataFrame(
        {
            "run_id": run_idx,
            "agent_version_id": runs["agent_version_id"].to_numpy()[run_idx],
            "validator_hotkey": hotkeys[validator[run_idx]],
            "problem_id": problem,
            "category": pd.Categorical(np.array(CATEGORIES)[problem % 3], categories=CATEGORIES),
            "difficulty": pd.Categorical(np.array(DIFFICULTIES)[(problem // 3) % 2], categories=DIFFICULTIES),
            "status": pd.Categorical(np.where(timed_out, "TIMED_OUT", "SUCCESS"), categories=RESULT_STATUSES),
            "score": pd.array(np.where(timed_out, np.nan, problem_score), dtype="Float64"),
            "execution_time": rng.lognormal(np.log(30), 0.4, run_idx.size),
        }
    )
    return Population(runs=runs, results=results, planted=planted)


@pytest.fixture
def population() -> Callable[..., Population]:
    return simulate_population


@contextmanager
def serve_graph(runtime: Runtime) -> Iterator[str]:
    """/graphql of the app served by uvicorn in a thread over ``runtime``'s database (no lease sweep)."""
    sock, base = loopback_socket()
    values = {
        **runtime.settings.model_dump(),
        "public_base_url": base,
        "rate_limit_per_minute": 100_000,
        "lease_sweep_seconds": 3600.0,  # the demo's in-flight runs must not turn STALE mid-test
    }
    rt = Runtime.build(Settings(**values), db=runtime.db)
    with served(create_app(rt.settings, runtime=rt, migrate=False), sock):
        yield f"{base}/graphql"


@pytest.fixture
def graph_url(runtime: Runtime) -> Iterator[str]:
    with serve_graph(runtime) as url:
        yield url


@pytest.fixture
def client(graph_url: str) -> Iterator[Client]:
    with Client(graph_url, retries=0) as c:
        yield c
