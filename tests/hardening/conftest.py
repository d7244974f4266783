"""Fixtures for the hardening tests.

The live in-thread server (``serve``/``server``) is the REST suite's own; the process-level tests
start ``python -m oro_graph serve`` as subprocesses (see ``support.ServerProcess``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.hardening.support import PrivateRedis
from tests.rest.conftest import serve, server  # noqa: F401  (the live in-thread server)
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded, seed

# The server processes' shared Redis, flushed per test; set ORO_TEST_PROCESS_REDIS_URL so two checkouts
# testing on one machine do not flush each other's database.
PROCESS_REDIS_URL = os.environ.get("ORO_TEST_PROCESS_REDIS_URL", "redis://127.0.0.1:6379/13")


class ErrorLog(logging.Handler):
    """Every ERROR (or worse) record the server logs while a test runs."""

    LOGGERS = ("", "uvicorn", "uvicorn.error", "oro_graph", "fastapi", "starlette")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
            for r in self.records
        ]


@pytest.fixture
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    loggers = [logging.getLogger(name) for name in ErrorLog.LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture
def process_redis(redis_url: str) -> Iterator[str]:
    """Redis db 13, empty, for server processes that share nonces and rate-limit counters."""
    client = redis.Redis.from_url(PROCESS_REDIS_URL)
    client.flushdb()
    try:
        yield PROCESS_REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def seeded_server(serve: Callable[..., LiveServer]) -> Iterator[tuple[LiveServer, Seeded, httpx.Client]]:  # noqa: F811
    """A live server on the seeded world (tests/rest/seed.py), with an HTTP client to it."""
    live = serve()
    world = seed(live.runtime)
    with live.http() as http:
        yield live, world, http


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of the test's own (without persistence), to stop, hang or restart."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    instance = PrivateRedis()
    try:
        yield instance
    finally:
        instance.close()
