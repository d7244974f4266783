"""Depth, alias, token, page-size, cost and batch limits refuse abusive documents before any SQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from oro_graph.runtime import Runtime
from oro_graph.services import suites
from oro_graph.settings import DEFAULT_GRAPHQL_LIMITS as LIMITS
from tests.factories import make_world
from tests.graphql.conftest import Gql, _client

DEEP_QUERY = (
    "query { currentSuite { "
    + "versions { edges { node { agent { miner { agents { edges { node { " * 2
    + "name"
    + " } } } } } } } }" * 2
    + " } }"
)

ALIASES_QUERY = "query { " + " ".join(f"a{i}: currentSuite {{ suiteId }}" for i in range(31)) + " }"

COSTLY_QUERY = """
query {
  evaluationRuns(first: 100) {
    edges { node { problemResults(first: 100) {
      edges { node { problem { title } run { validator { name } } } }
    } } }
  }
}
"""

DRY_RUN_QUERY = """
query ($query: String!, $variables: JSON) {
  dryRun(query: $query, variables: $variables) { cost budget withinBudget connections { path items } }
}
"""

RUNS_VARIABLE_QUERY = (
    "query ($n: Int) { evaluationRuns(first: $n) "
    "{ edges { node { problemResults(first: 50) { totalCount } } } } }"
)


def _refused(debug_gql: Gql, document: str, variables: dict[str, object] | None = None) -> dict[str, object]:
    body = debug_gql(document, variables, errors=True)
    assert body["data"] is None
    assert (
        body["extensions"]["sql"]["statements"] == 0
    )  # refused during validation: nothing reached the database
    return body


def test_depth_limit(runtime: Runtime, debug_gql: Gql) -> None:
    # given a document nested past the depth limit
    # when
    body = _refused(debug_gql, DEEP_QUERY)

    # then
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_alias_limit(runtime: Runtime, debug_gql: Gql) -> None:
    # when
    body = _refused(debug_gql, ALIASES_QUERY)

    # then
    assert "aliases" in body["errors"][0]["message"]


def test_token_limit(runtime: Runtime, debug_gql: Gql) -> None:
    # when
    body = debug_gql("query { " + "currentSuite { suiteId } " * 1300 + "}", errors=True)

    # then
    assert body["data"] is None
    assert "token" in body["errors"][0]["message"].lower()


def test_page_size_over_100_is_refused_with_the_limit(runtime: Runtime, debug_gql: Gql) -> None:
    # when
    literal = _refused(debug_gql, "query { suites(first: 101) { totalCount } }")
    variable = _refused(debug_gql, "query ($n: Int) { validators(last: $n) { totalCount } }", {"n": 500})

    # then
    assert literal["errors"][0]["extensions"]["code"] == "BAD_PAGE_ARGUMENT"
    assert "between 0 and 100" in literal["errors"][0]["message"]
    assert "`last` on validators is 500" in variable["errors"][0]["message"]


def test_over_budget_document_is_refused_naming_cost_budget_and_what_to_lower(
    runtime: Runtime, debug_gql: Gql
) -> None:
    # when
    body = _refused(debug_gql, COSTLY_QUERY)

    # then
    error = body["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["budget"] == LIMITS.max_cost
    assert error["extensions"]["cost"] > LIMITS.max_cost
    assert f"exceeds the budget of {LIMITS.max_cost}" in error["message"]
    assert "evaluationRuns.edges.node.problemResults (up to 10000 items)" not in error["message"]
    assert "evaluationRuns.problemResults (up to 10000 items)" in error["message"]
    assert body["extensions"]["cost"]["requested"] == error["extensions"]["cost"]


def test_dry_run_gives_the_cost_without_running(runtime: Runtime, gql: Gql) -> None:
    # when
    cheap = gql(DRY_RUN_QUERY, {"query": RUNS_VARIABLE_QUERY, "variables": {"n": 10}})["dryRun"]
    costly = gql(DRY_RUN_QUERY, {"query": COSTLY_QUERY})["dryRun"]

    # then
    assert cheap == {
        "cost": 1 + 10 + 10 * 1 + 10,  # the call, 10 runs, 10 problemResults calls, 10 counts
        "budget": LIMITS.max_cost,
        "withinBudget": True,
        "connections": [
            {"path": "evaluationRuns.problemResults", "items": 500},
            {"path": "evaluationRuns", "items": 10},
        ],
    }
    assert costly["withinBudget"] is False and costly["cost"] > costly["budget"]


def test_every_response_reports_its_cost(runtime: Runtime, gql: Gql, client: TestClient) -> None:
    # given
    make_world(runtime)

    # when
    body = client.post("/graphql", json={"query": RUNS_VARIABLE_QUERY, "variables": {"n": 3}}).json()

    # then
    assert body["extensions"]["cost"] == {"requested": 1 + 3 + 3 + 3, "budget": LIMITS.max_cost}


def test_batches_are_capped(runtime: Runtime, client: TestClient) -> None:
    # given
    make_world(runtime)
    operation = {"query": "query { currentSuite { suiteId } }"}

    # when
    small = client.post("/graphql", json=[operation] * 2)
    large = client.post("/graphql", json=[operation] * (LIMITS.max_batch + 1))

    # then
    assert small.status_code == 200
    assert [r["data"]["currentSuite"]["suiteId"] for r in small.json()] == [1, 1]
    assert large.status_code == 400
    assert "Too many operations" in large.text


def test_unexpected_errors_are_masked_with_a_request_id(
    runtime: Runtime,
    gql: Gql,
    debug_gql: Gql,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a service that fails in a way no client should see
    def broken(session: object) -> None:
        raise RuntimeError("password=hunter2 leaked from a driver")

    monkeypatch.setattr(suites, "current_suite_or_none", broken)

    # when
    masked = gql("query { currentSuite { suiteId } }", errors=True)
    shown = debug_gql("query { currentSuite { suiteId } }", errors=True)

    # then
    error = masked["errors"][0]
    request_id = error["extensions"]["requestId"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "hunter2" not in error["message"] and request_id in error["message"]
    assert any(request_id in record.getMessage() for record in caplog.records)
    assert "hunter2" in shown["errors"][0]["message"]


def test_cors_is_configurable(runtime: Runtime) -> None:
    # given
    client = _client(runtime, graphql_cors_origins=["https://board.example"])

    # when
    allowed = client.options(
        "/graphql", headers={"Origin": "https://board.example", "Access-Control-Request-Method": "POST"}
    )
    other = client.options(
        "/graphql", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )

    # then
    assert allowed.headers["access-control-allow-origin"] == "https://board.example"
    assert "access-control-allow-origin" not in other.headers


def test_graphiql_on_get_from_a_browser(runtime: Runtime, client: TestClient) -> None:
    # when
    page = client.get("/graphql", headers={"Accept": "text/html"})

    # then
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
