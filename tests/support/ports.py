"""Loopback ports for servers the tests start in another process (``oro-graph serve``, redis-server).

Such a server binds its port itself, so the port is picked before it is taken: another process (a
parallel xdist worker's server, an outgoing connection) may take it meanwhile. Then the server exits
saying so, or, worse, the port answers for someone else's server. So a test does not trust the port to
answer: it waits until its own process listens there (``listens``), and ``ServerStart`` picks another
port when the first was taken. In-process servers take a bound socket instead
(``tests.support.threadserver.loopback_socket``) and have no such race.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp


def free_port() -> int:
    """A loopback port nothing listens on right now (it may be taken before the caller binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the sockets listening on ``port`` (any address), from /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (Linux: /proc)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def port_taken(port: int) -> bool:
    """Whether some process listens on ``port``."""
    return bool(_listening_inodes(port))


def start_listening(
    launch: Callable[[int], subprocess.Popen[bytes]], *, timeout: float = 120.0, attempts: int = 3
) -> tuple[subprocess.Popen[bytes], int]:
    """``launch(port)`` on a free port until its process listens there; the process and the port.

    When the process exits while someone else listens on the port it was given (the port was taken
    between picking and binding), it is launched again on another port, up to ``attempts`` times.
    Any other exit, or no listener within ``timeout`` seconds, raises RuntimeError."""
    for _ in range(attempts):
        port = free_port()
        proc = launch(port)
        deadline = time.monotonic() + timeout
        while not listens(proc.pid, port):
            if proc.poll() is not None:
                if port_taken(port):
                    break  # another port
                raise RuntimeError(f"the server exited with {proc.returncode} before listening on {port}")
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(10)
                raise RuntimeError(f"the server did not listen on {port} within {timeout:g} s")
            time.sleep(0.05)
        else:
            return proc, port
    raise RuntimeError(f"every port given to the server was taken first ({attempts} attempts)")


def start_serve(
    env: dict[str, str],
    *,
    stdout: Any = subprocess.DEVNULL,
    cwd: Path | None = None,
    options: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m oro_graph serve [options]`` with ``env`` (stderr joins ``stdout``), once it listens;
    the process and its port (``start_listening``)."""
    return start_listening(
        lambda port: subprocess.Popen(
            [sys.executable, "-m", "oro_graph", "serve", "--port", str(port), *options],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    )


def wait_healthy(port: int, process: subprocess.Popen[Any], *, timeout: float = 120.0) -> None:
    """Return once the server ``process`` (listening on ``port``) answers ``/health`` with 200; fail if it
    exits first or ``timeout`` seconds pass (its database may still be migrating when it listens)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).raise_for_status()
            return
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"the server on port {port} did not become healthy (exit code {process.poll()})"
                ) from None
            time.sleep(0.05)
