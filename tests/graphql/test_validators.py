from __future__ import annotations

from oro_graph.runtime import Runtime
from tests.factories import claim, make_world, submit
from tests.graphql.conftest import Gql, signed

VALIDATOR_QUERY = """
query ($hotkey: String!) {
  validator(hotkey: $hotkey) {
    id hotkey name status cpuPct lastClaimAt
    currentRun { status agent { name } agentVersion { agentVersionId } validator { hotkey } }
    runs(first: 5) { totalCount edges { node { status } } }
  }
}
"""

NODES_QUERY = """
query ($ids: [ID!]!) {
  nodes(ids: $ids) { __typename ... on Validator { hotkey } ... on EvaluationRun { status } }
}
"""

HEARTBEAT_MUTATION = """
mutation ($runId: UUID!) {
  heartbeat(runId: $runId, metrics: {cpuPct: 42.0, dockerContainerCount: 3}) { __typename }
}
"""


def test_validator_with_its_current_run_and_metrics(runtime: Runtime, gql: Gql) -> None:
    # given Charlie holds a run and reported metrics with a heartbeat
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    run = claim(runtime, world.validators[0]).run
    gql(HEARTBEAT_MUTATION, {"runId": str(run.id)}, headers=signed("Charlie"))

    # when
    charlie = gql(VALIDATOR_QUERY, {"hotkey": world.validators[0]})["validator"]
    dave = gql(VALIDATOR_QUERY, {"hotkey": world.validators[1]})["validator"]

    # then
    assert charlie["name"] == "Charlie" and charlie["status"] == "EVALUATING"
    assert charlie["cpuPct"] == 42.0 and charlie["lastClaimAt"] is not None
    assert charlie["currentRun"] == {
        "status": "RUNNING",
        "agent": {"name": "alpha"},
        "agentVersion": None,  # not released: the public does not get the version's record
        "validator": {"hotkey": world.validators[0]},
    }
    assert charlie["runs"]["totalCount"] == 1
    assert dave["status"] == "AVAILABLE" and dave["currentRun"] is None and dave["runs"]["totalCount"] == 0


def test_validators_and_runs_resolve_as_nodes(runtime: Runtime, gql: Gql) -> None:
    # given
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    run = claim(runtime, world.validators[0]).run
    validator_id = gql(VALIDATOR_QUERY, {"hotkey": world.validators[0]})["validator"]["id"]
    run_id = gql("query ($id: ID!) { evaluationRun(id: $id) { id } }", {"id": str(run.id)})["evaluationRun"][
        "id"
    ]

    # when
    nodes = gql(NODES_QUERY, {"ids": [validator_id, run_id]})["nodes"]

    # then
    assert nodes == [
        {"__typename": "Validator", "hotkey": world.validators[0]},
        {"__typename": "EvaluationRun", "status": "CLAIMED"},
    ]


def test_unknown_validator_is_null(runtime: Runtime, gql: Gql) -> None:
    # given
    world = make_world(runtime)

    # when
    data = gql(VALIDATOR_QUERY, {"hotkey": world.miners[0]})

    # then a miner's hotkey is not a validator
    assert data["validator"] is None
