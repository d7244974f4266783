"""A live server on loopback for the unmodified oro-sdk client, on both databases.

``serve(**settings_overrides)`` starts the app with uvicorn in a thread, on a socket bound to a
free port (so the URLs the server hands out point back at it), over the test's ``runtime``
database. Rate limits are lifted unless a test sets them: only the rate-limit tests meet them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from bittensor_wallet import Keypair
from oro_sdk import BittensorAuthClient, Client, RetryConfig

from oro_graph.app import create_app
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings

TIMEOUT = httpx.Timeout(15.0)


@dataclass(frozen=True)
class Wallet:
    """The part of ``bittensor_wallet.Wallet`` the client uses: ``.hotkey``, a signing keypair."""

    hotkey: Keypair


def wallet(name: str) -> Wallet:
    """//Alice etc.: the same SS58 addresses tests.factories.register puts in the registry."""
    return Wallet(Keypair.create_from_uri(f"//{name}"))


@dataclass
class LiveServer:
    base_url: str
    runtime: Runtime

    def public(self, headers: dict[str, str] | None = None) -> Client:
        return Client(base_url=self.base_url, timeout=TIMEOUT, headers=headers or {})

    def signed(self, name: str) -> BittensorAuthClient:
        # No retries: a test must see the first answer (and the client retries GETs on 429/503).
        return BittensorAuthClient(
            base_url=self.base_url,
            wallet=wallet(name),
            timeout=TIMEOUT,
            retry_config=RetryConfig(max_retries=0),
        )

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=TIMEOUT)


@pytest.fixture
def serve(runtime: Runtime) -> Iterator[Callable[..., LiveServer]]:
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> LiveServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        values = {
            **runtime.settings.model_dump(),
            "public_base_url": base_url,
            "rate_limit_per_minute": 100_000,
            "submit_rate_limit": "10000/minute",
            **overrides,
        }
        rt = Runtime.build(Settings(**values), db=runtime.db)
        app = create_app(rt.settings, runtime=rt, migrate=False)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        started.append((server, thread))
        return LiveServer(base_url, rt)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve()
