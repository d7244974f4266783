"""The numpy synthesis of per-problem results: statuses, scores, timings and inference counts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from oro_graph.demo.parameters import (
    ABSENT,
    BASE_MS,
    K_BROKEN,
    P_FAILED,
    P_SUCCESS,
    P_TIMED_OUT,
    PENDING,
    PROBLEM_FAILED_RATE,
    PROBLEM_STATUS_NAMES,
    PROBLEM_TIMEOUT_RATE,
    PROBLEMS,
    RUN_STATUSES,
    RUNNING,
    S_CANCELLED,
    S_CLAIMED,
    S_FAILED,
    S_RUNNING,
    S_STALE,
    S_SUCCESS,
    S_TIMED_OUT,
    SKIPPED,
    service_versions,
    to_datetimes,
)

if TYPE_CHECKING:
    from oro_graph.demo.world import World


def problem_slots(world: World, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the suite position of each problem slot and whether the run has that slot: a race
    run evaluates only its race's drawn problems, in draw order."""
    slots = np.tile(np.arange(PROBLEMS), (len(idx), 1))
    present = np.ones((len(idx), PROBLEMS), dtype=bool)
    for row, run in enumerate(idx.tolist()):
        e = world.runs.entry[run]
        if e >= 0:
            drawn = world.races[world.entries[e].race].drawn
            slots[row, : len(drawn)] = drawn
            present[row, len(drawn) :] = False
    return slots, present


def problem_scores(world: World, idx: np.ndarray, slots: np.ndarray, pstatus: np.ndarray) -> np.ndarray:
    """Problem scores of runs ``idx``: agent skill against problem difficulty, with run-level and
    problem-level noise, 0 for a failed or timed-out problem, the biased validator's lenience."""
    skill = np.array([world.versions[world.runs.version[i]].skill for i in idx.tolist()])
    logit = (
        1.6 * (skill[:, None] - world.difficulty[slots] + world.run_noise[idx][:, None])
        + world.problem_noise[idx]
    )
    quality = 1.0 / (1.0 + np.exp(-logit))
    score = np.where(
        pstatus == P_SUCCESS, quality, np.where(np.isin(pstatus, (P_FAILED, P_TIMED_OUT)), 0.0, np.nan)
    )
    bias = np.array([world.validators[world.runs.validator[i]].bias for i in idx.tolist()])
    return np.round(lenient(score, pstatus == P_SUCCESS, bias), 4)


def score_new_runs(world: World) -> None:
    """Score the successful runs that ended since the last call."""
    if not world.unscored:
        return
    idx = np.array(world.unscored)
    world.unscored = []
    slots, present = problem_slots(world, idx)
    pstatus = np.where(present, outcomes(world.outcome_draw[idx]), ABSENT)
    scores = problem_scores(world, idx, slots, pstatus)
    world.scores[idx] = scores
    world.run_score[idx] = np.nanmean(scores, axis=1)


# per-problem results ------------------------------------------------------------------------------


@dataclass
class Results:
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
    def of(cls, world: World, gen: np.random.Generator) -> Results:
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
        slots, present = problem_slots(world, idx)
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
        outcome = outcomes(world.outcome_draw[:n])
        pstatus = np.where(done, outcome, PENDING)
        at_current = cols == current[:, None]
        terminal = np.isin(status, (S_FAILED, S_TIMED_OUT))
        pstatus = np.where(at_current & (status == S_FAILED)[:, None], P_FAILED, pstatus)
        pstatus = np.where(at_current & timed_out[:, None], P_TIMED_OUT, pstatus)
        pstatus = np.where(at_current & ~terminal[:, None] & (status != S_CLAIMED)[:, None], RUNNING, pstatus)
        pstatus = np.where((cols > current[:, None]) & terminal[:, None], SKIPPED, pstatus)
        pstatus = np.where(present, pstatus, ABSENT)

        # Scores: successful runs were scored as they ended; the others from the same draws.
        score = problem_scores(world, idx, slots, pstatus)
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
            updated=to_datetimes(updated),
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

    def run_columns(self, world: World, suite_id: int, start: int, stop: int) -> dict[str, Any]:
        """The runs ``start:stop`` as columns (in the forms ``BulkWriter.columns`` takes)."""
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

        releases = [service_versions(release) for release in (0, 1)]
        sandboxes = [
            {"image": f"oro-sandbox:{versions['sandbox']}", "cpus": 4, "memory_mb": 8192}
            for versions in releases
        ]
        versions = [world.versions[v] for v in runs.version[at]]
        return {
            "id": uuid_bytes(runs.id[at]),
            "work_item_id": uuid_bytes(
                v.work_id if e < 0 else world.entries[e].work_id
                for v, e in zip(versions, runs.entry[at], strict=True)
            ),
            "agent_version_id": uuid_bytes(v.id for v in versions),
            "validator_hotkey": [world.validators[v].hotkey for v in runs.validator[at]],
            "suite_id": [suite_id] * (stop - start),
            "status": np.asarray(RUN_STATUSES, dtype=object)[status].tolist(),
            "claimed_at": to_datetimes(np.array(runs.claimed[at])),
            "lease_expires_at": to_datetimes(self.lease[at]),
            "last_heartbeat_at": to_datetimes(self.last_hb[at]),
            "completed_at": to_datetimes(self.completed[at]),
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

    def problem_columns(self, world: World, problem_ids: np.ndarray, start: int, stop: int) -> dict[str, Any]:
        """The problem results of runs ``start:stop`` as columns (in the forms ``BulkWriter.columns`` takes).

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
            "id": uuid7_rows(claimed_ms, np.random.default_rng([world.seed, 7, start])),
            "run_id": np.repeat(uuid_bytes(world.runs.id[start:stop]), per_run, axis=0),
            "problem_id": problem_ids[self.slots[start:stop][present]],
            "status": np.asarray(PROBLEM_STATUS_NAMES, dtype=object)[rows(self.pstatus)].tolist(),
            "score": rows(self.score),
            "reasoning_score": rows(self.reasoning),
            "score_components": [None] * n,
            "logs_key": [None] * n,
            "execution_time": rows(self.exec_time),
            "inference_failure_count": counts(self.inf_fail),
            "inference_total": counts(self.inf_total),
            "updated_at": rows(self.updated),
        }


def outcomes(draw: np.ndarray) -> np.ndarray:
    """How each problem a run reached ended, from its uniform draw."""
    return np.where(
        draw < PROBLEM_FAILED_RATE,
        P_FAILED,
        np.where(draw < PROBLEM_FAILED_RATE + PROBLEM_TIMEOUT_RATE, P_TIMED_OUT, P_SUCCESS),
    )


def uuid7_rows(unix_ms: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """UUIDv7 (RFC 9562) as rows of 16 bytes: 48-bit Unix milliseconds, then random bits."""
    raw = gen.integers(0, 256, size=(len(unix_ms), 16), dtype=np.uint8)
    ms = (unix_ms + BASE_MS).astype(np.uint64)
    for byte in range(6):
        raw[:, byte] = (ms >> np.uint64(8 * (5 - byte))) & np.uint64(0xFF)
    raw[:, 6] = 0x70 | (raw[:, 6] & 0x0F)
    raw[:, 8] = 0x80 | (raw[:, 8] & 0x3F)
    return raw


def uuid_bytes(ids: Iterable[uuid.UUID]) -> np.ndarray:
    return np.frombuffer(b"".join(u.bytes for u in ids), dtype=np.uint8).reshape(-1, 16)


def lenient(score: np.ndarray, eligible: np.ndarray, bias: np.ndarray) -> np.ndarray:
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
