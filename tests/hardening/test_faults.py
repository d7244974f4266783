"""Faults: a private PostgreSQL cluster restarted under load, Redis gone (refused) and hung
(stopped), and a validator that vanishes mid-run. The server answers fast with 503 when it cannot
be sure, recovers by itself, keeps public reads going, and never lets a replayed nonce through."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oro_graph.db import Database
from oro_graph.migrations import upgrade
from oro_graph.settings import Settings
from tests.factories import make_world, submit
from tests.hardening.support import PrivateRedis, ServerProcess, assert_invariants, signed
from tests.rest.live import LiveServer
from tests.support.ports import free_port, port_taken

FAIL_FAST_SECONDS = 3.0  # an answer during an outage must come within this


class PrivatePostgres:
    """initdb into a temporary folder and run it on its own port (as the postgres OS user when root)."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = Path(binaries[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="oro-pg-"))
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._use_port(free_port())

    def _use_port(self, port: int) -> None:
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.bin / tool), *args], check=True, capture_output=True, timeout=60
        )

    def start(self, *, move: bool = False) -> None:
        """Start the server on its port; with ``move``, on another if someone took that one meanwhile."""
        for attempt in range(3):
            options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
                )
                return
            except subprocess.CalledProcessError:
                if not move or attempt == 2 or not port_taken(self.port):
                    raise
                self._use_port(free_port())

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start(move=True)
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.mark.slow
def test_a_postgres_restart_under_load_fails_fast_and_heals_itself(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    upgrade(private_pg.url)
    settings = Settings(database_url=private_pg.url, secret_key="hardening", data_dir=tmp_path / "state")
    db = Database(settings)
    from oro_graph.runtime import Runtime

    rt = Runtime.build(settings, db=db)
    make_world(rt)
    server = ServerProcess(
        {
            "ORO_DATABASE_URL": private_pg.url,
            "ORO_SECRET_KEY": "hardening",
            "ORO_DATA_DIR": str(tmp_path / "state"),
            "ORO_RATE_LIMIT_PER_MINUTE": "1000000",
            "ORO_WRITE_RATE_LIMIT": "1000000/minute",
        },
        tmp_path,
    ).start()
    seen: list[tuple[float, int, float]] = []  # (started, status, seconds); two calls per round
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            while not stop.is_set():
                t0 = time.monotonic()
                public = http.get("/v1/public/leaderboard")
                # A cached board is still right while the database is down: nothing can be written.
                status = HIT if public.headers.get("x-cache") == "hit" else public.status_code
                signed_status = http.get("/v1/miner/agents", headers=signed("Alice")).status_code
                took = time.monotonic() - t0
                seen.extend([(t0, status, took / 2), (t0, signed_status, took / 2)])
                time.sleep(0.05)

    workers = [threading.Thread(target=load) for _ in range(3)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 120
        while not seen and time.monotonic() < deadline:
            time.sleep(0.1)  # until a round was answered before the outage
        down_at = time.monotonic()
        private_pg.stop("immediate")
        deadline = time.monotonic() + 120
        while sum(t > down_at + 0.3 for t, _, _ in seen) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)  # until rounds were answered during it (a loaded machine answers fewer a second)
        up_at = time.monotonic()
        private_pg.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(t > up_at and s == 200 for t, s, _ in seen[-6:]):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
        server.stop()
        db.dispose()
    # A round that started before the stop but was still in flight when it came may see either.
    before = [s for t, s, took in seen if t + 2 * took < down_at]
    during = [(s, took) for t, s, took in seen if down_at + 0.3 < t < up_at]
    after = [s for t, s, _ in seen[-6:]]
    assert before and set(before) <= {200, HIT}
    assert during and {s for s, _ in during} <= {503, HIT} and 503 in {s for s, _ in during}, during
    assert max(took for _, took in during) < FAIL_FAST_SECONDS, during
    assert set(after) <= {200, HIT} and 200 in after, after  # healed, with no restart of the server
    unexpected = [s for _, s, _ in seen if s not in (200, 503, HIT)]
    assert unexpected == []
    print(
        f"pg outage: {len(seen)} requests, {len(during)} during the outage, "
        f"slowest {max(t for _, t in during):.3f} s"
    )


HIT = -200  # a 200 answered from the response cache
LEASE = 10  # seconds, for the vanished validator


def timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    response = send()
    return response, time.monotonic() - t0


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("outage", ["stopped", "killed"])
def test_without_redis_every_path_serves_and_a_replay_stays_refused(
    serve: Callable[..., LiveServer], private_redis: PrivateRedis, outage: str
) -> None:
    """Redis hung (SIGSTOP) or gone: public and signed paths keep answering (nonces are in the
    database, counters fall back to it), a replay is still 401, /health says Redis is degraded,
    and the server returns to Redis by itself once it is back."""
    server = serve(redis_url=private_redis.url, rate_limit_per_minute=1000, redis_retry_seconds=0.5)
    world = make_world(server.runtime)
    submit(server.runtime, world.miners[0], "during-an-outage")
    with server.http() as http:
        used = signed("Alice")
        assert http.get("/v1/miner/agents", headers=used).status_code == 200
        # Each path answered once before the outage, so the timed answers below measure the outage
        # and not a path's first answer (imports, compiled statements: seconds on a loaded machine).
        assert http.get("/v1/public/leaderboard").status_code == 200
        assert http.post("/v1/validator/work/claim", headers=signed("Alice")).status_code == 403
        assert http.get("/health").json()["redis"] == "ok"
        if outage == "stopped":
            private_redis.proc.send_signal(signal.SIGSTOP)  # hung: connections open, nothing answers
        else:
            private_redis.proc.kill()
            private_redis.proc.wait(10)
        for send, status in (
            (lambda: http.get("/v1/public/leaderboard"), 200),
            (lambda: http.get("/v1/miner/agents", headers=signed("Alice")), 200),
            (lambda: http.post("/v1/validator/work/claim", headers=signed("Charlie")), 200),
            (lambda: http.get("/v1/miner/agents", headers=used), 401),  # the replay: never a 200
        ):
            response, took = timed(send)
            assert response.status_code == status, (outage, response.status_code, response.text)
            # one 0.5 s timeout at most
            assert took < FAIL_FAST_SECONDS, (outage, response.request.url.path, took)
            if response.status_code == 200 and "eval_run_id" in response.text:
                run = response.json()["eval_run_id"]
                beat = http.post(f"/v1/validator/evaluation-runs/{run}/heartbeat", headers=signed("Charlie"))
                assert beat.status_code == 200, beat.text
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["redis"] == "degraded"
        if outage == "stopped":
            private_redis.proc.send_signal(signal.SIGCONT)
        else:
            private_redis.proc = private_redis._start()
        deadline = time.monotonic() + 120  # the probe finds it again (every redis_retry_seconds)
        while http.get("/health").json()["redis"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert http.get("/health").json()["redis"] == "ok"
        assert http.get("/v1/miner/agents", headers=used).status_code == 401  # still a replay
        assert http.get("/v1/miner/agents", headers=signed("Alice")).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_vanished_validators_lease_expires_and_another_validator_gets_the_work(
    serve: Callable[..., LiveServer],
) -> None:
    # A lease long enough that Dave's claim comes within it on a loaded machine (2 s lapsed first).
    server = serve(lease_seconds=LEASE, lease_sweep_seconds=0.5, required_successes=1)
    rt: Any = server.runtime
    world = make_world(rt)
    version = submit(rt, world.miners[0], "orphan").agent_version_id
    with server.http() as http:
        first = http.post("/v1/validator/work/claim", headers=signed("Charlie"))
        assert first.status_code == 200 and first.json()["agent_version_id"] == str(version)
        assert http.post("/v1/validator/work/claim", headers=signed("Dave")).status_code == 204
        # Charlie is gone: no heartbeat; the lease lapses and the sweeper marks the run STALE
        deadline = time.monotonic() + LEASE + 120
        while (running := http.get("/v1/public/evaluations/running").json()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running == []
        second = http.post("/v1/validator/work/claim", headers=signed("Dave"))
        assert second.status_code == 200 and second.json()["agent_version_id"] == str(version)
        run = first.json()["eval_run_id"]
        late = http.post(f"/v1/validator/evaluation-runs/{run}/heartbeat", headers=signed("Charlie"))
        assert late.status_code == 409 and late.json()["error_code"] == "LEASE_EXPIRED"
        status = http.get(f"/v1/public/evaluation-runs/{run}").json()
        assert status["status"] == "STALE"
        done = http.post(
            f"/v1/validator/evaluation-runs/{second.json()['eval_run_id']}/complete",
            headers=signed("Dave"),
            json={"terminal_status": "SUCCESS", "validator_score": 0.9},
        )
        assert done.status_code == 200 and done.json()["agent_version_became_eligible"] is True
    assert_invariants(rt.db)
