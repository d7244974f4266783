"""A live server on a small demo world (SQLite), at the default rate limit, for the browser pages."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from oro_graph import demo
from oro_graph.app import create_app
from oro_graph.migrations import upgrade
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings


@dataclass(frozen=True)
class Site:
    url: str
    runtime: Runtime


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        database_url=f"sqlite:///{root / 'web.db'}",
        data_dir=root / "state",
        secret_key="test-secret-key",
        public_base_url=url,
        response_cache=False,
    )
    upgrade(settings.database_url)
    runtime = Runtime.build(settings)
    demo.generate(runtime.db, settings, seed=7, miners=30, validators=6, runs=300)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, runtime=runtime, migrate=False), log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield Site(url, runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.close()


DOCS = Path(__file__).resolve().parents[2] / "docs"
