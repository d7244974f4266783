"""The graphql-sse protocol on /graphql: distinct connections over GET (a browser EventSource) and
POST, resuming with Last-Event-ID, and single-connection mode with reservations."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.factories import claim, make_eligible, make_world, submit
from tests.graphql.test_subscriptions import BOARD, RUN_PROGRESS, _lifecycle
from tests.hardening.support import start_servers
from tests.rest.conftest import serve  # noqa: F401  (the live-server fixture)
from tests.rest.live import LiveServer

STREAM = {"Accept": "text/event-stream"}
# what a browser would ask for: no cursor selected, the server names each event's id anyway
BARE_RUN = "subscription($runId: UUID!) { runProgress(runId: $runId) { __typename } }"


@pytest.fixture
def live(serve: Any) -> LiveServer:  # noqa: F811
    return serve()


def events(response: httpx.Response, *, stop_after: int | None = None) -> list[dict[str, Any]]:
    """The stream's events as {id, event, data}, up to ``complete`` (or ``stop_after`` events)."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    got: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith("id: "):
            current["id"] = line[4:]
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: ") or line == "data:":
            current["data"] = json.loads(line[6:]) if line[6:] else None
        elif line == "" and current:
            got.append(current)
            if current.get("event") == "complete" or (stop_after is not None and len(got) >= stop_after):
                break
            current = {}
    return got


def finished_run(live: LiveServer) -> str:
    world = make_world(live.runtime)
    submit(live.runtime, world.miners[0], "a")
    c = claim(live.runtime, world.validators[0])
    assert c is not None
    _lifecycle(live.runtime, c.run.id, world.validators[0])
    return str(c.run.id)


def get_stream(
    http: httpx.Client, query: str, variables: dict[str, Any], **headers: str
) -> list[dict[str, Any]]:
    url = "/graphql?" + urlencode({"query": query, "variables": json.dumps(variables)})
    with http.stream("GET", url, headers={**STREAM, **headers}) as response:
        return events(response)


def post_stream(
    http: httpx.Client, query: str, variables: dict[str, Any], **headers: str
) -> list[dict[str, Any]]:
    payload = {"query": query, "variables": variables}
    with http.stream("POST", "/graphql", json=payload, headers={**STREAM, **headers}) as response:
        return events(response)


@pytest.mark.parametrize("send", [get_stream, post_stream], ids=["GET", "POST"])
def test_a_subscription_streams_from_graphql_and_resumes_with_last_event_id(live, send):
    run_id = finished_run(live)
    with live.http() as http:
        # when a client without any cursor in its selection subscribes
        first = send(http, BARE_RUN, {"runId": run_id})
        # then every event of the log came with its cursor as the event id, and the stream completed
        kinds = [e["data"]["data"]["runProgress"]["__typename"] for e in first[:-1]]
        assert kinds == ["RunClaimed", "RunStatusChanged", "RunHeartbeat", "ProblemScored", "RunFinished"]
        assert first[-1] == {"event": "complete", "data": None}
        ids = [int(e["id"]) for e in first[:-1]]
        assert ids == sorted(set(ids))
        # and with the cursors the graph itself reports
        with_cursors = send(http, RUN_PROGRESS, {"runId": run_id})
        assert [e["id"] for e in with_cursors[:-1]] == [
            e["data"]["data"]["runProgress"]["cursor"] for e in with_cursors[:-1]
        ]
        # when it reconnects after the second event, as EventSource does
        resumed = send(http, BARE_RUN, {"runId": run_id}, **{"Last-Event-ID": str(ids[1])})
    # then it gets what it missed, nothing twice
    assert [int(e["id"]) for e in resumed[:-1]] == ids[2:]
    assert resumed[-1]["event"] == "complete"


def test_last_event_id_resumes_the_board_too(live):
    world = make_world(live.runtime)
    make_eligible(live.runtime, world, world.miners[0], "a", [0.5, 0.6])
    make_eligible(live.runtime, world, world.miners[1], "b", [0.8, 0.9])
    url = "/graphql?" + urlencode({"query": BOARD, "variables": json.dumps({"after": "0"})})
    with live.http() as http:
        with http.stream("GET", url, headers=STREAM) as response:
            board = events(response, stop_after=3)
        assert all(e["event"] == "next" for e in board)
        # the later of `after` and Last-Event-ID wins
        with http.stream("GET", url, headers={**STREAM, "Last-Event-ID": board[0]["id"]}) as response:
            resumed = events(response, stop_after=2)
    assert [e["id"] for e in resumed] == [e["id"] for e in board[1:3]]


