"""Reliability fields agree with the services' SQL aggregates and batch across validators."""

from __future__ import annotations

from datetime import timedelta

import pytest

from oro_graph.models import Role, RunStatus, utcnow
from oro_graph.services import evaluations, reliability
from tests.factories import claim, complete, make_eligible, make_world, register, submit
from tests.graphql.conftest import Gql

VALIDATORS = """
query($window: TimeWindow) {
  validators(first: 50) {
    edges { node { hotkey reliability(window: $window) {
      runs staleRate successRate meanDeltaVsPeers deltaSd versionsCompared durationP50Seconds
      statuses { status count }
    } } }
  }
}
"""

VARIANCE = """
query { currentSuite { validatorVariance { versions meanSpread maxSpread buckets { label versions }
  validators { hotkey meanDelta } } } }
"""

INTERVALS = """
query { leaderboard(first: 10) { edges { node {
  agentVersion { agentVersionId scoreInterval { mean lower upper problems } }
} } } }
"""


def _world(rt):
    world = make_world(rt)
    t0 = utcnow() - timedelta(days=2)
    make_eligible(rt, world, world.miners[0], "a", [0.40, 0.52], now=t0)
    make_eligible(rt, world, world.miners[1], "b", [0.70, 0.95], now=t0 + timedelta(hours=1))
    submit(rt, register(rt, "Ferdie"), "c", now=t0 + timedelta(hours=2))
    c = claim(rt, world.validators[2], now=t0 + timedelta(hours=2))
    complete(
        rt,
        c.run.id,
        world.validators[2],
        status=RunStatus.FAILED,
        score=None,
        now=t0 + timedelta(hours=2, minutes=4),
    )
    claim(rt, world.validators[0], now=t0 + timedelta(hours=3))
    rt.db.call(evaluations.expire_leases, now=t0 + timedelta(hours=4))
    return world


def test_validator_reliability_matches_the_service(runtime, gql: Gql) -> None:
    world = _world(runtime)
    data = gql(VALIDATORS)
    got = {e["node"]["hotkey"]: e["node"]["reliability"] for e in data["validators"]["edges"]}
    expected = runtime.db.call(reliability.validator_reliability, world.validators)
    charlie = got[world.validators[0]]
    assert charlie["runs"] == 3 and charlie["staleRate"] == pytest.approx(1 / 3)
    assert charlie["meanDeltaVsPeers"] == pytest.approx(expected[world.validators[0]].mean_delta)
    assert {s["status"]: s["count"] for s in charlie["statuses"]} == {"SUCCESS": 2, "STALE": 1}
    assert got[world.validators[2]]["durationP50Seconds"] == pytest.approx(240, abs=1)


def test_reliability_window_is_applied(runtime, gql: Gql) -> None:
    world = _world(runtime)
    since = (utcnow() - timedelta(days=2) + timedelta(hours=2, minutes=30)).isoformat()
    data = gql(VALIDATORS, {"window": {"since": since}})
    got = {e["node"]["hotkey"]: e["node"]["reliability"] for e in data["validators"]["edges"]}
    assert got[world.validators[0]]["runs"] == 1 and got[world.validators[0]]["meanDeltaVsPeers"] is None


def test_reliability_is_batched_across_validators(runtime, client) -> None:
    # given many validators, the statement count does not grow with them
    from tests.graphql.conftest import _client, make_gql

    _world(runtime)
    debug = make_gql(_client(runtime, graphql_debug=True))

    def statements() -> int:
        body = debug(VALIDATORS, errors=True)
        return body["extensions"]["sql"]["statements"]

    few = statements()
    for i in range(8):
        register(runtime, f"extra{i}", Role.VALIDATOR)
    assert statements() == few


def test_suite_variance_and_score_intervals(runtime, gql: Gql) -> None:
    _world(runtime)
    variance = gql(VARIANCE)["currentSuite"]["validatorVariance"]
    assert variance["versions"] == 2 and variance["maxSpread"] == pytest.approx(0.25)
    assert {b["label"]: b["versions"] for b in variance["buckets"]}[">=0.1"] == 2
    entries = gql(INTERVALS)["leaderboard"]["edges"]
    # make_eligible reports no per-problem results, so there is nothing to bootstrap yet
    assert all(e["node"]["agentVersion"]["scoreInterval"] is None for e in entries)


def test_score_interval_of_a_version_with_results(runtime, gql: Gql) -> None:
    from tests.rest.seed import seed

    seeded = seed(runtime)  # alpha: problem 1 scored 0.6 by Charlie and 0.8 by Dave, the rest unreported
    entries = gql(INTERVALS)["leaderboard"]["edges"]
    interval = entries[0]["node"]["agentVersion"]["scoreInterval"]
    assert entries[0]["node"]["agentVersion"]["agentVersionId"] == str(seeded.alpha)
    assert interval["problems"] == 1 and interval["mean"] == pytest.approx(0.7)
    assert interval["lower"] == pytest.approx(0.7) and interval["upper"] == pytest.approx(0.7)
