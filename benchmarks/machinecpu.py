"""Where the machine's CPU goes while a drive runs, by kind of process.

A figure's ``cpu_per_process`` shows our server processes only. Whether a target is out of reach on
these two cores also depends on what the rest of the machine spends per request: PostgreSQL, Redis,
the load generator and the kernel. ``Watch`` reads every process's CPU (``/proc/PID/stat``) and the
machine's busy time (``/proc/stat``) at two instants inside the drive's measured window, after the
load generator has started and warmed up and before it stops, so start-up and teardown are left out.

Groups: ``servers`` (the watched server's processes), ``postgres``, ``redis``, ``load`` (the load
generators: ``benchmarks.loadgen`` processes) and ``other`` (the rest of the busy time: the kernel's
own work, the harness, processes that came or went inside the window). Each is in cores: 1.0 is one
core busy for the whole window; ``busy`` is their sum and ``cores`` what the machine has.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from benchmarks.servers import cpu_seconds

_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """Seconds all cores have been busy since boot (not idle, not waiting for I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is in user
    return busy / _TICK


def _group(pid: int, servers: frozenset[int]) -> str | None:
    if pid in servers:
        return "servers"
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        if comm.startswith("postgres"):
            return "postgres"
        if comm.startswith("redis-server"):
            return "redis"
        if b"benchmarks.loadgen" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return "load"
    except OSError:
        return None
    return None


def reading(servers: frozenset[int]) -> tuple[float, float, dict[int, tuple[str, float]]]:
    """(wall clock, machine busy seconds, {pid: (group, CPU seconds)}) for the grouped processes."""
    found: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        group = _group(pid, servers)
        if group is None:
            continue
        seconds = cpu_seconds(pid)
        if seconds is not None:
            found[pid] = (group, seconds)
    return time.perf_counter(), _busy_seconds(), found


def cores_between(
    first: tuple[float, float, dict[int, tuple[str, float]]],
    second: tuple[float, float, dict[int, tuple[str, float]]],
) -> dict[str, float] | None:
    """Each group's CPU between two readings, in cores. A process counts only if both readings saw
    it (one that came or went in between falls into ``other``)."""
    (t0, busy0, procs0), (t1, busy1, procs1) = first, second
    wall = t1 - t0
    if wall <= 0:
        return None
    groups = {"servers": 0.0, "postgres": 0.0, "redis": 0.0, "load": 0.0}
    for pid, (group, seconds) in procs1.items():
        if pid in procs0:
            groups[group] += seconds - procs0[pid][1]
    busy = busy1 - busy0
    out = {name: round(seconds / wall, 3) for name, seconds in groups.items()}
    out["other"] = round(max(0.0, busy - sum(groups.values())) / wall, 3)
    out["busy"] = round(busy / wall, 3)
    out["cores"] = float(os.cpu_count() or 1)
    return out


class Watch:
    """Read the machine at ``lead`` seconds after the start and again ``span`` seconds later, in a
    thread, while the caller drives the load; ``cores()`` is each group's share over that span."""

    def __init__(self, servers: list[int], lead: float, span: float) -> None:
        self._servers = frozenset(servers)
        self._lead, self._span = lead, span
        self._readings: list[tuple[float, float, dict[int, tuple[str, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="machine-cpu", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        if self._stop.wait(self._lead):
            return
        self._readings.append(reading(self._servers))
        if self._stop.wait(self._span):
            return
        self._readings.append(reading(self._servers))

    def cores(self) -> dict[str, float] | None:
        """None when the drive ended before the second reading (a span too long for it)."""
        if len(self._readings) < 2:
            return None
        return cores_between(self._readings[0], self._readings[1])