def test_queries_over_sse_and_no_mutations_by_get(live):
    with live.http() as http:
        query = get_stream(http, "{ __typename }", {})
        assert [e["event"] for e in query] == ["next", "complete"]
        assert query[0]["data"]["data"] == {"__typename": "Query"}
        mutation = 'mutation { heartbeat(runId: "00000000-0000-0000-0000-000000000000") { __typename } }'
        refused = get_stream(http, mutation, {})
        assert "needs a POST" in refused[0]["data"]["errors"][0]["message"]
        # without Accept: text/event-stream, /graphql answers JSON as before
        plain = http.get(
            "/graphql", params={"query": "{ __typename }"}, headers={"Accept": "application/json"}
        )
        assert plain.json()["data"] == {"__typename": "Query"}
        bad = http.get("/graphql", params={"query": "{ __typename }", "variables": "{oops"}, headers=STREAM)
        assert bad.status_code == 400 and "variables" in bad.json()["errors"][0]["message"]


def test_graphql_stream_stays_an_alias_for_get_and_post(live):
    run_id = finished_run(live)
    with live.http() as http:
        with http.stream(
            "POST", "/graphql/stream", json={"query": BARE_RUN, "variables": {"runId": run_id}}
        ) as r:
            posted = events(r)
        url = "/graphql/stream?" + urlencode({"query": BARE_RUN, "variables": json.dumps({"runId": run_id})})
        with http.stream("GET", url) as r:
            got = events(r)
    assert len(posted) == len(got) == 6 and [e.get("id") for e in posted] == [e.get("id") for e in got]


def test_single_connection_mode(live):
    run_id = finished_run(live)
    with live.http() as http:
        reserved = http.put("/graphql")
        assert reserved.status_code == 201
        token = reserved.text
        header = {"X-GraphQL-Event-Stream-Token": token}
        assert http.post("/graphql", json={"query": "{ __typename }"}, headers=header).status_code == 400
        assert (
            http.get("/graphql", headers={**STREAM, "X-GraphQL-Event-Stream-Token": "nope"}).status_code
            == 404
        )
        received: list[dict[str, Any]] = []
        opened = threading.Event()

        def listen() -> None:
            with httpx.Client(base_url=live.base_url, timeout=60) as other:
                with other.stream("GET", f"/graphql?token={token}", headers=STREAM) as response:
                    assert response.status_code == 200
                    opened.set()
                    completes = 0
                    current: dict[str, Any] = {}
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            current["event"] = line[7:]
                        elif line.startswith("data: "):
                            current["data"] = json.loads(line[6:])
                            received.append(current)
                            completes += current["event"] == "complete"
                            current = {}
                            if completes == 2:
                                return

        listener = threading.Thread(target=listen)
        listener.start()
        assert opened.wait(60)
        # a second stream on the same reservation is refused
        assert http.get(f"/graphql?token={token}", headers=STREAM).status_code == 409
        run_op = {"query": BARE_RUN, "variables": {"runId": run_id}, "extensions": {"operationId": "run"}}
        query_op = {"query": "{ __typename }", "extensions": {"operationId": "q"}}
        assert http.post("/graphql", json=run_op, headers=header).status_code == 202
        assert http.post("/graphql", json=query_op, headers=header).status_code == 202
        listener.join(120)
        assert not listener.is_alive()
        assert http.delete("/graphql", params={"operationId": "gone"}, headers=header).status_code == 404
    by_id: dict[str, list[str]] = {}
    for message in received:
        by_id.setdefault(message["data"]["id"], []).append(message["event"])
    assert by_id["run"] == ["next"] * 5 + ["complete"]
    assert by_id["q"] == ["next", "complete"]
    first_run = next(m for m in received if m["data"]["id"] == "run")
    assert first_run["data"]["payload"]["data"]["runProgress"]["__typename"] == "RunClaimed"


