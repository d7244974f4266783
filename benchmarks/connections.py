"""``/health`` while idle and slow connections pile up: ``python -m benchmarks.connections``.

Starts ``python -m oro_graph serve`` (one process, SQLite in a temporary folder) and, for
``--seconds``, holds ``--idle`` connections that never send a byte, while ``--slow`` senders each
trickle a request's headers one byte a second (slowloris) on connection after connection.
``/health`` is probed every 150 ms from another client meanwhile, and before, quiet. It prints the
probe's median, p99 and max, and how many of the idle connections the server had closed by the
end (``ORO_HEADER_TIMEOUT_SECONDS``, here ``--header-timeout``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.parser_bombs import HealthProbe

REPO = Path(__file__).resolve().parents[1]


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1024)  # EOF, or a 408 before it: either way the server let the connection go
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _slowloris(port: int, stop: threading.Event, cut: list[int]) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port)) as sock:
            try:
                for byte in request:
                    if stop.wait(1.0):
                        return
                    sock.sendall(bytes([byte]))
            except OSError:
                cut[0] += 1  # the server cut it off


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--slow", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--header-timeout", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=18_745)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="oro-connections-"))
    env = {
        "ORO_DATABASE_URL": f"sqlite:///{folder}/oro.db",
        "ORO_DATA_DIR": str(folder / "state"),
        "ORO_SECRET_KEY": "bench",
        "ORO_RATE_LIMIT_PER_MINUTE": "100000",
        "ORO_HEADER_TIMEOUT_SECONDS": str(args.header_timeout),
        "ORO_PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}",
    }
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
        with HealthProbe(base) as quiet:
            time.sleep(3)
        print(f"quiet: {quiet.summary()}")

        idle = [socket.create_connection(("127.0.0.1", args.port)) for _ in range(args.idle)]
        stop, cut = threading.Event(), [0]
        slow = [threading.Thread(target=_slowloris, args=(args.port, stop, cut)) for _ in range(args.slow)]
        for thread in slow:
            thread.start()
        with HealthProbe(base) as attacked:
            time.sleep(args.seconds)
        stop.set()
        for thread in slow:
            thread.join(5)
        closed = sum(_closed_by_peer(sock) for sock in idle)
        for sock in idle:
            sock.close()
        print(
            f"{args.idle} idle + {args.slow} slowloris connections for {args.seconds:g} s: "
            f"{attacked.summary()}; "
            f"idle connections closed by the server: {closed} of {args.idle}; "
            f"slowloris connections cut off: {cut[0]}"
        )
        log = (folder / "server.log").read_text()
        print(f"tracebacks in the server log: {log.count('Traceback')}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
