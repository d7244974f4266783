"""How ``oro-graph serve --workers N`` spreads connections over its N processes.

uvicorn's own multi-process mode lets every worker accept from one shared listening socket: whichever
worker's event loop wakes first takes the connection, so a worker that is idle for a moment can take
every keep-alive connection of a small set of clients and keep them for good (measured: CPU 0.97 in
one process, 0.02 in the other, half the throughput). ``SO_REUSEPORT`` per worker is better but still
a hash of the client's address and port: 8 connections land 6/2 or worse about a third of the time.

Here a small supervisor owns the listening socket. It accepts each connection and hands its file
descriptor (``SCM_RIGHTS`` over a Unix socket pair) to the worker holding the fewest open connections
(each worker publishes its count in shared memory); from then on the connection belongs to that
worker, so the supervisor costs one accept and one ``sendmsg`` per connection, nothing per request.
Workers are plain ``uvicorn.Server`` instances with the same options ``serve`` always passed; a
worker that dies is replaced. SIGTERM or SIGINT stops accepting, lets every worker finish its
requests (uvicorn's graceful shutdown), and kills what is still there after ``GRACE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

log = logging.getLogger("oro_graph.serving")

GRACE_SECONDS = 30.0  # after SIGTERM, how long workers may take to finish before they are killed
NOT_READY = -1  # a worker's slot in the shared counts before its application has started
RESTART_PAUSE = 1.0  # between a worker's death and its replacement (a crash loop does not spin)


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Run ``app`` (a uvicorn import string) on host:port in ``workers`` processes.

    One worker is uvicorn as it always ran (no supervisor); more go through :class:`Supervisor`."""
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, **options)
        return
    Supervisor(app, host=host, port=port, workers=workers, options=options).run()


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A non-blocking listening TCP socket on host:port, bound as uvicorn binds (SO_REUSEADDR)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def pick(counts: Sequence[int], start: int) -> int | None:
    """The ready worker with the fewest open connections (ties: the first from ``start`` on), or None."""
    best: int | None = None
    n = len(counts)
    for step in range(n):
        i = (start + step) % n
        if counts[i] == NOT_READY:
            continue
        if best is None or counts[i] < counts[best]:
            best = i
    return best


@dataclass
class _Slot:
    process: BaseProcess
    channel: socket.socket  # the supervisor's end of the worker's socket pair


