"""A server process's memory under concurrent hostile agent uploads: ``python -m benchmarks.parser_bombs``.

Starts ``python -m oro_graph serve`` (one process, SQLite in a temporary folder, Redis off) with
``--miners`` registered miner hotkeys, then sends one 1 MB hostile file per miner, all at once, to
``POST /v1/miner/submit`` (signed as the official client signs), ``--rounds`` times per kind:

- ``recursion``: ``'x' + '[0]' * 333_333`` (``ast.parse`` raises RecursionError after ~0.8 s of CPU);
- ``memory``: ``'-' * 1_000_000 + '1'`` (``ast.parse`` raises MemoryError);
- ``valid``: 1 MB of ordinary assignments, as the control (accepted).

It prints, per kind: the statuses, the slowest answer, and the server process's resident memory
(VmRSS) before and after and its peak (VmHWM), plus the peak of the parser worker processes, and
what the uploads cost everyone else: ``/health`` probed every 150 ms while they run (median, p99,
max), against the same probe before any upload.
Loopback only; a few dozen requests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024

FILES = {
    "recursion": b"x" + b"[0]" * 333_333,
    "memory": b"-" * 1_000_000 + b"1",
}


def _valid(index: int) -> bytes:
    line = b"value_%d = [1, 2, 3]\n"
    body = b"".join(line % i for i in range(40_000))  # 0.97 MB, under the 1 MiB default limit
    return b"# control %d\n" % index + body


def _status(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process ended meanwhile (a parser worker that met a bomb)
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu(pid: int) -> float:
    """User + system CPU seconds of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


class HealthProbe:
    """``/health`` every 150 ms from another thread, its latencies kept, until stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _probe(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                http.get("/health")
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(0.15)

    def summary(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        if not ms:
            return "/health: no probe"
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        median = statistics.median(ms)
        return f"/health median {median:.1f} / p99 {p99:.1f} / max {ms[-1]:.1f} ms ({len(ms)} probes)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=6, help="concurrent uploads, one per miner")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per kind of file")
    parser.add_argument("--port", type=int, default=18_715)
    args = parser.parse_args()

    from substrateinterface import Keypair

    from oro_graph.auth import sign_headers
    from oro_graph.db import Database
    from oro_graph.migrations import upgrade
    from oro_graph.models import Role
    from oro_graph.services import registry, suites
    from oro_graph.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="oro-bombs-"))
    env = {
        "ORO_DATABASE_URL": f"sqlite:///{folder}/bombs.db",
        "ORO_DATA_DIR": str(folder / "state"),
        "ORO_SECRET_KEY": "bench",
        "ORO_SUBMISSION_COOLDOWN_SECONDS": "0",
        "ORO_SUBMIT_RATE_LIMIT": "100000/minute",
        "ORO_RATE_LIMIT_PER_MINUTE": "100000",
        "ORO_PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}",
    }
    settings = Settings(**{k.removeprefix("ORO_").lower(): v for k, v in env.items()})
    upgrade(settings.database_url)
    db = Database(settings)
    problems = [{"query": f"q{i}", "title": f"P{i}"} for i in range(3)]
    db.call(suites.import_suite, json.dumps(problems).encode(), activate=True)
    keys = [Keypair.create_from_uri(f"//bombs{i}") for i in range(args.miners)]
    for key in keys:
        db.call(registry.add_hotkey, key.ss58_address, role=Role.MINER, name=key.ss58_address[:8])
    db.dispose()

    server = subprocess.Popen(
        [sys.executable, "-m", "oro_graph", "serve", "--port", str(args.port)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ORO_")}, **env},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "server.log").open("wb"),
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not start; see {folder / 'server.log'}")
            time.sleep(0.2)
        pid = server.pid
        print(f"server pid {pid}; RSS at start {_status(pid, 'VmRSS') / MiB:.0f} MiB")

        def send(key: Keypair, content: bytes, name: str) -> tuple[int, float, str]:
            started = time.perf_counter()
            answer = httpx.post(
                base + "/v1/miner/submit",
                headers=sign_headers(key),
                data={"agent_name": name},
                files={"file": ("agent.py", content, "text/x-python")},
                timeout=120,
            )
            body = answer.json()
            code = body.get("error_code") or body.get("admission_status", "")
            if "took longer" in str(body.get("detail", "")):
                code += " (timeout)"
            return answer.status_code, time.perf_counter() - started, code

        with HealthProbe(base) as quiet:
            time.sleep(3)
        print(f"    quiet: {quiet.summary()}")
        worker_peak = 0
        kinds = [*FILES, "valid"]
        for kind in kinds:
            before, cpu_before = _status(pid, "VmRSS"), _cpu(pid)
            statuses: dict[str, int] = {}
            slowest = 0.0
            probe = HealthProbe(base).__enter__()
            for round_ in range(args.rounds):
                with concurrent.futures.ThreadPoolExecutor(len(keys)) as pool:
                    futures = [
                        pool.submit(
                            send,
                            key,
                            FILES[kind] if kind in FILES else _valid(i + round_ * len(keys)),
                            f"{kind}{round_}",
                        )
                        for i, key in enumerate(keys)
                    ]
                    while not all(f.done() for f in futures):
                        for child in _children(pid):
                            worker_peak = max(worker_peak, _status(child, "VmRSS"))
                        time.sleep(0.05)
                    for future in futures:
                        status, seconds, code = future.result()
                        statuses[f"{status} {code}"] = statuses.get(f"{status} {code}", 0) + 1
                        slowest = max(slowest, seconds)
            probe.__exit__()
            after, peak = _status(pid, "VmRSS"), _status(pid, "VmHWM")
            per_upload = (_cpu(pid) - cpu_before) / (args.rounds * len(keys))
            print(
                f"{kind:>9}: {args.rounds} x {len(keys)} concurrent 1 MB uploads -> {statuses}; "
                f"slowest {slowest:.2f} s; server CPU {per_upload * 1000:.0f} ms per upload; "
                f"server RSS {before / MiB:.0f} -> {after / MiB:.0f} MiB (peak so far {peak / MiB:.0f} MiB); "
                f"{probe.summary()}"
            )
        print(f"parser workers' largest RSS seen: {worker_peak / MiB:.0f} MiB")
        log = (folder / "server.log").read_text()
        print(f"tracebacks in the server log: {log.count('Traceback')}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
