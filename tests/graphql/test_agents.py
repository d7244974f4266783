from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from oro_graph.runtime import Runtime
from tests.factories import AGENT_SOURCE, make_eligible, make_world
from tests.factories import submit as submit_service
from tests.graphql.conftest import Gql, signed

SUBMIT_AGENT_MUTATION = """
mutation ($name: String!, $file: Upload!) {
  submitAgent(agentName: $name, file: $file) {
    __typename
    ... on SubmitAgentSuccess { admissionStatus admissionReason agentVersion { versionNumber state } }
    ... on CooldownActiveError { code message remainingSeconds }
    ... on Error { code message }
  }
}
"""

MINER_QUERY = """
query ($hotkey: String!) {
  miner(hotkey: $hotkey) {
    hotkey
    agents(first: 5) {
      totalCount
      edges { node { name latestVersion { versionNumber } versions { totalCount edges { node {
        versionNumber state workItem { requiredSuccesses remaining } } } } } }
    }
  }
}
"""

STORE_CREDENTIAL_MUTATION = """
mutation ($token: String!) {
  storeInferenceCredential(token: $token) {
    __typename
    ... on StoreInferenceCredentialSuccess { connected }
    ... on Error { code }
  }
}
"""

ARTIFACT_DOWNLOAD_MUTATION = """
mutation ($id: UUID!) {
  requestArtifactDownload(artifactType: AGENT_CODE, agentVersionId: $id) {
    __typename
    ... on ArtifactDownloadSuccess { downloadUrl expiresAt }
    ... on Error { code message }
  }
}
"""


def submit(
    client: TestClient,
    headers: dict[str, str],
    name: str,
    content: bytes = AGENT_SOURCE,
    file_name: str = "agent.py",
) -> dict[str, Any]:
    """The GraphQL multipart request spec: operations, map, then the file part."""
    operations = {"query": SUBMIT_AGENT_MUTATION, "variables": {"name": name, "file": None}}
    response = client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": (file_name, content, "text/x-python")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_submit_agent_creates_a_version_reachable_from_the_miner(
    runtime: Runtime, client: TestClient, gql: Gql
) -> None:
    # given
    world = make_world(runtime)
    alice = world.miners[0]

    # when
    body = submit(client, signed("Alice"), "alpha")
    miner = gql(MINER_QUERY, {"hotkey": alice})["miner"]

    # then
    result = body["data"]["submitAgent"]
    assert result == {
        "__typename": "SubmitAgentSuccess",
        "admissionStatus": "ACCEPTED",
        "admissionReason": None,
        "agentVersion": {"versionNumber": 1, "state": "QUEUED"},
    }
    agents = miner["agents"]
    assert agents["totalCount"] == 1
    agent = agents["edges"][0]["node"]
    # The signed owner got its version back; the public sees the agent but not the unreleased version.
    assert agent["name"] == "alpha" and agent["latestVersion"] is None
    assert agent["versions"] == {"totalCount": 0, "edges": []}


def test_submit_agent_errors_are_typed_union_members(runtime: Runtime, client: TestClient) -> None:
    # given
    make_world(runtime)
    submit(client, signed("Alice"), "alpha")

    # when
    cooldown = submit(client, signed("Alice"), "alpha")["data"]["submitAgent"]
    bad_name = submit(client, signed("Bob"), "no spaces allowed")["data"]["submitAgent"]
    bad_file = submit(client, signed("Bob"), "bravo", b"def broken(:\n")["data"]["submitAgent"]

    # then
    assert cooldown["__typename"] == "CooldownActiveError"
    assert cooldown["code"] == "COOLDOWN_ACTIVE"
    assert 3590 <= cooldown["remainingSeconds"] <= 3600
    assert (bad_name["__typename"], bad_name["code"]) == ("InvalidAgentNameError", "INVALID_AGENT_NAME")
    assert (bad_file["__typename"], bad_file["code"]) == ("InvalidFileError", "INVALID_FILE")
    assert "line 1" in bad_file["message"]


def test_an_agent_file_must_be_named_like_a_python_module(runtime: Runtime, client: TestClient) -> None:
    # given
    make_world(runtime)

    # when Bob uploads valid Python under names that are not *.py, then as agent.py
    refused = [
        submit(client, signed("Bob"), "bravo", file_name=name)["data"]["submitAgent"]
        for name in ("agent.txt", "agent.py.zip", "agent", ".py")
    ]
    accepted = submit(client, signed("Bob"), "bravo", file_name="Agent.PY")["data"]["submitAgent"]

    # then each refusal is INVALID_FILE saying what is expected, and no cooldown started before the success
    for answer in refused:
        assert (answer["__typename"], answer["code"]) == ("InvalidFileError", "INVALID_FILE")
        assert ".py" in answer["message"]
    assert accepted["__typename"] == "SubmitAgentSuccess", accepted