@dataclass
class Supervisor:
    app: str
    host: str
    port: int
    workers: int
    options: dict[str, Any]
    slots: list[_Slot | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")
        # One int per worker, written by the worker (its open connections) and bumped here on a handover.
        self.counts = self.context.Array("i", [NOT_READY] * self.workers, lock=False)
        self.stopping = False
        self.next = 0

    # -- workers ---------------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.counts[index] = NOT_READY
        process = self.context.Process(
            target=_worker_main,
            args=(index, theirs, self.counts, self.app, self.options),
            name=f"oro-graph-worker-{index}",
        )
        process.start()
        theirs.close()
        ours.setblocking(False)
        self.slots[index] = _Slot(process, ours)
        log.info("started worker %d (pid %s)", index, process.pid)

    def _reap(self, index: int) -> None:
        slot = self.slots[index]
        if slot is None:
            return
        slot.channel.close()
        slot.process.join(0)
        self.slots[index] = None
        self.counts[index] = NOT_READY
        if slot.process.pid is not None:
            with contextlib.suppress(Exception):
                from prometheus_client import multiprocess

                if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                    multiprocess.mark_process_dead(slot.process.pid)

    # -- handing connections over ----------------------------------------------------------------

    def _hand_over(self, conn: socket.socket) -> bool:
        tried: set[int] = set()
        while True:
            ready = [
                NOT_READY if (i in tried or self.slots[i] is None) else self.counts[i]
                for i in range(self.workers)
            ]
            index = pick(ready, self.next)
            if index is None:
                return False
            self.next = (index + 1) % self.workers
            slot = self.slots[index]
            assert slot is not None
            try:
                socket.send_fds(slot.channel, [b"c"], [conn.fileno()])
            except OSError:  # the worker is going away (or its channel is full): try another
                tried.add(index)
                continue
            self.counts[index] += 1  # until the worker publishes its own count again
            return True

    def _accept(self, listener: socket.socket) -> None:
        if pick([self.counts[i] if self.slots[i] else NOT_READY for i in range(self.workers)], 0) is None:
            time.sleep(0.02)  # no worker is ready yet: leave the connection in the backlog
            return
        for _ in range(64):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: say so, let the backlog wait
                log.warning("accept failed: %s", exc)
                time.sleep(0.05)
                return
            with conn:
                if not self._hand_over(conn):
                    log.warning("no worker could take a connection; closed it")

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        uvicorn.Config(self.app, **self.options)  # configures logging here as in the workers
        listener = listen(self.host, self.port)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        previous = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)

        def stop(signum: int, _frame: object) -> None:
            self.stopping = True

        handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.slots = [None] * self.workers
        died: dict[int, float] = {}
        selector = selectors.DefaultSelector()
        try:
            for i in range(self.workers):
                self._start(i)
            log.info(
                "supervisor (pid %d) hands connections on %s:%d to %d workers",
                os.getpid(),
                self.host,
                self.port,
                self.workers,
            )
            selector.register(listener, selectors.EVENT_READ, "accept")
            selector.register(wake_r, selectors.EVENT_READ, "wake")
            while not self.stopping:
                sentinels = {
                    slot.process.sentinel: i for i, slot in enumerate(self.slots) if slot is not None
                }
                for fd, i in sentinels.items():
                    selector.register(fd, selectors.EVENT_READ, i)
                try:
                    events = selector.select(timeout=0.5)
                finally:
                    for fd in sentinels:
                        selector.unregister(fd)
                for key, _ in events:
                    if key.data == "accept":
                        self._accept(listener)
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            wake_r.recv(512)
                    elif isinstance(key.data, int) and not self.stopping:
                        slot = self.slots[key.data]
                        code = slot.process.exitcode if slot is not None else None
                        log.error("worker %d exited with %s; starting another", key.data, code)
                        self._reap(key.data)
                        died[key.data] = time.monotonic()
                now = time.monotonic()
                for i, when in list(died.items()):
                    if now - when >= RESTART_PAUSE and not self.stopping:
                        del died[i]
                        self._start(i)
        finally:
            selector.close()
            listener.close()
            self._stop_all()
            signal.set_wakeup_fd(previous)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            wake_r.close()
            wake_w.close()

    def _stop_all(self) -> None:
        live = [(i, s) for i, s in enumerate(self.slots) if s is not None]
        for _, slot in live:
            if slot.process.is_alive() and slot.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signal.SIGTERM)
            slot.channel.close()  # a worker reading EOF stops too
        deadline = time.monotonic() + GRACE_SECONDS
        for _, slot in live:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(5)
        for i, _ in live:
            self._reap(i)


# ------------------------------------------------------------------------------------------------
# Worker side


class _HandedServer(uvicorn.Server):
    """A uvicorn server without a listening socket: its connections arrive over ``channel``."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket, counts: Any, index: int) -> None:
        super().__init__(config)
        self.channel = channel
        self.counts = counts
        self.index = index
        self.tasks: set[asyncio.Task[Any]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan runs; no socket is created
        loop = asyncio.get_running_loop()
        config = self.config

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop
            )

        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._receive, loop, create_protocol)
        self._spawn(loop, self._publish())

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        task = loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _receive(self, loop: asyncio.AbstractEventLoop, create_protocol: Any) -> None:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.channel, 16, 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data and not fds:  # the supervisor is gone: finish what is open and stop
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                self._spawn(loop, loop.connect_accepted_socket(create_protocol, sock))

    async def _publish(self) -> None:
        while not self.should_exit:
            self.counts[self.index] = len(self.server_state.connections)
            await asyncio.sleep(0.05)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.counts[self.index] = NOT_READY  # no new connections here
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets=sockets)
        self.channel.close()


def _worker_main(index: int, channel: socket.socket, counts: Any, app: str, options: dict[str, Any]) -> None:
    config = uvicorn.Config(app, **options)
    _HandedServer(config, channel, counts, index).run()
