from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oro_graph.runtime import Runtime
from tests.factories import make_eligible, make_world
from tests.graphql.conftest import Gql

LEADERBOARD_QUERY = """
query ($first: Int, $after: String, $search: String, $asOf: DateTime) {
  leaderboard(first: $first, after: $after, search: $search, asOf: $asOf) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        rank agentName minerHotkey finalScore isCurrentTop wasTop
        agentVersion { versionNumber agent { name miner { hotkey } } }
      }
    }
  }
}
"""

TOP_AGENT_QUERY = """
query ($asOf: DateTime) {
  topAgent(asOf: $asOf) { topMinerHotkey topScore agentVersion { agentVersionId } }
  topHistory { totalCount edges { node { score replacedAt agentVersion { agent { name } } } } }
}
"""

VERSION_RANK_QUERY = """
query ($id: ID!, $asOf: DateTime) {
  agentVersion(id: $id) {
    now: rank
    then: rank(asOf: $asOf)
    leaderboardEntry { rank isCurrentTop }
  }
}
"""


def _board(runtime: Runtime) -> tuple[object, object, datetime]:
    """Alice's agent is eligible (0.5) two hours ago, Bob's (0.9) one hour ago: between them, Alice led."""
    world = make_world(runtime)
    now = datetime.now(UTC)
    alice = make_eligible(runtime, world, world.miners[0], "alpha", [0.4, 0.6], now=now - timedelta(hours=2))
    bob = make_eligible(runtime, world, world.miners[1], "bravo", [0.9, 0.9], now=now - timedelta(hours=1))
    return alice, bob, now - timedelta(minutes=90)


def test_leaderboard_ranks_best_score_first_with_edges(runtime: Runtime, gql: Gql) -> None:
    # given
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "alpha", [0.4, 0.6])
    make_eligible(runtime, world, world.miners[1], "bravo", [0.9, 0.7])

    # when
    board = gql(LEADERBOARD_QUERY, {"first": 10})["leaderboard"]

    # then
    assert board["totalCount"] == 2
    nodes = [e["node"] for e in board["edges"]]
    assert [(n["rank"], n["agentName"], round(n["finalScore"], 3)) for n in nodes] == [
        (1, "bravo", 0.8),
        (2, "alpha", 0.5),
    ]
    assert nodes[0]["isCurrentTop"] is True and nodes[1]["isCurrentTop"] is False
    assert nodes[0]["agentVersion"]["agent"] == {"name": "bravo", "miner": {"hotkey": world.miners[1]}}


def test_leaderboard_pages_with_keyset_cursors_and_search_keeps_ranks(runtime: Runtime, gql: Gql) -> None:
    # given
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "alpha", [0.4, 0.6])
    make_eligible(runtime, world, world.miners[1], "bravo", [0.9, 0.7])

    # when
    first = gql(LEADERBOARD_QUERY, {"first": 1})["leaderboard"]
    second = gql(LEADERBOARD_QUERY, {"first": 1, "after": first["pageInfo"]["endCursor"]})["leaderboard"]
    searched = gql(LEADERBOARD_QUERY, {"search": "ALP"})["leaderboard"]

    # then
    assert [e["node"]["agentName"] for e in first["edges"]] == ["bravo"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [(e["node"]["rank"], e["node"]["agentName"]) for e in second["edges"]] == [(2, "alpha")]
    assert second["pageInfo"]["hasNextPage"] is False
    assert searched["totalCount"] == 1
    assert [(e["node"]["rank"], e["node"]["agentName"]) for e in searched["edges"]] == [(2, "alpha")]


def test_leaderboard_as_of_reproduces_a_past_board(runtime: Runtime, gql: Gql) -> None:
    # given
    _, _, between = _board(runtime)

    # when
    past = gql(LEADERBOARD_QUERY, {"asOf": between.isoformat()})["leaderboard"]
    present = gql(LEADERBOARD_QUERY, {})["leaderboard"]

    # then
    assert [
        (e["node"]["rank"], e["node"]["agentName"], e["node"]["isCurrentTop"]) for e in past["edges"]
    ] == [(1, "alpha", True)]
    assert [(e["node"]["rank"], e["node"]["agentName"]) for e in present["edges"]] == [
        (1, "bravo"),
        (2, "alpha"),
    ]
    assert present["edges"][1]["node"]["wasTop"] is True


def test_top_agent_and_history_as_of(runtime: Runtime, gql: Gql) -> None:
    # given
    alice, bob, between = _board(runtime)

    # when
    then = gql(TOP_AGENT_QUERY, {"asOf": between.isoformat()})
    now = gql(TOP_AGENT_QUERY, {})

    # then
    assert then["topAgent"]["agentVersion"]["agentVersionId"] == str(alice)
    assert then["topAgent"]["topScore"] == 0.5
    assert now["topAgent"]["agentVersion"]["agentVersionId"] == str(bob)
    history = now["topHistory"]
    assert history["totalCount"] == 2
    assert [e["node"]["agentVersion"]["agent"]["name"] for e in history["edges"]] == ["alpha", "bravo"]
    assert (
        history["edges"][0]["node"]["replacedAt"] is not None
        and history["edges"][1]["node"]["replacedAt"] is None
    )


def test_agent_version_rank_as_of(runtime: Runtime, gql: Gql) -> None:
    # given
    alice, _, between = _board(runtime)

    # when
    version = gql(VERSION_RANK_QUERY, {"id": str(alice), "asOf": between.isoformat()})["agentVersion"]

    # then
    assert version == {"now": 2, "then": 1, "leaderboardEntry": {"rank": 2, "isCurrentTop": False}}


def test_leaderboard_of_unknown_suite_is_a_coded_error(runtime: Runtime, gql: Gql) -> None:
    # given
    make_world(runtime)

    # when
    body = gql("query { leaderboard(suiteId: 999) { totalCount } }", errors=True)

    # then
    assert body["errors"][0]["extensions"]["code"] == "SUITE_NOT_FOUND"
    assert "999" in body["errors"][0]["message"]
