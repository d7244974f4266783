"""Helpers for the hardening tests: table dumps, signed httpx calls, server processes, invariants."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlmodel import SQLModel

from oro_graph.auth import sign_headers
from oro_graph.db import Database
from oro_graph.services import invariants
from tests.factories import keypair
from tests.support.ports import free_port, listens, port_taken, start_listening

REPO = Path(__file__).resolve().parents[2]


def dump_tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: equal dumps mean nothing changed."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = conn.execute(text(f'SELECT * FROM "{table.name}"')).all()
            out[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return out


def assert_invariants(db: Database, max_active: int = 1) -> None:
    broken = db.call(invariants.check_invariants, max_active_runs_per_validator=max_active)
    assert broken == dict.fromkeys(invariants.INVARIANTS, 0), broken


def signed(name: str, **kwargs: Any) -> dict[str, str]:
    """Fresh signed headers for //name, exactly as the official client makes them."""
    return sign_headers(keypair(name), **kwargs)


def client(base_url: str, *, source: str | None = None, timeout: float = 15.0) -> httpx.Client:
    """An httpx client, optionally from another loopback address (another 'IP' for the limits)."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=base_url, timeout=timeout, transport=transport)


class ServerProcess:
    """``python -m oro_graph serve`` in its own process, on its own port, its log in a file.

    Without ``port`` it picks a free one, and another if that one is taken before the server binds it
    (a parallel worker's server, say): ready means this process listens there and answers /health."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, *, port: int | None = None) -> None:
        self.log_dir = log_dir
        self.picked = port is None  # the port is ours to change while starting
        self.public_base_url = env.get("ORO_PUBLIC_BASE_URL")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORO_")}
        self.env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "ORO_RACE_SCHEDULER": "false",
                "ORO_REQUIRE_INFERENCE_CREDENTIAL": "false",  # these worlds store no inference credentials
                # A loaded machine must not turn slow executions into budget refusals.
                "ORO_GRAPHQL_TIME_BUDGET_SECONDS": "300",
                **env,
            }
        )
        self._use_port(port or free_port())
        self.proc: subprocess.Popen[bytes] | None = None

    def _use_port(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = self.log_dir / f"server-{port}.log"
        self.env["ORO_PUBLIC_BASE_URL"] = self.public_base_url or self.base_url

    def start(self, *, wait: bool = True) -> ServerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oro_graph", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until this process listens on its port and answers /health there (a port taken before
        it bound: it starts again on another)."""
        deadline = time.monotonic() + timeout
        retries = 3
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                if self.picked and retries and port_taken(self.port):
                    retries -= 1
                    self._use_port(free_port())
                    self.start(wait=False)
                    continue
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if (
                    listens(self.proc.pid, self.port)
                    and httpx.get(self.base_url + "/health", timeout=5).status_code == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server on {self.port} not ready in {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, exactly as the OOM killer would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tracebacks(self) -> list[str]:
        """Unhandled exceptions the server logged (each Traceback block's last line)."""
        lines = self.log().splitlines()
        found = []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = i + 1
                while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
                    end += 1
                found.append(lines[end] if end < len(lines) else line)
        return found


def start_servers(n: int, env: Mapping[str, str], log_dir: Path) -> list[ServerProcess]:
    """Start ``n`` servers and wait until each answers; if one never does, stop them all before
    raising (the caller's cleanup never sees them: a leaked server would spin for the rest of the
    suite, on a machine the other tests share)."""
    servers = [ServerProcess(env, log_dir) for _ in range(n)]
    try:
        for server in servers:
            server.start(wait=False)
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def burst(job: tuple[list[str], str, str, str | None, int]) -> list[tuple[int, str | None, str]]:
    """One client process's burst (run in a spawned process): ``count`` requests from ``source``,
    alternating over ``base_urls``. GET ``path``, or with ``signer`` a signed agent submission.
    Returns (status, Retry-After, error_code or admission) per request."""
    base_urls, source, path, signer, count = job
    out = []
    clients = [client(url, source=source) for url in base_urls]
    for i in range(count):
        http = clients[i % len(clients)]
        if signer:
            files = {"file": ("a.py", b"x = 1\n")}
            response = http.post(path, headers=signed(signer), data={"agent_name": "flood"}, files=files)
        else:
            response = http.get(path)
        body = response.json()
        tag = body.get("error_code") or body.get("admission_status") if isinstance(body, dict) else None
        out.append((response.status_code, response.headers.get("retry-after"), str(tag)))
    for http in clients:
        http.close()
    return out


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence: a restart loses
    everything, as an operator's Redis without RDB/AOF would."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="oro-redis-"))
        self.proc, self.port = start_listening(self._launch, timeout=30)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )

    def _start(self) -> subprocess.Popen[bytes]:
        """On its own port again (a restart): listening there, or RuntimeError."""
        proc = self._launch(self.port)
        deadline = time.monotonic() + 30
        while not listens(proc.pid, self.port):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"redis-server did not start again on {self.port}")
            time.sleep(0.05)
        return proc

    def restart(self) -> None:
        """Kill it (no shutdown save) and start it again, empty, on the same port."""
        self.proc.kill()
        self.proc.wait(10)
        self.proc = self._start()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
