"""Two real server processes on one PostgreSQL database, both running the race scheduler on a fast
tick: exactly one race opens per cycle, and race work claimed at once through both servers by many
validators is never handed out twice (issue 12, "Done when")."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from oro_graph.models import Role
from tests.factories import World, make_eligible, make_suite, register
from tests.hardening.support import ServerProcess, assert_invariants, signed, start_servers

QUALIFYING_SECONDS = 3.0
MINERS = 6
VALIDATORS = 8
REQUIRED = 2  # race runs per qualifier (X of Y = 2 of 3)

# About 20 s on two busy cores: under the 30 s that calls for `slow`.
pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def scheduled(
    runtime: Any, database_url: str, process_redis: str, tmp_path: Path
) -> Iterator[tuple[list[ServerProcess], dict[str, str]]]:
    # given: six miners with an eligible version each, eight validators
    suite = make_suite(runtime, problems=6)
    validators = {
        register(runtime, f"validator{i}", Role.VALIDATOR): f"validator{i}" for i in range(VALIDATORS)
    }
    miners = [register(runtime, f"miner{i}") for i in range(MINERS)]
    world = World(suite, miners, list(validators))
    for i, miner in enumerate(miners):
        make_eligible(
            runtime, world, miner, f"agent{i}", [0.5 + i / 20] * runtime.settings.required_successes
        )
    env = {
        "ORO_DATABASE_URL": database_url,
        "ORO_REDIS_URL": process_redis,
        "ORO_SECRET_KEY": "hardening",
        "ORO_DATA_DIR": str(tmp_path / "state"),
        "ORO_RATE_LIMIT_PER_MINUTE": "1000000",
        "ORO_WRITE_RATE_LIMIT": "1000000/minute",
        "ORO_RACE_SCHEDULER": "true",
        "ORO_RACE_SCHEDULER_SECONDS": "0.1",
        "ORO_RACE_QUALIFYING_HOURS": str(QUALIFYING_SECONDS / 3600),
        "ORO_RACE_MAX_HOURS": "1",
        "ORO_RACE_INTERVAL_HOURS": "0",  # the next race opens as soon as one completes
        "ORO_RACE_PROBLEMS": "3",
        "ORO_RACE_REQUIRED_SUCCESSES": str(REQUIRED),
        "ORO_RACE_MAX_ATTEMPTS": "3",
    }
    running = start_servers(2, env, tmp_path)
    try:
        yield running, validators
    finally:
        for server in running:
            server.stop()
    for server in running:
        assert server.tracebacks() == [], server.log()[-3000:]


def _races(runtime: Any) -> list[tuple[int, str]]:
    with runtime.db.engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(text("SELECT race_number, status FROM race ORDER BY race_number"))
        ]


def _watch(
    runtime: Any, until: Callable[[list[tuple[int, str]]], bool], timeout: float
) -> list[tuple[int, str]]:
    """Poll the races until ``until`` holds; at every look, at most one race is live."""
    deadline = time.monotonic() + timeout
    while True:
        races = _races(runtime)
        live = [n for n, status in races if status in ("QUALIFYING_OPEN", "RACE_RUNNING")]
        assert len(live) <= 1, races
        if until(races):
            return races
        assert time.monotonic() < deadline, races
        time.sleep(0.05)


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def _post(server: ServerProcess, path: str, signer: str, body: Any = None) -> httpx.Response:
    return httpx.post(server.base_url + path, headers=signed(signer), json=body, timeout=30)


def test_two_servers_open_one_race_a_cycle_and_never_double_assign_race_work(
    runtime: Any, scheduled: tuple[list[ServerProcess], dict[str, str]]
) -> None:
    servers, names = scheduled  # validators' names (they sign) by hotkey

    # when: both schedulers tick; qualifying opens, then closes by itself
    _watch(runtime, lambda races: bool(races), timeout=120)
    races = _watch(runtime, lambda races: races[-1][1] == "RACE_RUNNING", timeout=QUALIFYING_SECONDS + 120)
    assert races == [(1, "RACE_RUNNING")]

    # and every validator claims through both servers at once, round after round, completing what it got
    claimed: list[dict[str, Any]] = []
    for _ in range(6):
        answers = _at_once(
            [
                lambda s=s, v=v: _post(s, "/v1/validator/work/claim", v, {"cpu_pct": 10.0})
                for v in names.values()
                for s in servers
            ]
        )
        got = [a.json() for a in answers if a.status_code == 200]
        refused = Counter((a.status_code, a.json().get("error_code") if a.content else None) for a in answers)
        assert set(refused) <= {(200, None), (204, None), (409, "AT_CAPACITY")}, refused
        if not got:
            break
        claimed.extend(got)
        assert_invariants(runtime.db)  # no work item over its required successes, no validator over capacity
        with runtime.db.engine.connect() as conn:
            claimed_by = (
                "SELECT CAST(id AS TEXT), validator_hotkey FROM evaluationrun WHERE status = 'CLAIMED'"
            )
            owners = {run: names[hotkey] for run, hotkey in conn.execute(text(claimed_by)).all()}
        for claim in got:
            answer = _post(
                servers[0],
                f"/v1/validator/evaluation-runs/{claim['eval_run_id']}/complete",
                owners[claim["eval_run_id"]],
                {"terminal_status": "SUCCESS", "validator_score": 0.5},
            )
            assert answer.status_code == 200, answer.text

    # then: every claim was race work of race 1; each qualifier got exactly X runs, by X distinct validators
    with runtime.db.engine.connect() as conn:
        race_id, qualifiers = conn.execute(
            text("SELECT CAST(id AS TEXT), qualifier_count FROM race WHERE race_number = 1")
        ).one()
        runs = conn.execute(
            text(
                "SELECT CAST(work_item_id AS TEXT), validator_hotkey FROM evaluationrun "
                "WHERE race_id = CAST(:race AS UUID)"
            ),
            {"race": race_id},
        ).all()
    assert qualifiers == MINERS
    assert {c["race_id"] for c in claimed} == {race_id}
    assert len({c["eval_run_id"] for c in claimed}) == len(claimed) == len(runs) == MINERS * REQUIRED
    per_item = Counter(item for item, _ in runs)
    assert len(per_item) == MINERS and set(per_item.values()) == {REQUIRED}
    assert len(set(runs)) == len(runs)  # never one validator twice on one qualifier

    # and the race completed, after which exactly one next race opened
    races = _watch(runtime, lambda races: len(races) >= 2, timeout=120)
    time.sleep(1.0)  # ten more ticks of each scheduler
    races = _watch(runtime, lambda races: True, timeout=1)
    # (race 2's qualifying lasts QUALIFYING_SECONDS: a loaded machine may look after it closed; then
    # race 2 runs, with nobody to do its work, and no third race can open)
    assert races[0] == (1, "RACE_COMPLETE") and len(races) == 2, races
    assert races[1] in {(2, "QUALIFYING_OPEN"), (2, "RACE_RUNNING")}, races
    assert_invariants(runtime.db)
    with runtime.db.engine.connect() as conn:
        holder = conn.execute(text("SELECT holder FROM schedulerlease WHERE name = 'races'")).scalar_one()
    assert ":" in holder  # one process holds the lease
