from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from oro_graph.models import utcnow
from oro_graph.runtime import Runtime
from tests.factories import claim, make_eligible, make_world, submit
from tests.graphql.conftest import Gql, signed
from tests.graphql.test_agents import submit as submit_graph

CLAIM_WORK_MUTATION = """
mutation ($metrics: MetricsInput) {
  claimWork(metrics: $metrics) {
    __typename
    ... on ClaimWorkSuccess {
      codeDownloadUrl codeSha256 leaseExpiresAt run { evalRunId status agentVersion { versionNumber } }
    }
    ... on NoWorkAvailable { message }
    ... on Error { code message }
  }
}
"""

HEARTBEAT_MUTATION = """
mutation ($runId: UUID!) {
  heartbeat(runId: $runId, metrics: {cpuPct: 12.5}) {
    __typename
    ... on HeartbeatSuccess { leaseExpiresAt run { status } }
    ... on Error { code message }
  }
}
"""

REPORT_PROGRESS_MUTATION = """
mutation ($runId: UUID!, $problems: [ProblemProgressInput!]!) {
  reportProgress(runId: $runId, problems: $problems) {
    __typename
    ... on ReportProgressSuccess { results { status score } run { progressPercent } }
    ... on Error { code message }
  }
}
"""

COMPLETE_RUN_MUTATION = """
mutation ($runId: UUID!, $score: Float) {
  completeRun(runId: $runId, terminalStatus: SUCCESS, validatorScore: $score) {
    __typename
    ... on CompleteRunSuccess {
      agentVersionBecameEligible finalScore workItem { includedSuccesses isClosed }
    }
    ... on Error { code message }
  }
}
"""

UPLOAD_URL_MUTATION = """
mutation ($runId: UUID!, $problemId: UUID!, $size: Int!) {
  requestUploadUrl(runId: $runId, problemId: $problemId, contentLength: $size) {
    __typename
    ... on UploadUrlSuccess { uploadUrl logsKey method }
    ... on Error { code message }
  }
}
"""

BOARD_AFTER_QUERY = """
query ($id: ID!) {
  leaderboard { edges { node { rank agentName } } }
  topAgent { topScore }
  agentVersion(id: $id) {
    state finalScore
    runs { totalCount edges { node {
      status validatorScore validator { hotkey status } problemResults { totalCount }
    } } }
    problemMatrix { problem { position } validatorResults { status score } }
  }
}
"""

RUNS_QUERY = """
query ($filter: EvaluationRunFilter, $order: EvaluationRunOrder, $first: Int, $after: String) {
  evaluationRuns(filter: $filter, orderBy: $order, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { validatorHotkey status claimedAt } }
  }
}
"""

QUEUE_QUERY = """
query {
  runningEvaluations { totalCount edges { node { validatorHotkey progressPercent } } }
  pendingEvaluations {
    totalCount edges { node { remaining activeRuns agent { name } agentVersion { agentVersionId } } }
  }
  validators { totalCount edges { node { hotkey status currentRun { status } runs { totalCount } } } }
}
"""


def _problems(runtime: Runtime) -> list[str]:
    from oro_graph.services import suites

    suite = runtime.db.call(suites.get_current_suite)
    return [str(p.id) for p in runtime.db.call(suites.problems_for_suite, suite.id)]


