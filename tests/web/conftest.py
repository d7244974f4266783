"""A live server on a small demo world (SQLite), at the default rate limit, for the browser pages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oro_graph import demo
from oro_graph.app import create_app
from oro_graph.migrations import upgrade
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.support.threadserver import loopback_socket, served


@dataclass(frozen=True)
class Site:
    url: str
    runtime: Runtime


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    sock, url = loopback_socket()
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
    try:
        with served(create_app(settings, runtime=runtime, migrate=False), sock):
            yield Site(url, runtime)
    finally:
        runtime.close()


DOCS = Path(__file__).resolve().parents[2] / "docs"
