"""Subscriptions: a run's events and the board's changes, replayed from cursors, over
graphql-transport-ws and SSE, including changes made by another server process."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from oro_graph.auth import sign_headers
from oro_graph.graphql.context import Context
from oro_graph.graphql.schema import schema
from oro_graph.models import ProblemStatus
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, suites
from tests.factories import claim, complete, keypair, make_eligible, make_world, submit
from tests.support.ports import start_serve, wait_healthy

RUN_PROGRESS = """
subscription($runId: UUID!, $after: String) {
  runProgress(runId: $runId, after: $after) {
    __typename
    ... on LoggedEvent { cursor }
    ... on ProblemScored { problemId score }
    ... on RunStatusChanged { previous status }
    ... on RunFinished { status validatorScore becameEligible }
  }
}
"""

BOARD = """
subscription($after: String) {
  leaderboardChanges(after: $after) {
    __typename
    ... on LoggedEvent { cursor }
    ... on LeaderboardEntered { rank finalScore agentVersion { agentVersionId } }
    ... on TopAgentChanged { agentVersionId }
  }
}
"""


def _lifecycle(rt: Runtime, run_id: Any, validator: str) -> None:
    problem = rt.db.call(suites.problems_for_suite, 1)[0]
    rt.db.call(evaluations.heartbeat, run_id=run_id, validator_hotkey=validator, settings=rt.settings)
    rt.db.call(
        evaluations.update_progress,
        run_id=run_id,
        validator_hotkey=validator,
        problems=[evaluations.ProblemUpdate(problem.id, ProblemStatus.SUCCESS, score=0.8)],
    )
    complete(rt, run_id, validator, score=0.8)


async def _collect(
    rt: Runtime, document: str, variables: dict[str, Any], *, until: str, limit: int = 50
) -> list[dict]:
    stream = await schema.subscribe(
        document, variable_values=variables, context_value=Context(rt, headers={})
    )
    assert not hasattr(stream, "errors"), stream
    got: list[dict] = []
    async for result in stream:
        assert result.errors is None, result.errors
        event = next(iter(result.data.values()))
        got.append(event)
        if event["__typename"] == until or len(got) >= limit:
            break
    return got


def test_run_progress_streams_live_events_until_the_run_ends(runtime: Runtime) -> None:
    # given a claimed run and a subscriber
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    # when the validator works while we listen
    writer = threading.Timer(0.3, _lifecycle, args=(runtime, c.run.id, world.validators[0]))
    writer.start()
    events = asyncio.run(_collect(runtime, RUN_PROGRESS, {"runId": str(c.run.id)}, until="RunFinished"))
    writer.join()
    # then every step arrived in order and the stream ended with the run
    kinds = [e["__typename"] for e in events]
    assert kinds == ["RunClaimed", "RunStatusChanged", "RunHeartbeat", "ProblemScored", "RunFinished"]
    assert events[3]["score"] == 0.8
    assert events[4] == {**events[4], "status": "SUCCESS", "validatorScore": 0.8, "becameEligible": False}
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(cursors)


def test_run_progress_resumes_after_a_cursor(runtime: Runtime) -> None:
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    _lifecycle(runtime, c.run.id, world.validators[0])
    everything = asyncio.run(_collect(runtime, RUN_PROGRESS, {"runId": str(c.run.id)}, until="RunFinished"))
    # a client that saw the first two events reconnects with the second's cursor
    rest = asyncio.run(
        _collect(
            runtime,
            RUN_PROGRESS,
            {"runId": str(c.run.id), "after": everything[1]["cursor"]},
            until="RunFinished",
        )
    )
    assert rest == everything[2:]


def test_unknown_run_is_an_error(runtime: Runtime) -> None:
    async def go() -> Any:
        return await schema.subscribe(
            RUN_PROGRESS,
            variable_values={"runId": "00000000-0000-0000-0000-000000000000"},
            context_value=Context(runtime, headers={}),
        )

    async def first(stream: Any) -> Any:
        async for result in stream:
            return result

    stream = asyncio.run(go())
    result = stream if hasattr(stream, "errors") else asyncio.run(first(stream))
    assert result.errors and result.errors[0].extensions["code"] == "EVAL_RUN_NOT_FOUND"


def test_leaderboard_changes_replay_entries_and_crowning(runtime: Runtime) -> None:
    world = make_world(runtime)
    version = make_eligible(runtime, world, world.miners[0], "a", [0.4, 0.6])
    events = asyncio.run(_collect(runtime, BOARD, {"after": "0"}, until="TopAgentChanged"))
    assert [e["__typename"] for e in events] == ["LeaderboardEntered", "TopAgentChanged"]
    assert events[0]["rank"] == 1 and events[0]["agentVersion"]["agentVersionId"] == str(version)


def test_over_websocket_graphql_transport_ws(runtime: Runtime) -> None:
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    _lifecycle(runtime, c.run.id, world.validators[0])
    from oro_graph.app import create_app

    app = create_app(runtime.settings, runtime=runtime, migrate=False)
    with (
        TestClient(app) as client,
        client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": RUN_PROGRESS, "variables": {"runId": str(c.run.id)}},
            }
        )
        kinds = []
        while True:
            message = ws.receive_json()
            if message["type"] == "complete":
                break
            assert message["type"] == "next", message
            kinds.append(message["payload"]["data"]["runProgress"]["__typename"])
    assert kinds[-1] == "RunFinished" and kinds[0] == "RunClaimed"


def test_signature_headers_come_in_connection_init_and_are_verified_once(runtime: Runtime) -> None:
    # given a miner, and the graphql-transport-ws client a browser would use (no headers of its own)
    world = make_world(runtime)
    from oro_graph.app import create_app

    app = create_app(runtime.settings, runtime=runtime, migrate=False)
    mine = "{ myInferenceAuth { readiness } }"

    def ask(ws: Any, operation_id: str) -> dict[str, Any]:
        ws.send_json({"id": operation_id, "type": "subscribe", "payload": {"query": mine}})
        answer = ws.receive_json()
        assert ws.receive_json() == {"id": operation_id, "type": "complete"}
        return answer["payload"]

    with TestClient(app) as client:
        # when the four headers come in connection_init: the signer's own data, twice on one connection
        # (verified once: the nonce is not claimed again)
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": sign_headers(keypair("Alice"))})
            assert ws.receive_json()["type"] == "connection_ack"
            for operation_id in ("1", "2"):
                payload = ask(ws, operation_id)
                assert "errors" not in payload, payload
                assert payload["data"]["myInferenceAuth"]["readiness"]
        # and without them, the signed field is refused
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": {}})
            assert ws.receive_json()["type"] == "connection_ack"
            payload = ask(ws, "1")
            assert payload["data"] is None
            assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert world.miners


def _sse_events(response: httpx.Response) -> Any:
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, (json.loads(line[6:]) if line[6:] else None)


@pytest.mark.slow
def test_sse_receives_a_mutation_made_through_another_server_process(runtime: Runtime, tmp_path) -> None:
    # given our server (in this process) and a second server process on the same database
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORO_")},
        "ORO_DATABASE_URL": runtime.settings.database_url,
        "ORO_DATA_DIR": str(tmp_path / "other"),
        "ORO_SECRET_KEY": "other",
        "ORO_RATE_LIMIT_PER_MINUTE": "100000",
    }
    other, port = start_serve(env)
    from oro_graph.app import create_app

    app = create_app(runtime.settings, runtime=runtime, migrate=False)
    try:
        wait_healthy(port, other)

        def heartbeat_elsewhere() -> None:
            time.sleep(0.5)
            headers = sign_headers(keypair("Charlie"))
            mutation = "mutation($id: UUID!) { heartbeat(runId: $id) { __typename } }"
            r = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": mutation, "variables": {"id": str(c.run.id)}},
                headers=headers,
                timeout=60,
            )
            assert r.status_code == 200 and "errors" not in r.json(), r.text
            complete_doc = (
                "mutation($id: UUID!) { completeRun(runId: $id, terminalStatus: FAILED) { __typename } }"
            )
            r = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": complete_doc, "variables": {"id": str(c.run.id)}},
                headers=sign_headers(keypair("Charlie")),
                timeout=60,
            )
            assert r.status_code == 200 and "errors" not in r.json(), r.text

        writer = threading.Thread(target=heartbeat_elsewhere)
        with TestClient(app) as client:
            writer.start()
            with client.stream(
                "POST", "/graphql/stream", json={"query": RUN_PROGRESS, "variables": {"runId": str(c.run.id)}}
            ) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                seen = []
                for event, data in _sse_events(response):
                    if event == "complete":
                        break
                    seen.append(data["data"]["runProgress"]["__typename"])
        writer.join()
        assert seen == ["RunClaimed", "RunStatusChanged", "RunHeartbeat", "RunFinished"]
    finally:
        other.terminate()
        other.wait(timeout=20)