class StreamListener:
    """A single-connection stream opened in a thread: the messages it receives, by operation id."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token
        self.opened = threading.Event()
        self.status: int | None = None
        self.received: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            with http.stream("GET", f"/graphql?token={self.token}", headers=STREAM) as response:
                self.status = response.status_code
                self.opened.set()
                current: dict[str, Any] = {}
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        current["event"] = line[7:]
                    elif line.startswith("data: "):
                        current["data"] = json.loads(line[6:])
                        with self.changed:
                            self.received.append(current)
                            self.changed.notify_all()
                        current = {}
                        if self.done("last"):
                            return

    def done(self, operation_id: str) -> bool:
        return any(m["event"] == "complete" and m["data"]["id"] == operation_id for m in self.received)

    def wait_complete(self, operation_id: str, timeout: float = 120) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: self.done(operation_id), timeout), self.received
        return [m["event"] for m in self.received if m["data"]["id"] == operation_id]


@pytest.mark.slow
def test_single_connection_mode_across_server_processes(
    runtime: Any, database_url: str, tmp_path: Any
) -> None:
    # given two server processes over one database, and a run still going (its subscription stays open)
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    assert c is not None
    env = {
        "ORO_DATABASE_URL": database_url,
        "ORO_SECRET_KEY": "sse",
        "ORO_DATA_DIR": str(tmp_path / "state"),
        "ORO_RATE_LIMIT_PER_MINUTE": "100000",
    }
    first, second = start_servers(2, env, tmp_path)
    try:
        with (
            httpx.Client(base_url=first.base_url, timeout=60) as one,
            httpx.Client(base_url=second.base_url, timeout=60) as two,
        ):
            # when the stream is reserved on the first, opened on the second
            reserved = one.put("/graphql")
            assert reserved.status_code == 201
            token = reserved.text
            header = {"X-GraphQL-Event-Stream-Token": token}
            listener = StreamListener(second.base_url, token)
            assert listener.opened.wait(60) and listener.status == 200
            assert one.get(f"/graphql?token={token}", headers=STREAM).status_code == 409  # held elsewhere

            # then operations sent to either process run on the stream
            query = {"query": "{ __typename }", "extensions": {"operationId": "q"}}
            assert one.post("/graphql", json=query, headers=header).status_code == 202
            assert listener.wait_complete("q") == ["next", "complete"]
            run = {
                "query": BARE_RUN,
                "variables": {"runId": str(c.run.id)},
                "extensions": {"operationId": "run"},
            }
            assert one.post("/graphql", json=run, headers=header).status_code == 202
            # an id in use is refused on every process, and a stop sent to the other one ends it
            assert two.post("/graphql", json=run, headers=header).status_code == 409
            with listener.changed:
                assert listener.changed.wait_for(
                    lambda: any(m["data"]["id"] == "run" for m in listener.received), 120
                )
            assert one.delete("/graphql", params={"operationId": "run"}, headers=header).status_code == 200
            events = listener.wait_complete("run")
            assert events[0] == "next" and events[-1] == "complete" and events.count("complete") == 1
            first_run = next(m for m in listener.received if m["data"]["id"] == "run")
            assert first_run["data"]["payload"]["data"]["runProgress"]["__typename"] == "RunClaimed"
            assert one.delete("/graphql", params={"operationId": "run"}, headers=header).status_code == 404
            # the id is free again once its operation completed
            last = {"query": "{ __typename }", "extensions": {"operationId": "last"}}
            assert two.post("/graphql", json=last, headers=header).status_code == 202
            listener.wait_complete("last")
            listener.thread.join(60)

            # and once the client is gone, the reservation is too, on every process
            def gone(http: httpx.Client) -> bool:
                return http.post("/graphql", json=last, headers=header).status_code == 404

            deadline = time.monotonic() + 60
            while not (gone(one) and gone(two)) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert gone(one) and gone(two), (first.log()[-3000:], second.log()[-3000:])
        assert first.tracebacks() == [] and second.tracebacks() == []
    finally:
        first.stop()
        second.stop()


def test_an_idle_stream_opens_at_once(live):
    # given a subscription with nothing to send yet (no race has ever changed)
    document = 'subscription { raceChanges(after: "0") { cursor } }'
    # when a client opens it over SSE, through the compression middleware (it held every answer's
    # headers until its first body chunk: here a first event that may never come)
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        with http.stream("POST", "/graphql/stream", json={"query": document}, headers=STREAM) as response:
            # then the headers arrive at once
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in response.headers


def test_an_idle_stream_gets_comment_lines(live, monkeypatch):
    # given a short keep-alive and a subscription with nothing to send
    from oro_graph.graphql import stream

    monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 0.2)
    document = 'subscription { raceChanges(after: "0") { cursor } }'
    # when a client listens for a moment
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        with http.stream("POST", "/graphql/stream", json={"query": document}, headers=STREAM) as response:
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                if len(lines) >= 6:
                    break
    # then it got comments (which EventSource and graphql-sse clients ignore): the opening one, then
    # keep-alives, and no event
    assert [line for line in lines if line] == [": stream open", ":", ":"]
