"""A live server on loopback for the unmodified oro-sdk client, on both databases.

``serve(**settings_overrides)`` starts the app with uvicorn in a thread, on a socket bound to a
free port (so the URLs the server hands out point back at it), over the test's ``runtime``
database. Rate limits are lifted unless a test sets them: only the rate-limit tests meet them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from oro_graph.app import create_app
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.rest.live import LiveServer
from tests.support.threadserver import loopback_socket


@pytest.fixture
def serve(runtime: Runtime) -> Iterator[Callable[..., LiveServer]]:
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> LiveServer:
        sock, base_url = loopback_socket()
        values = {
            **runtime.settings.model_dump(),
            "public_base_url": base_url,
            "rate_limit_per_minute": 100_000,
            "submit_rate_limit": "10000/minute",
            "write_rate_limit": "10000/minute",
            **overrides,
        }
        rt = Runtime.build(Settings(**values), db=runtime.db)
        app = create_app(rt.settings, runtime=rt, migrate=False)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120  # a loaded machine starts it late, not wrongly
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        started.append((server, thread))
        return LiveServer(base_url, rt)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve()
