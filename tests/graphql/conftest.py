"""The graph over the test runtime (both databases): a TestClient and a ``gql()`` helper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from oro_graph.app import create_app
from oro_graph.auth import sign_headers
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.factories import keypair

Gql = Callable[..., dict[str, Any]]


def _client(runtime: Runtime, **overrides: Any) -> TestClient:
    if overrides:
        settings = Settings(**{**runtime.settings.model_dump(), **overrides})
        runtime = Runtime.build(settings, db=runtime.db)
    return TestClient(create_app(runtime.settings, runtime=runtime, migrate=False))


def signed(name: str) -> dict[str, str]:
    """Fresh signed headers (new nonce) for the dev key //name."""
    return sign_headers(keypair(name))


def make_gql(client: TestClient) -> Gql:
    def gql(
        document: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: bool = False,
    ) -> dict[str, Any]:
        """POST one operation.

        Without ``errors=True`` any top-level error fails the test and ``data`` is returned.
        """
        response = client.post(
            "/graphql", json={"query": document, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if errors:
            return body
        assert "errors" not in body, body["errors"]
        return body["data"]

    return gql


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    # Lift the per-hotkey budgets and the points a minute (graph reads cost points by their cost):
    # only test_submit_rate_limit_is_shared_with_rest and test_budgets.py meet them.
    return _client(
        runtime,
        submit_rate_limit="10000/minute",
        write_rate_limit="10000/minute",
        rate_limit_per_minute=100_000,
    )


@pytest.fixture
def gql(client: TestClient) -> Gql:
    return make_gql(client)


@pytest.fixture
def debug_gql(runtime: Runtime) -> Gql:
    """The same graph with ORO_GRAPHQL_DEBUG on: responses carry extensions.sql."""
    return make_gql(_client(runtime, graphql_debug=True))
