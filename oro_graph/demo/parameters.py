"""The demo world's parameters (the planted faults among them), status codes and clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np

BASE_TIME = datetime(2026, 10, 1, tzinfo=UTC)
BASE_MS = int(BASE_TIME.timestamp() * 1000)
BASE_US = np.datetime64(BASE_TIME.replace(tzinfo=None), "us")
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

PROBLEM_STATUS_NAMES = ("PENDING", "RUNNING", "SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED")
PENDING, RUNNING, P_SUCCESS, P_FAILED, P_TIMED_OUT, SKIPPED = range(6)
ABSENT = 6  # a problem slot a race run does not have (it evaluates only the drawn problems)

# Run outcomes decided at claim time.
K_SUCCESS, K_FAILED, K_BROKEN, K_TIMEOUT, K_STALE = range(5)
# Run statuses at the end of the simulation.
RUN_STATUSES = ("SUCCESS", "FAILED", "TIMED_OUT", "STALE", "CANCELLED", "CLAIMED", "RUNNING")
S_SUCCESS, S_FAILED, S_TIMED_OUT, S_STALE, S_CANCELLED, S_CLAIMED, S_RUNNING = range(7)

E_SUBMIT, E_READY, E_END, E_CANCEL, E_BURST, E_RACE = range(6)
R_OPEN, R_CLOSE, R_DEADLINE = range(3)

Progress = Callable[[int, int], None]


class ProgressReport:
    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def advance(self, step: int) -> None:
        step = min(step, self.total - self.done)
        if self.callback is not None and step > 0:
            self.done += step
            self.callback(step, self.total)

    def finish(self) -> None:
        self.advance(self.total - self.done)


def to_datetime(seconds: float | None) -> datetime | None:
    """A time of the simulation (seconds after BASE_TIME) as a UTC datetime, to the microsecond."""
    if seconds is None or (isinstance(seconds, float) and (math.isnan(seconds) or math.isinf(seconds))):
        return None
    return BASE_TIME + timedelta(microseconds=round(seconds * 1_000_000))


def to_datetimes(seconds: np.ndarray) -> np.ndarray:
    """``_at`` for an array: datetime64[us] in UTC, NaT where the time is NaN or infinite."""
    finite = np.isfinite(seconds)
    micros = np.rint(np.where(finite, seconds, 0) * 1_000_000).astype(np.int64)
    return np.where(finite, BASE_US + micros.astype("timedelta64[us]"), np.datetime64("NaT"))


def spans(total: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(total, start + step)


def service_versions(release: int) -> dict[str, str]:
    return {"validator": ("2.3.4", "2.4.0")[release], "sandbox": ("0.9.1", "0.10.0")[release]}