def test_parser_bombs_are_typed_invalid_file_errors_and_start_no_cooldown(
    runtime: Runtime, client: TestClient
) -> None:
    # given: files on which ast.parse raises MemoryError and RecursionError
    make_world(runtime)
    bombs = [b"-" * 100_000 + b"1", b"x" + b"[0]" * 300_000]

    # when
    refused = [submit(client, signed("Bob"), "bomb", bomb) for bomb in bombs]
    accepted = submit(client, signed("Bob"), "bravo")["data"]["submitAgent"]

    # then: each is the mutation's typed error with a reason, and Bob's next file is accepted at once
    for body in refused:
        assert "errors" not in body, body
        result = body["data"]["submitAgent"]
        assert (result["__typename"], result["code"]) == ("InvalidFileError", "INVALID_FILE")
        assert "parse" in result["message"]
    assert accepted["__typename"] == "SubmitAgentSuccess" and accepted["admissionStatus"] == "ACCEPTED"


def test_unsigned_or_replayed_submission_is_unauthenticated(runtime: Runtime, client: TestClient) -> None:
    # given
    make_world(runtime)
    headers = signed("Alice")
    submit(client, headers, "alpha")

    # when
    unsigned = submit(client, {}, "alpha")
    replayed = submit(client, headers, "alpha")

    # then
    for body in (unsigned, replayed):
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "X-Signature" in unsigned["errors"][0]["message"]
    assert "nonce" in replayed["errors"][0]["message"]


def test_store_inference_credential_is_for_miners_only(runtime: Runtime, gql: Gql) -> None:
    # given
    make_world(runtime)

    # when
    stored = gql(STORE_CREDENTIAL_MUTATION, {"token": "refresh-token"}, headers=signed("Alice"))
    refused = gql(
        STORE_CREDENTIAL_MUTATION, {"token": "refresh-token"}, headers=signed("Charlie"), errors=True
    )
    empty = gql(STORE_CREDENTIAL_MUTATION, {"token": "  "}, headers=signed("Alice"))

    # then
    assert stored["storeInferenceCredential"] == {
        "__typename": "StoreInferenceCredentialSuccess",
        "connected": True,
    }
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert refused["data"] is None
    assert empty["storeInferenceCredential"] == {"__typename": "ValidationError", "code": "VALIDATION_ERROR"}


def test_artifact_download_needs_a_released_version(runtime: Runtime, gql: Gql) -> None:
    # given
    world = make_world(runtime)
    eligible = make_eligible(runtime, world, world.miners[0], "alpha", [0.5, 0.5])
    queued = submit_service(runtime, world.miners[1], "bravo").agent_version_id

    # when
    released = gql(ARTIFACT_DOWNLOAD_MUTATION, {"id": str(eligible)})["requestArtifactDownload"]
    hidden = gql(ARTIFACT_DOWNLOAD_MUTATION, {"id": str(queued)})["requestArtifactDownload"]
    unknown = gql(ARTIFACT_DOWNLOAD_MUTATION, {"id": "00000000-0000-0000-0000-000000000000"})[
        "requestArtifactDownload"
    ]

    # then
    assert released["__typename"] == "ArtifactDownloadSuccess"
    assert released["downloadUrl"].startswith("http://testserver/artifacts/agents/")
    assert (hidden["__typename"], hidden["code"]) == ("ArtifactNotReleasedError", "ARTIFACT_NOT_RELEASED")
    assert unknown["__typename"] == "AgentVersionNotFoundError"


def test_submit_rate_limit_is_shared_with_rest(runtime: Runtime) -> None:
    # given the default budget of one submission per minute per hotkey, and no cooldown
    from tests.graphql.conftest import _client

    client = _client(runtime, submit_rate_limit="1/minute", submission_cooldown_seconds=0)
    make_world(runtime)
    first = submit(client, signed("Alice"), "alpha")["data"]["submitAgent"]
    # when the same hotkey submits again within the minute
    second = submit(client, signed("Alice"), "beta")["data"]["submitAgent"]
    # then the graph refuses it like the REST path does
    assert first["__typename"] == "SubmitAgentSuccess"
    assert (second["__typename"], second["code"]) == ("RateLimitExceededError", "RATE_LIMIT_EXCEEDED")
