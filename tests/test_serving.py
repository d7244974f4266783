"""``oro-graph serve --workers N`` (oro_graph/serving.py): every worker gets its share of keep-alive
connections, and a worker that dies is replaced while the others keep serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from oro_graph.serving import NOT_READY, pick
from tests.support.ports import start_listening

REPO = Path(__file__).resolve().parent.parent


def test_pick_takes_the_ready_worker_with_the_fewest_connections():
    assert pick([3, 1, 2], 0) == 1
    assert pick([1, 1, 1], 2) == 2  # ties go round from where the last handover stopped
    assert pick([NOT_READY, 5], 0) == 1
    assert pick([NOT_READY, NOT_READY], 0) is None


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _established(port: int) -> set[int]:
    """Socket inodes of established TCP connections whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(int(fields[9]))
    return inodes


def _sockets_of(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _workers(supervisor: int) -> list[int]:
    """The uvicorn workers: children that run the application (not multiprocessing's resource tracker)."""
    return [
        pid
        for pid in _children(supervisor)
        if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()
    ]


@pytest.mark.slow  # two server starts on a shared machine
def test_keep_alive_connections_are_spread_over_the_workers_and_a_dead_worker_is_replaced(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORO_", "PROMETHEUS_"))}
    env.update(
        ORO_DATABASE_URL=f"sqlite:///{tmp_path / 'serving.db'}",
        ORO_DATA_DIR=str(tmp_path / "state"),
        ORO_SECRET_KEY="serving",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO),
    )
    log = tmp_path / "serve.log"

    def launch(port: int) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "oro_graph", "serve", "--workers", "2", "--port", str(port)],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    proc, port = start_listening(launch)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while log.read_text().count("Application startup complete") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        # when 8 clients each open one keep-alive connection (one after the other, as a pool does)
        clients = [httpx.Client(base_url=base) for _ in range(8)]
        try:
            for client in clients:
                assert client.get("/health").status_code == 200
            # then each worker holds some of them (the shared socket of uvicorn let one take all 8)
            established = _established(port)
            held = [len(_sockets_of(pid) & established) for pid in workers]
            assert sum(held) == 8 and min(held) >= 3, held
            assert not _sockets_of(proc.pid) & established  # the supervisor keeps none
        finally:
            for client in clients:
                client.close()
        # when a worker dies, the other serves meanwhile and a new worker takes its place
        os.kill(workers[0], signal.SIGKILL)
        with httpx.Client(base_url=base) as client:
            assert client.get("/health").status_code == 200
        while log.read_text().count("Application startup complete") < 3:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        replaced = _workers(proc.pid)
        assert len(replaced) == 2 and workers[0] not in replaced, (workers, replaced)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            assert proc.wait(30) == 0, log.read_text()
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            raise
