"""Fixtures for tests that need inference tokens: a local OAuth token server and miners with a
stored credential. Import the fixtures you use into the test module:

    from tests.support.inference import oauth_server, token_runtime  # noqa: F401

``token_runtime`` is a runtime over the test's database whose settings point at ``oauth_server``
and require a usable credential (as production does); ``store_chutes`` gives a miner a refresh
token the server knows. For a live REST server, ``serve(**oauth_server.settings_overrides())``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oro_graph.runtime import Runtime
from oro_graph.services import credentials
from oro_graph.settings import Settings
from tests.support.oauth import TokenServer


@pytest.fixture
def oauth_server() -> Iterator[TokenServer]:
    server = TokenServer().start()
    try:
        yield server
    finally:
        server.stop()


def runtime_for(runtime: Runtime, server: TokenServer, **more: object) -> Runtime:
    """Another runtime (its own engine, client and breaker: like another server process) over the
    same database, pointed at ``server``."""
    settings = Settings(**{**runtime.settings.model_dump(), **server.settings_overrides(**more)})
    return Runtime.build(settings)


@pytest.fixture
def token_runtime(runtime: Runtime, oauth_server: TokenServer) -> Iterator[Runtime]:
    rt = runtime_for(runtime, oauth_server)
    try:
        yield rt
    finally:
        rt.close()


def store_chutes(rt: Runtime, hotkey: str, server: TokenServer) -> str:
    """Give ``hotkey`` a Chutes refresh token that ``server`` will honour; returns it."""
    token = server.issue_refresh_token()
    rt.db.call(credentials.store_credential, hotkey=hotkey, token=token, secret=rt.settings.secret)
    return token


def store_openrouter(rt: Runtime, hotkey: str, key: str = "sk-or-test-key-0123456789") -> str:
    rt.db.call(
        credentials.store_credential,
        hotkey=hotkey,
        token=key,
        secret=rt.settings.secret,
        provider="openrouter",
    )
    return key
