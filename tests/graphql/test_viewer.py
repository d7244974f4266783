"""`viewer`: the signed caller's own miner or validator, never cached for anyone else."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from oro_graph.models import RunStatus, utcnow
from oro_graph.runtime import Runtime
from oro_graph.services import agents, races
from tests.factories import claim, complete, make_eligible, make_world, submit
from tests.graphql.conftest import Gql, signed

MINER_VIEWER = """
query ($recent: Int) {
  viewer(recent: $recent) {
    hotkey name role validator { hotkey }
    miner {
      canSubmit nextAllowedAt
      inference { readiness credentials { provider connected } }
      agents { agent { name } versions { versionNumber state releaseState } latestVersion { versionNumber } }
      recentFailures { status failureReason agentVersion { versionNumber } }
      miner { hotkey }
    }
  }
}
"""

VALIDATOR_VIEWER = """
query {
  viewer {
    hotkey role miner { hotkey }
    validator {
      currentRun { status agent { name } }
      lease { runId expiresAt secondsRemaining }
      recentRuns { status validatorScore }
      reliability { runs successRate failedRate }
      validator { hotkey status }
    }
  }
}
"""


def test_viewer_of_a_miner_has_its_versions_cooldown_credentials_and_failures(
    runtime: Runtime, gql: Gql
) -> None:
    # given Alice submitted twice (the second within the cooldown window of now), and one run failed
    world = make_world(runtime)
    cooldown = runtime.settings.submission_cooldown_seconds
    long_ago = utcnow() - timedelta(seconds=cooldown * 3)
    submit(runtime, world.miners[0], "alpha", now=long_ago)
    c = claim(runtime, world.validators[0])
    complete(runtime, c.run.id, world.validators[0], score=None, status=RunStatus.FAILED)
    latest = submit(runtime, world.miners[0], "alpha")
    submit(runtime, world.miners[1], "bobs", now=long_ago)  # Bob's agent is not Alice's business

    # when
    viewer = gql(MINER_VIEWER, {"recent": 5}, headers=signed("Alice"))["viewer"]

    # then
    assert viewer["hotkey"] == world.miners[0] and viewer["role"] == "MINER" and viewer["validator"] is None
    miner = viewer["miner"]
    assert miner["canSubmit"] is False  # the second submission started a cooldown
    expected_next = runtime.db.call(agents.next_allowed_at, world.miners[0], runtime.settings)
    assert miner["nextAllowedAt"].startswith(expected_next.isoformat()[:19])
    assert latest.next_allowed_at is not None
    assert miner["inference"]["readiness"] == "NO_CREDENTIAL"
    assert {c["provider"] for c in miner["inference"]["credentials"]} == {"chutes", "openrouter"}
    assert miner["agents"] == [
        {
            "agent": {"name": "alpha"},
            "versions": [
                {"versionNumber": 1, "state": "QUEUED", "releaseState": "HIDDEN"},
                {"versionNumber": 2, "state": "QUEUED", "releaseState": "HIDDEN"},
            ],
            "latestVersion": {"versionNumber": 2},
        }
    ]
    # its own unreleased version is shown to it through the failed run's link
    assert [(f["status"], f["agentVersion"]) for f in miner["recentFailures"]] == [
        ("FAILED", {"versionNumber": 1})
    ]
    assert miner["miner"] == {"hotkey": world.miners[0]}


def test_viewer_of_a_miner_that_may_submit(runtime: Runtime, gql: Gql) -> None:
    # given Bob never submitted
    world = make_world(runtime)

    # when
    miner = gql(MINER_VIEWER, headers=signed("Bob"))["viewer"]["miner"]

    # then
    assert miner["canSubmit"] is True and miner["nextAllowedAt"] is None
    assert miner["agents"] == [] and miner["recentFailures"] == [] and miner["miner"] is None
    assert world.miners[1]


def test_viewer_of_a_validator_has_its_lease_outcomes_and_reliability(runtime: Runtime, gql: Gql) -> None:
    # given Charlie finished one run and holds another
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    submit(runtime, world.miners[1], "beta")
    first = claim(runtime, world.validators[0])
    complete(runtime, first.run.id, world.validators[0], score=0.75)
    held = claim(runtime, world.validators[0])

    # when
    viewer = gql(VALIDATOR_VIEWER, headers=signed("Charlie"))["viewer"]

    # then
    assert viewer["role"] == "VALIDATOR" and viewer["miner"] is None
    validator = viewer["validator"]
    assert validator["currentRun"]["status"] == "CLAIMED"
    assert validator["lease"]["runId"] == str(held.run.id)
    assert 0 < validator["lease"]["secondsRemaining"] <= runtime.settings.lease_seconds
    assert [r["status"] for r in validator["recentRuns"]] == ["CLAIMED", "SUCCESS"]
    assert validator["recentRuns"][1]["validatorScore"] == 0.75
    assert validator["reliability"]["runs"] == 2 and validator["reliability"]["successRate"] == 0.5
    assert validator["validator"] == {"hotkey": world.validators[0], "status": "EVALUATING"}


def test_viewer_refuses_unsigned_and_unregistered_callers(runtime: Runtime, gql: Gql) -> None:
    # given
    make_world(runtime)

    # when
    unsigned = gql(MINER_VIEWER, errors=True)
    stranger = gql(MINER_VIEWER, headers=signed("Ferdie"), errors=True)

    # then
    assert unsigned["data"] is None
    assert [e["extensions"]["code"] for e in unsigned["errors"]] == ["UNAUTHENTICATED"]
    assert [e["extensions"]["code"] for e in stranger["errors"]] == ["FORBIDDEN"]


def test_viewer_answers_are_never_cached_for_another_caller(runtime: Runtime, client: TestClient) -> None:
    # given Alice read her viewer twice
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    body = {"query": MINER_VIEWER, "variables": {}}
    answers = [client.post("/graphql", json=body, headers=signed("Alice")) for _ in range(2)]

    # when Bob and an unsigned caller send the very same document
    bob = client.post("/graphql", json=body, headers=signed("Bob"))
    anonymous = [client.post("/graphql", json=body) for _ in range(2)]

    # then no signed answer went through the cache, an unsigned one is an error (never stored),
    # and each caller got its own answer
    assert all("x-cache" not in r.headers for r in [*answers, bob])
    assert [r.headers.get("x-cache") for r in anonymous] == ["miss", "miss"]
    assert all(r.headers.get("etag") is None for r in [*answers, bob])
    assert "public" not in (answers[0].headers.get("cache-control") or "")
    assert answers[0].json()["data"]["viewer"]["hotkey"] == world.miners[0]
    assert bob.json()["data"]["viewer"]["hotkey"] == world.miners[1]
    assert bob.json()["data"]["viewer"]["miner"]["agents"] == []
    assert anonymous[1].json()["data"] is None


def test_viewer_of_a_miner_shows_its_race_selection(runtime: Runtime, gql: Gql) -> None:
    # given Alice pinned an eligible version to race with
    world = make_world(runtime)
    version = make_eligible(runtime, world, world.miners[0], "alpha", [0.6, 0.7])
    query = "query { viewer { miner { raceSelectionVersionId raceSelection { versionNumber state } } } }"
    before = gql(query, headers=signed("Alice"))["viewer"]["miner"]
    runtime.db.call(
        races.pin_selection, hotkey=world.miners[0], agent_version_id=version, settings=runtime.settings
    )

    # when
    after = gql(query, headers=signed("Alice"))["viewer"]["miner"]

    # then
    assert before == {"raceSelectionVersionId": None, "raceSelection": None}
    assert after == {
        "raceSelectionVersionId": str(version),
        "raceSelection": {"versionNumber": 1, "state": "ELIGIBLE"},
    }