def _run_as(gql: Gql, name: str, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    data = gql(document, variables, headers=signed(name))
    return next(iter(data.values()))


def test_whole_lifecycle_through_the_graph(runtime: Runtime, client: TestClient, gql: Gql) -> None:
    # given a submission made through the graph
    make_world(runtime)
    version_id = submit_graph(client, signed("Alice"), "alpha")["data"]["submitAgent"]
    assert version_id["__typename"] == "SubmitAgentSuccess"
    problems = _problems(runtime)

    # when two validators claim, heartbeat, report and complete
    scores = {"Charlie": 0.6, "Dave": 0.8}
    completions = []
    for validator, score in scores.items():
        claimed = _run_as(gql, validator, CLAIM_WORK_MUTATION, {"metrics": {"cpuPct": 50.0}})
        assert claimed["__typename"] == "ClaimWorkSuccess", claimed
        run_id = claimed["run"]["evalRunId"]
        beat = _run_as(gql, validator, HEARTBEAT_MUTATION, {"runId": run_id})
        assert beat["__typename"] == "HeartbeatSuccess" and beat["run"]["status"] == "RUNNING"
        report = [{"problemId": p, "status": "SUCCESS", "score": score} for p in problems[:3]]
        progress = _run_as(gql, validator, REPORT_PROGRESS_MUTATION, {"runId": run_id, "problems": report})
        assert progress["__typename"] == "ReportProgressSuccess"
        assert progress["run"]["progressPercent"] == 50.0
        completions.append(_run_as(gql, validator, COMPLETE_RUN_MUTATION, {"runId": run_id, "score": score}))
    version = claimed["run"]["agentVersion"]
    after = gql(BOARD_AFTER_QUERY, {"id": _version_id(gql)})

    # then
    assert version == {"versionNumber": 1}
    assert completions[0]["agentVersionBecameEligible"] is False
    assert completions[1]["agentVersionBecameEligible"] is True
    assert completions[1]["workItem"] == {"includedSuccesses": 2, "isClosed": True}
    assert round(completions[1]["finalScore"], 3) == 0.7
    assert after["leaderboard"]["edges"] == [{"node": {"rank": 1, "agentName": "alpha"}}]
    assert round(after["topAgent"]["topScore"], 3) == 0.7
    runs = after["agentVersion"]["runs"]
    assert runs["totalCount"] == 2
    assert [e["node"]["validator"]["status"] for e in runs["edges"]] == ["AVAILABLE", "AVAILABLE"]
    assert [e["node"]["problemResults"]["totalCount"] for e in runs["edges"]] == [3, 3]
    matrix = after["agentVersion"]["problemMatrix"]
    assert len(matrix) == 6
    assert [r["score"] for r in matrix[0]["validatorResults"]] == [0.6, 0.8]
    assert matrix[5]["validatorResults"] == []


def _version_id(gql: Gql) -> str:
    data = gql(
        "query { pendingEvaluations { edges { node { agentVersionId } } } "
        "leaderboard { edges { node { agentVersionId } } } }"
    )
    return data["leaderboard"]["edges"][0]["node"]["agentVersionId"]


def test_run_errors_carry_domain_codes(runtime: Runtime, gql: Gql) -> None:
    # given
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    run_id = str(claim(runtime, world.validators[0]).run.id)
    problem = _problems(runtime)[0]

    # when
    not_owner = _run_as(gql, "Dave", HEARTBEAT_MUTATION, {"runId": run_id})
    missing = _run_as(gql, "Charlie", HEARTBEAT_MUTATION, {"runId": "00000000-0000-0000-0000-000000000000"})
    no_score = _run_as(gql, "Charlie", COMPLETE_RUN_MUTATION, {"runId": run_id, "score": None})
    bad_problem = _run_as(
        gql,
        "Charlie",
        REPORT_PROGRESS_MUTATION,
        {
            "runId": run_id,
            "problems": [{"problemId": "00000000-0000-0000-0000-000000000001", "status": "SUCCESS"}],
        },
    )
    at_capacity = _run_as(gql, "Charlie", CLAIM_WORK_MUTATION)
    upload = _run_as(
        gql, "Charlie", UPLOAD_URL_MUTATION, {"runId": run_id, "problemId": problem, "size": 100}
    )
    too_large = _run_as(
        gql, "Charlie", UPLOAD_URL_MUTATION, {"runId": run_id, "problemId": problem, "size": 10**9}
    )
    as_miner = gql(CLAIM_WORK_MUTATION, headers=signed("Alice"), errors=True)

    # then
    assert (not_owner["__typename"], not_owner["code"]) == ("NotRunOwnerError", "NOT_RUN_OWNER")
    assert missing["__typename"] == "EvalRunNotFoundError"
    assert (no_score["__typename"], no_score["code"]) == ("MissingScoreError", "MISSING_SCORE")
    assert (bad_problem["__typename"], bad_problem["code"]) == ("InvalidProblemIdError", "INVALID_PROBLEM_ID")
    assert (at_capacity["__typename"], at_capacity["code"]) == ("AtCapacityError", "AT_CAPACITY")
    assert upload["__typename"] == "UploadUrlSuccess" and upload["logsKey"].startswith(f"runs/{run_id}/")
    assert upload["method"] == "PUT"
    assert too_large["__typename"] == "FileTooLargeError"
    assert as_miner["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_lapsed_lease_gets_the_same_typed_errors_as_rest(runtime: Runtime, gql: Gql) -> None:
    # given Charlie's run whose lease lapsed without a heartbeat
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    t0 = utcnow() - timedelta(seconds=runtime.settings.lease_seconds + 5)
    run_id = str(claim(runtime, world.validators[0], now=t0).run.id)
    problem = _problems(runtime)[0]

    # when Charlie still reports, completes, asks for an upload URL and beats
    entries = [{"problemId": problem, "status": "SUCCESS", "score": 0.5}]
    report = _run_as(gql, "Charlie", REPORT_PROGRESS_MUTATION, {"runId": run_id, "problems": entries})
    done = _run_as(gql, "Charlie", COMPLETE_RUN_MUTATION, {"runId": run_id, "score": 0.5})
    upload = _run_as(gql, "Charlie", UPLOAD_URL_MUTATION, {"runId": run_id, "problemId": problem, "size": 10})
    beat = _run_as(gql, "Charlie", HEARTBEAT_MUTATION, {"runId": run_id})

    # then the run is over (the service's rule: what REST answers as 409s the clients declare)
    assert (report["__typename"], report["code"]) == ("RunAlreadyCompleteError", "RUN_ALREADY_COMPLETE")
    assert (done["__typename"], done["code"]) == ("RunAlreadyCompleteError", "RUN_ALREADY_COMPLETE")
    assert (upload["__typename"], upload["code"]) == ("NotRunOwnerError", "NOT_RUN_OWNER")
    assert (beat["__typename"], beat["code"]) == ("LeaseExpiredError", "LEASE_EXPIRED")
    assert all("lapsed" in answer["message"] for answer in (report, done, upload, beat))


def test_claim_without_work_is_no_work_available(runtime: Runtime, gql: Gql) -> None:
    # given
    make_world(runtime)

    # when
    result = _run_as(gql, "Charlie", CLAIM_WORK_MUTATION)

    # then
    assert result["__typename"] == "NoWorkAvailable"


def test_evaluation_runs_filter_order_and_keyset_pages(runtime: Runtime, gql: Gql) -> None:
    # given three eligible versions: six successful runs, two per validator pair
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "alpha", [0.5, 0.5])
    make_eligible(runtime, world, world.miners[1], "bravo", [0.6, 0.6])
    order = {"field": "CLAIMED_AT", "direction": "DESC"}

    # when
    page1 = gql(RUNS_QUERY, {"first": 3, "order": order})["evaluationRuns"]
    page2 = gql(RUNS_QUERY, {"first": 3, "order": order, "after": page1["pageInfo"]["endCursor"]})[
        "evaluationRuns"
    ]
    charlie = gql(RUNS_QUERY, {"filter": {"validatorHotkey": world.validators[0], "status": ["SUCCESS"]}})
    wrong_order = gql(RUNS_QUERY, {"first": 3, "after": page1["pageInfo"]["endCursor"]}, errors=True)

    # then
    assert page1["totalCount"] == 4
    claimed = [e["node"]["claimedAt"] for e in page1["edges"] + page2["edges"]]
    assert len(claimed) == 4 and claimed == sorted(claimed, reverse=True)
    assert page1["pageInfo"]["hasNextPage"] is True and page2["pageInfo"]["hasNextPage"] is False
    assert charlie["evaluationRuns"]["totalCount"] == 2
    assert {e["node"]["validatorHotkey"] for e in charlie["evaluationRuns"]["edges"]} == {world.validators[0]}
    assert wrong_order["errors"][0]["extensions"]["code"] == "BAD_PAGE_ARGUMENT"
    assert "orderBy" in wrong_order["errors"][0]["message"]


def test_running_pending_and_validators(runtime: Runtime, gql: Gql) -> None:
    # given one run in flight on Charlie and one version waiting
    world = make_world(runtime)
    submit(runtime, world.miners[0], "alpha")
    claim(runtime, world.validators[0])
    submit(runtime, world.miners[1], "bravo")

    # when
    data = gql(QUEUE_QUERY)

    # then
    assert data["runningEvaluations"]["totalCount"] == 1
    assert data["runningEvaluations"]["edges"][0]["node"] == {
        "validatorHotkey": world.validators[0],
        "progressPercent": 0.0,
    }
    pending = [e["node"] for e in data["pendingEvaluations"]["edges"]]
    assert [(p["agent"]["name"], p["activeRuns"], p["remaining"]) for p in pending] == [
        ("alpha", 1, 2),
        ("bravo", 0, 2),
    ]
    # pending versions are not released: the public gets their agent, not their record
    assert [p["agentVersion"] for p in pending] == [None, None]
    validators = {e["node"]["hotkey"]: e["node"] for e in data["validators"]["edges"]}
    assert data["validators"]["totalCount"] == 3
    assert validators[world.validators[0]]["status"] == "EVALUATING"
    assert validators[world.validators[0]]["currentRun"] == {"status": "CLAIMED"}
    assert validators[world.validators[0]]["runs"]["totalCount"] == 1
    assert validators[world.validators[1]]["currentRun"] is None
