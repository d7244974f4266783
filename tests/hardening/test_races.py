"""Races through REST against two server processes on PostgreSQL: claims, heartbeats, progress and
completions on the same rows at once, completion against lease expiry, and a server SIGKILLed
under load. After each, every lifecycle invariant counts zero, and nothing a client saw
acknowledged is missing."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from oro_graph.models import EvaluationRun, Problem, Role, RunStatus, utcnow
from tests.factories import keypair, make_suite, register, submit
from tests.hardening.support import ServerProcess, assert_invariants, signed, start_servers

# Seconds: short so expiry can be raced in real time, long enough that a loaded machine's slow claim
# and completion stay within it (4 s lapsed under load: a 409 where the test wanted its 200).
LEASE = 10

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]


@pytest.fixture
def servers(
    runtime: Any, database_url: str, process_redis: str, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    env = {
        "ORO_DATABASE_URL": database_url,
        "ORO_REDIS_URL": process_redis,
        "ORO_SECRET_KEY": "hardening",
        "ORO_DATA_DIR": str(tmp_path / "state"),
        "ORO_RATE_LIMIT_PER_MINUTE": "1000000",
        "ORO_WRITE_RATE_LIMIT": "1000000/minute",
        "ORO_REQUIRED_SUCCESSES": "2",
        "ORO_LEASE_SECONDS": str(LEASE),
        "ORO_LEASE_SWEEP_SECONDS": "0.5",
    }
    running = start_servers(2, env, tmp_path)
    try:
        yield running
    finally:
        for server in running:
            server.stop()
    for server in running:
        assert server.tracebacks() == [], server.log()[-3000:]


def world(runtime: Any, versions: int, validators: int) -> list[str]:
    make_suite(runtime)
    t0 = utcnow()
    for i in range(versions):
        submit(runtime, register(runtime, f"miner{i}"), f"agent{i}", now=t0 - timedelta(minutes=versions - i))
    return [f"validator{i}" for i in range(validators) if register(runtime, f"validator{i}", Role.VALIDATOR)]


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def post(server: ServerProcess, path: str, signer: str, body: Any = None) -> httpx.Response:
    return httpx.post(server.base_url + path, headers=signed(signer), json=body, timeout=30)


def test_many_validators_claiming_at_once_never_over_claim(
    runtime: Any, servers: list[ServerProcess]
) -> None:
    names = world(runtime, versions=6, validators=20)  # 12 slots for 20 claimers
    answers = at_once(
        [lambda i=i, n=n: post(servers[i % 2], "/v1/validator/work/claim", n) for i, n in enumerate(names)]
    )
    assert Counter(a.status_code for a in answers) == {200: 12, 204: 8}
    again = at_once(
        [lambda i=i, n=n: post(servers[i % 2], "/v1/validator/work/claim", n) for i, n in enumerate(names)]
    )
    codes = Counter((a.status_code, a.json().get("error_code") if a.content else None) for a in again)
    assert codes == {(409, "AT_CAPACITY"): 12, (204, None): 8}
    assert_invariants(runtime.db)


def test_heartbeats_progress_and_two_completions_on_one_run(
    runtime: Any, servers: list[ServerProcess]
) -> None:
    names = world(runtime, versions=1, validators=2)
    claimed = post(servers[0], "/v1/validator/work/claim", names[0]).json()
    run, problem = claimed["eval_run_id"], None
    with runtime.db.session() as session:
        problem = str(session.exec(select(Problem.id)).first())
    base = f"/v1/validator/evaluation-runs/{run}"
    calls: list[Callable[[], httpx.Response]] = []
    for i in range(6):
        calls.append(lambda i=i: post(servers[i % 2], f"{base}/heartbeat", names[0], {"cpu_pct": 10.0 + i}))
        calls.append(
            lambda i=i: post(
                servers[i % 2],
                f"{base}/progress",
                names[0],
                {"problems": [{"problem_id": problem, "status": "SUCCESS", "score": i / 10}]},
            )
        )
    scores = (0.25, 0.75)
    for i, score in enumerate(scores):
        calls.append(
            lambda i=i, score=score: post(
                servers[i],
                f"{base}/complete",
                names[0],
                {"terminal_status": "SUCCESS", "validator_score": score},
            )
        )
    answers = at_once(calls)
    completions = answers[-2:]
    assert sorted(a.status_code for a in completions) == [200, 409]
    winner = next(a for a in completions if a.status_code == 200)
    loser = next(a for a in completions if a.status_code == 409)
    assert loser.json()["error_code"] == "RUN_ALREADY_COMPLETE"
    for answer in answers[:-2]:
        assert answer.status_code == 200 or answer.json()["error_code"] == "RUN_ALREADY_COMPLETE", answer.text
    with runtime.db.session() as session:
        row = session.get(EvaluationRun, uuid.UUID(run))
        assert row is not None and row.status == RunStatus.SUCCESS and row.is_included
        assert row.validator_score == scores[completions.index(winner)]
    assert_invariants(runtime.db)


def test_the_last_two_successes_at_once_make_one_eligible_version_with_the_mean(
    runtime: Any, servers: list[ServerProcess]
) -> None:
    names = world(runtime, versions=1, validators=2)
    runs = [
        post(servers[i], "/v1/validator/work/claim", n).json()["eval_run_id"] for i, n in enumerate(names)
    ]
    answers = at_once(
        [
            lambda i=i: post(
                servers[i],
                f"/v1/validator/evaluation-runs/{runs[i]}/complete",
                names[i],
                {"terminal_status": "SUCCESS", "validator_score": (0.2, 0.6)[i]},
            )
            for i in range(2)
        ]
    )
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["agent_version_became_eligible"] for a in answers) == [False, True]
    final = next(a.json()["final_score"] for a in answers if a.json()["agent_version_became_eligible"])
    assert final == pytest.approx(0.4)
    top = httpx.get(servers[0].base_url + "/v1/public/top", timeout=10).json()
    assert top["top_score"] == pytest.approx(0.4)
    assert_invariants(runtime.db)


def test_completion_racing_lease_expiry_has_one_outcome(runtime: Any, servers: list[ServerProcess]) -> None:
    names = world(runtime, versions=3, validators=3)
    claims = [post(servers[i % 2], "/v1/validator/work/claim", n).json() for i, n in enumerate(names)]
    # well before (a loaded machine may take seconds to answer), at, and just after each lease runs out
    offsets = (-LEASE / 2, 0.0, 0.3)

    def complete_at(i: int) -> httpx.Response:
        expiry = datetime.fromisoformat(claims[i]["lease_expires_at"].replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, expiry + offsets[i] - time.time()))
        path = f"/v1/validator/evaluation-runs/{claims[i]['eval_run_id']}/complete"
        return post(servers[i % 2], path, names[i], {"terminal_status": "SUCCESS", "validator_score": 0.5})

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(complete_at, range(3)))
    time.sleep(1.0)  # let the sweeper pass
    with runtime.db.session() as session:
        for claim, answer in zip(claims, answers, strict=True):
            row = session.get(EvaluationRun, uuid.UUID(claim["eval_run_id"]))
            assert row is not None
            if answer.status_code == 200:
                assert row.status == RunStatus.SUCCESS and row.is_included
            else:
                # the run is over: the client's declared 409, which the validator's retry queue drops
                assert (answer.status_code, answer.json()["error_code"]) == (409, "RUN_ALREADY_COMPLETE")
                assert "lapsed" in answer.json()["detail"]
                assert row.status == RunStatus.STALE and not row.is_included
    assert answers[0].status_code == 200 and answers[2].status_code == 409
    assert_invariants(runtime.db)


def test_a_server_sigkilled_under_load_loses_no_acknowledged_write(
    runtime: Any, servers: list[ServerProcess]
) -> None:
    # enough work that the validators are still claiming when the killed server is back (a faster
    # lifecycle ran 50 versions dry within the test's first seconds)
    names = world(runtime, versions=150, validators=6)
    acknowledged: list[tuple[str, str, str, int]] = []  # (kind, validator, run id, server)
    failures: Counter[str] = Counter()
    stop = threading.Event()

    def validator(i: int) -> None:
        name = names[i]
        turn = i
        while not stop.is_set():
            turn += 1
            index = turn % 2
            server = servers[index]
            try:
                claim = post(server, "/v1/validator/work/claim", name)
                if claim.status_code == 200:
                    run = claim.json()["eval_run_id"]
                    acknowledged.append(("claim", name, run, index))
                    done = post(
                        server,
                        f"/v1/validator/evaluation-runs/{run}/complete",
                        name,
                        {"terminal_status": "SUCCESS", "validator_score": 0.5},
                    )
                    if done.status_code == 200:
                        acknowledged.append(("complete", name, run, index))
                    else:
                        failures[f"{done.status_code} {done.json().get('error_code')}"] += 1
                    time.sleep(0.1)
                else:
                    assert claim.status_code in (204, 409), claim.text
                    time.sleep(0.05)
            except httpx.TransportError as exc:
                failures[type(exc).__name__] += 1
                time.sleep(0.05)

    threads = [threading.Thread(target=validator, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(a[3] == 0 for a in acknowledged):
        time.sleep(0.1)  # until the server to be killed acknowledged a write (or the deadline)
    servers[0].kill()
    killed_at = len(acknowledged)
    time.sleep(0.5)
    servers[0].start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(a[3] == 0 for a in acknowledged[killed_at:]):
        time.sleep(0.1)  # until the restarted server acknowledged a write (or the deadline)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    restarted = [a for a in acknowledged[killed_at:] if a[3] == 0]
    assert killed_at > 0 and len(acknowledged) > killed_at and restarted, (killed_at, len(acknowledged))
    with runtime.db.session() as session:
        rows = {str(r.id): r for r in session.exec(select(EvaluationRun)).all()}
    for kind, name, run, _ in acknowledged:
        row = rows.get(run)
        assert row is not None and row.validator_hotkey == keypair(name).ss58_address
        if kind == "complete":
            assert row.status == RunStatus.SUCCESS and row.is_included
    assert_invariants(runtime.db)
    print(
        f"sigkill: {len(acknowledged)} acknowledged writes, {killed_at} before the kill, "
        f"failures {dict(failures)}"
    )
