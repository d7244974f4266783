from __future__ import annotations

from oro_graph.runtime import Runtime
from tests.factories import make_suite
from tests.graphql.conftest import Gql

CURRENT_SUITE_QUERY = """
query {
  currentSuite {
    id suiteId version isActive executionKind benchmarkName
    problems(first: 2) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { cursor node { position title category problemId suite { suiteId } } }
    }
  }
}
"""

PROBLEMS_PAGE_QUERY = """
query ($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  suite(id: $id) {
    problems(first: $first, after: $after, last: $last, before: $before) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { position } }
    }
  }
}
"""

SUITES_QUERY = """
query ($first: Int, $after: String) {
  suites(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { suiteId isActive } }
  }
}
"""

NODE_QUERY = """
query ($id: ID!) { node(id: $id) { __typename ... on Suite { suiteId } } }
"""


def test_current_suite_with_its_first_problems(runtime: Runtime, gql: Gql) -> None:
    # given
    suite = make_suite(runtime, problems=5)

    # when
    data = gql(CURRENT_SUITE_QUERY)

    # then
    current = data["currentSuite"]
    assert current["suiteId"] == suite.id
    assert current["isActive"] is True
    assert current["executionKind"] == "LEGACY_SHOPPINGBENCH"
    problems = current["problems"]
    assert problems["totalCount"] == 5
    assert [e["node"]["position"] for e in problems["edges"]] == [0, 1]
    assert problems["edges"][0]["node"]["title"] == "Problem 1"
    assert problems["edges"][0]["node"]["suite"]["suiteId"] == suite.id
    assert problems["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "endCursor": problems["edges"][1]["cursor"],
    }


def test_problems_page_forward_and_backward_with_cursors(runtime: Runtime, gql: Gql) -> None:
    # given
    suite = make_suite(runtime, problems=7)
    first = gql(PROBLEMS_PAGE_QUERY, {"id": str(suite.id), "first": 3})["suite"]["problems"]

    # when
    second = gql(
        PROBLEMS_PAGE_QUERY, {"id": str(suite.id), "first": 3, "after": first["pageInfo"]["endCursor"]}
    )
    back = gql(
        PROBLEMS_PAGE_QUERY, {"id": str(suite.id), "last": 2, "before": first["pageInfo"]["endCursor"]}
    )

    # then
    page2 = second["suite"]["problems"]
    assert [e["node"]["position"] for e in page2["edges"]] == [3, 4, 5]
    assert page2["pageInfo"]["hasNextPage"] is True and page2["pageInfo"]["hasPreviousPage"] is True
    page_back = back["suite"]["problems"]
    assert [e["node"]["position"] for e in page_back["edges"]] == [0, 1]
    assert page_back["pageInfo"]["hasPreviousPage"] is False and page_back["pageInfo"]["hasNextPage"] is True


def test_suites_are_paged_in_id_order_and_reachable_as_nodes(runtime: Runtime, gql: Gql) -> None:
    # given
    older = make_suite(runtime, seed="a", activate=False)
    newer = make_suite(runtime, seed="b")

    # when
    page1 = gql(SUITES_QUERY, {"first": 1})["suites"]
    page2 = gql(SUITES_QUERY, {"first": 1, "after": page1["pageInfo"]["endCursor"]})["suites"]
    suite_id = gql("query ($id: ID!) { suite(id: $id) { id } }", {"id": str(newer.id)})["suite"]["id"]
    node = gql(NODE_QUERY, {"id": suite_id})["node"]

    # then
    assert page1["totalCount"] == 2
    assert page1["edges"][0]["node"] == {"suiteId": older.id, "isActive": False}
    assert page2["edges"][0]["node"] == {"suiteId": newer.id, "isActive": True}
    assert page2["pageInfo"]["hasNextPage"] is False
    assert node == {"__typename": "Suite", "suiteId": newer.id}


def test_missing_suite_reads_as_null(runtime: Runtime, gql: Gql) -> None:
    # given no suite at all
    # when
    data = gql('query { currentSuite { id } suite(id: "42") { id } }')

    # then
    assert data == {"currentSuite": None, "suite": None}
