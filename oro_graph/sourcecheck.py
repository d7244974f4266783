"""Parse agent files out of the server process, with bounded time and memory.

``ast.parse`` of a hostile file can take a second or more of CPU, hundreds of megabytes, or raise
MemoryError / RecursionError (``'-' * 100000 + '1'``, ``'x' + '[0]' * 300000``). So the server never
parses an uploaded file itself: a small pool of worker processes (``oro_graph/_parse_worker.py``,
standard library only) does, each limited to ``ORO_AGENT_PARSE_MEMORY_MB`` of address space and
``ORO_AGENT_PARSE_CPU_SECONDS`` of CPU per file (the kernel ends a worker past it, so a loaded machine
does not make an honest file fail; a wall-clock backstop of ten times that catches a stuck one). A
worker that dies (or exits after a MemoryError) is replaced at the next use. Whatever happens in a
worker, the caller gets ``InvalidFile`` with a reason, or ``ServiceUnavailable`` if no worker frees
up in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from oro_graph.errors import InvalidFile, ServiceUnavailable

WORKER_SCRIPT = Path(__file__).with_name("_parse_worker.py")


class _Died(Exception):
    """The worker process ended or broke the protocol."""


class _Worker:
    def __init__(self, memory_bytes: int, cpu_seconds: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(WORKER_SCRIPT), str(memory_bytes), str(cpu_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, source: bytes, deadline: float) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(struct.pack(">I", len(source)) + source)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _Died from exc
        header = self._read(4, deadline)
        (size,) = struct.unpack(">I", header)
        return json.loads(self._read(size, deadline))

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks: list[bytes] = []
        while size > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, size)
            if not chunk:
                raise _Died
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]


def _wait_code(worker: _Worker) -> int | None:
    """The worker's exit code once it is gone (it may take a moment after its pipe closed)."""
    try:
        return worker.proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        return None


class SourceParser:
    """A pool of at most ``workers`` parser processes, started on first use. Thread-safe."""

    def __init__(self, *, workers: int = 2, memory_mb: int = 512, cpu_seconds: float = 5.0) -> None:
        self.workers = workers
        self.memory_bytes = memory_mb * 1_048_576
        self.cpu_seconds = cpu_seconds
        self.timeout = max(10 * cpu_seconds, 1.0)  # wall clock: only a stuck or starved worker meets it
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(workers):
            self._idle.put(None)  # a slot whose worker is started when first needed
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.restarts = 0  # workers replaced after dying, timing out or leaving after a MemoryError
        self.checks = 0  # files sent to a worker

    @classmethod
    def from_settings(cls, settings: object) -> SourceParser:
        return cls(
            workers=settings.agent_parse_workers,  # type: ignore[attr-defined]
            memory_mb=settings.agent_parse_memory_mb,  # type: ignore[attr-defined]
            cpu_seconds=settings.agent_parse_cpu_seconds,  # type: ignore[attr-defined]
        )

    def check(self, source: str) -> None:
        """Return if ``source`` parses as Python; else raise InvalidFile saying why. Blocks."""
        try:
            # Each parse is bounded, so a slot frees up unless the pool is saturated.
            slot = self._idle.get(timeout=self.timeout)
        except queue.Empty:
            raise ServiceUnavailable("every agent-file parser is busy; retry shortly") from None
        worker: _Worker | None = slot
        try:
            for attempt in (1, 2):
                fresh = worker is None or not worker.alive
                worker = self._ready(worker)
                with self._lock:
                    self.checks += 1
                try:
                    answer = worker.ask(source.encode("utf-8"), time.monotonic() + self.timeout)
                    break
                except (_Died, ValueError, struct.error):
                    over_cpu = worker.proc.poll() == -signal.SIGXCPU or _wait_code(worker) == -signal.SIGXCPU
                    self._retire(worker, wait=False)
                    worker = None
                    if over_cpu:
                        raise InvalidFile(
                            f"agent file took more than {self.cpu_seconds:g} s of CPU to parse; "
                            "it must be ordinary Python source"
                        ) from None
                    # A worker that had served before may have died of something else (killed by
                    # an operator or the OOM killer): the file gets one more try on a fresh one.
                    if fresh or attempt == 2:
                        raise InvalidFile(
                            "agent file could not be parsed: the parser ran out of memory or crashed on it"
                        ) from None
            if answer.get("leaving"):  # it exits after a MemoryError or RecursionError
                self._retire(worker)
                worker = None
        except TimeoutError:
            self._retire(worker, wait=False)
            worker = None
            raise InvalidFile(
                f"agent file took longer than {self.timeout:g} s to parse; it must be ordinary Python source"
            ) from None
        finally:
            self._idle.put(worker)
        error = answer.get("error")
        if error is not None:
            raise InvalidFile(str(error))

    async def acheck(self, source: str) -> None:
        """``check`` from the event loop, in a worker thread."""
        await run_in_threadpool(self.check, source)

    def _ready(self, worker: _Worker | None) -> _Worker:
        if worker is not None and worker.alive:
            return worker
        self._retire(worker, wait=False)
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the server is shutting down")
            fresh = _Worker(self.memory_bytes, self.cpu_seconds)
            self._all.add(fresh)
        return fresh

    def _retire(self, worker: _Worker | None, *, wait: bool = True) -> None:
        """Stop a worker and forget it; its slot starts a fresh one when next used."""
        if worker is None:
            return
        if wait:  # it said it exits: let it, rather than kill it mid-write
            with contextlib.suppress(Exception):
                worker.proc.wait(timeout=self.timeout)
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            self.restarts += 1

    def pids(self) -> list[int]:
        """The process ids of the live workers (for tests and operators)."""
        with self._lock:
            return [w.proc.pid for w in self._all if w.alive]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()
