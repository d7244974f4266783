"""Races in the graph: a whole cycle driven by the services and the pin mutation, the embargo while a race
runs, the published results, the weights by the public validator's rule, the verifiable draw, time travel
and the raceChanges log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from oro_graph.app import create_app
from oro_graph.graphql.context import Context
from oro_graph.graphql.schema import schema
from oro_graph.models import RunStatus, utcnow
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, races, suites
from oro_graph.settings import Settings
from tests.factories import claim, complete, make_eligible, make_world, register
from tests.graphql.conftest import Gql, signed
from tests.graphql.test_sse import STREAM, events
from tests.rest.conftest import serve  # noqa: F401  (the live-server fixture)

RACE_FIELDS = """
  raceId raceNumber status suiteId suite { suiteId } seedCommitment revealedSecret drawSeed drawnProblemIds
  drawnProblems { problemId } qualifierCount scoredCount winnerScore projectedCompletionAt
  winner { agentVersionId raceRank raceScore }
  qualifiers(first: 10) {
    totalCount
    edges { node {
      agentVersionId minerHotkey agentName qualificationType qualifyingScore raceScore raceRank didNotFinish
      finishedAt miner { hotkey } runs { status validatorScore raceId } weight { units share }
    } }
  }
  weights { minerHotkey agentVersionId raceRank units share }
  validatorVariance { pairCount buckets { thresholdPoints pairsAbove share } validators { validatorHotkey } }
"""
CURRENT_RACE_QUERY = f"query ($asOf: DateTime) {{ currentRace(asOf: $asOf) {{ {RACE_FIELDS} }} }}"
RACE_QUERY = f"query ($id: ID!) {{ race(id: $id) {{ id {RACE_FIELDS} }} }}"
RACES_QUERY = """
query ($status: [RaceStatus!], $asOf: DateTime) {
  races(status: $status, asOf: $asOf) { totalCount edges { node { raceNumber status } } }
}
"""
ENTRIES_QUERY = """
query ($id: ID!) { agentVersion(id: $id) { raceEntries { raceScore raceRank race { raceNumber } } } }
"""
SELECTION_QUERY = """
query ($hotkey: String!) { miner(hotkey: $hotkey) { raceSelection { agentVersionId locked } } }
"""
PIN_MUTATION = """
mutation ($id: ID!) {
  pinRaceSelection(agentVersionId: $id) {
    __typename
    ... on RaceSelection { agentVersionId locked agentVersion { agentVersionId } }
    ... on Error { code message }
  }
}
"""
UNPIN_MUTATION = """
mutation {
  unpinRaceSelection { __typename ... on UnpinRaceSelectionSuccess { minerHotkey } ... on Error { code } }
}
"""
RACE_CHANGES = """
subscription ($after: String) {
  raceChanges(after: $after) {
    cursor kind at race { raceNumber status } qualifier { agentVersionId raceScore }
  }
}
"""

RACE_SCORES = {"alice_old": 0.55, "alice": 0.6, "bob": 0.9, "ferdie": 0.7}


def _settings(rt: Runtime) -> Settings:
    return Settings(**{**rt.settings.model_dump(), "race_problems": 3, "race_max_attempts": 3})


@pytest.fixture
def board(runtime: Runtime) -> dict[str, Any]:
    """Alice 0.8 (and an older 0.6), Bob 0.7, Ferdie 0.4, all eligible; three validators."""
    world = make_world(runtime)
    world.miners.append(register(runtime, "Ferdie"))
    base = utcnow() - timedelta(hours=12)  # past the submission cooldown
    alice, bob, ferdie = world.miners
    return {
        "world": world,
        "alice_old": make_eligible(runtime, world, alice, "a-old", [0.6, 0.6], now=base),
        "alice": make_eligible(runtime, world, alice, "a-new", [0.8, 0.8], now=base + timedelta(hours=2)),
        "bob": make_eligible(runtime, world, bob, "b", [0.7, 0.7], now=base),
        "ferdie": make_eligible(runtime, world, ferdie, "f", [0.4, 0.4], now=base),
    }


def _race_work(rt: Runtime, board: dict[str, Any], *, runs: int | None = None) -> int:
    """Validators claim and complete race work (each reports the version's race score), at most ``runs``."""
    scores = {board[name]: score for name, score in RACE_SCORES.items()}
    done = 0
    for _ in range(20):
        progressed = False
        for validator in board["world"].validators:
            if runs is not None and done >= runs:
                return done
            c = claim(rt, validator)
            if c is None:
                continue
            assert c.run.race_id is not None, "only race work is left"
            complete(rt, c.run.id, validator, score=scores[c.run.agent_version_id], status=RunStatus.SUCCESS)
            progressed, done = True, done + 1
        if not progressed:
            return done
    raise AssertionError("race work never ran out")


def _expected_weights(finishers: list[tuple[str, str, float]], t_top: float, t_burn: float) -> list[Any]:
    """The public validator's rule, written out here independently of the services."""
    ranked = sorted(finishers, key=lambda f: (-f[2], f[1]))
    k = len(ranked) // 2
    if k == 0:
        return [(None, None, 65535)]
    tail = [(hk, vid, k + 1 - rank) for rank, (hk, vid, _) in enumerate(ranked, 1) if 2 <= rank <= k]
    top = round(t_top * (65535 + sum(u for *_, u in tail)) / t_burn)
    return [(None, None, 65535), (ranked[0][0], ranked[0][1], top), *tail]


async def _collect(rt: Runtime, variables: dict[str, Any], *, until: str) -> list[dict[str, Any]]:
    stream = await schema.subscribe(
        RACE_CHANGES, variable_values=variables, context_value=Context(rt, headers={})
    )
    assert not hasattr(stream, "errors"), stream
    got: list[dict[str, Any]] = []
    async for result in stream:
        assert result.errors is None, result.errors
        got.append(result.data["raceChanges"])
        if got[-1]["kind"] == until or len(got) >= 50:
            break
    return got


def _nodes(race: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in race["qualifiers"]["edges"]]


def test_a_whole_race_cycle_in_the_graph(runtime: Runtime, gql: Gql, board: dict[str, Any]) -> None:
    # given a race in qualifying, opened by the services (the scheduler's or the CLI's part)
    settings = _settings(runtime)
    world = board["world"]
    alice = world.miners[0]
    opened = runtime.db.call(races.open_race, settings=settings)

    # when Alice pins her older version through the graph
    pinned = gql(PIN_MUTATION, {"id": str(board["alice_old"])}, headers=signed("Alice"))["pinRaceSelection"]

    # then it races instead of her best, and her miner shows the pin
    assert pinned == {
        "__typename": "RaceSelection",
        "agentVersionId": str(board["alice_old"]),
        "locked": False,
        "agentVersion": {"agentVersionId": str(board["alice_old"])},
    }
    race = gql(CURRENT_RACE_QUERY)["currentRace"]
    assert race["status"] == "QUALIFYING_OPEN" and race["drawnProblemIds"] is None
    assert [q["agentVersionId"] for q in _nodes(race)] == [
        str(board[n]) for n in ("bob", "alice_old", "ferdie")
    ]
    assert gql(SELECTION_QUERY, {"hotkey": alice})["miner"]["raceSelection"] == {
        "agentVersionId": str(board["alice_old"]),
        "locked": False,
    }
    # another miner's version is refused with its typed error
    refused = gql(PIN_MUTATION, {"id": str(board["bob"])}, headers=signed("Alice"))["pinRaceSelection"]
    assert refused["__typename"] == "NotVersionOwnerError" and refused["code"] == "NOT_VERSION_OWNER"

    # when qualifying closes, pins are refused with the typed locked error
    runtime.db.call(races.close_qualifying, settings=settings)
    locked = gql(PIN_MUTATION, {"id": str(board["alice"])}, headers=signed("Alice"))["pinRaceSelection"]
    assert locked["__typename"] == "RaceLockedError" and locked["code"] == "RACE_LOCKED"
    unpin = gql(UNPIN_MUTATION, headers=signed("Alice"))["unpinRaceSelection"]
    assert unpin == {"__typename": "RaceLockedError", "code": "RACE_LOCKED"}
    assert gql(SELECTION_QUERY, {"hotkey": alice})["miner"]["raceSelection"]["locked"] is True

    # while the race runs (Bob's two runs done, so Bob has finished), nothing of the results shows
    _race_work(runtime, board, runs=4)
    running = gql(RACE_QUERY, {"id": str(opened.id)})["race"]
    assert running["status"] == "RACE_RUNNING" and running["revealedSecret"] is None
    assert running["drawnProblemIds"] == runtime.db.call(races.get_race, opened.id).problem_ids
    assert [p["problemId"] for p in running["drawnProblems"]] == running["drawnProblemIds"]
    for q in _nodes(running):
        assert (q["raceScore"], q["raceRank"], q["didNotFinish"], q["finishedAt"], q["weight"]) == (
            None,
            None,
            False,
            None,
            None,
        )
    assert running["weights"] == [] and running["winner"] is None and running["winnerScore"] is None
    stored = runtime.db.call(races.race_view, opened.id)
    assert any(q.row.race_score is not None for q in stored.qualifiers), "a qualifier has finished by now"
    entries = gql(ENTRIES_QUERY, {"id": str(board["bob"])})["agentVersion"]["raceEntries"]
    assert entries == [{"raceScore": None, "raceRank": None, "race": {"raceNumber": 1}}]

    # when the race work is done, the race completes through the services
    _race_work(runtime, board)
    done = gql(RACE_QUERY, {"id": str(opened.id)})["race"]

    # then ranks, scores, the winner and the weights are published
    assert done["status"] == "RACE_COMPLETE"
    ranked = [(q["agentVersionId"], q["raceRank"], q["raceScore"]) for q in _nodes(done)]
    assert ranked == [
        (str(board["bob"]), 1, 0.9),
        (str(board["ferdie"]), 2, 0.7),
        (str(board["alice_old"]), 3, 0.55),
    ]
    assert done["winner"] == {"agentVersionId": str(board["bob"]), "raceRank": 1, "raceScore": 0.9}
    assert done["winnerScore"] == 0.9 and done["scoredCount"] == 3 and done["qualifierCount"] == 3
    assert all(len(q["runs"]) == 2 and q["runs"][0]["raceId"] == str(opened.id) for q in _nodes(done))
    finishers = [(q["minerHotkey"], q["agentVersionId"], q["raceScore"]) for q in _nodes(done)]
    expected = _expected_weights(finishers, settings.weight_top_share, settings.weight_burn_share)
    assert [(w["minerHotkey"], w["agentVersionId"], w["units"]) for w in done["weights"]] == expected
    service = races.race_weights(
        [(h, uuid.UUID(v), s) for h, v, s in finishers],
        t_top=settings.weight_top_share,
        t_burn=settings.weight_burn_share,
    )
    assert [(w.miner_hotkey, w.units, w.share) for w in service] == [
        (w["minerHotkey"], w["units"], w["share"]) for w in done["weights"]
    ]
    bob = next(q for q in _nodes(done) if q["agentVersionId"] == str(board["bob"]))
    assert bob["weight"]["units"] == expected[1][2]
    assert done["validatorVariance"]["pairCount"] == 3  # two validators per qualifier: one pair each

    # and the revealed secret reproduces the commitment, the seed and the draw
    secret = done["revealedSecret"]
    assert hashlib.sha256(secret.encode()).hexdigest() == done["seedCommitment"]
    field = ",".join(sorted(q["agentVersionId"] for q in _nodes(done)))
    seed = hashlib.sha256(f"{secret}:{field}".encode()).hexdigest()
    assert seed == done["drawSeed"]
    problems = [str(p.id) for p in runtime.db.call(suites.problems_for_suite, world.suite.id)]
    drawn = sorted(problems, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).digest())[:3]
    assert drawn == done["drawnProblemIds"]


def test_the_race_as_it_stood(runtime: Runtime, gql: Gql, board: dict[str, Any]) -> None:
    # given a race opened, closed and completed at known instants
    settings = _settings(runtime)
    start = utcnow() - timedelta(hours=3)
    opened = runtime.db.call(races.open_race, settings=settings, now=start)
    runtime.db.call(races.close_qualifying, settings=settings, now=start + timedelta(hours=1))
    _race_work(runtime, board)
    assert runtime.db.call(races.get_race, opened.id).status == "RACE_COMPLETE"

    # when asked as it stood while qualifying, then while running
    qualifying = gql(CURRENT_RACE_QUERY, {"asOf": (start + timedelta(minutes=30)).isoformat()})["currentRace"]
    running = gql(CURRENT_RACE_QUERY, {"asOf": (start + timedelta(hours=2)).isoformat()})["currentRace"]
    before = gql(CURRENT_RACE_QUERY, {"asOf": (start - timedelta(hours=1)).isoformat()})["currentRace"]

    # then it shows only what it had then
    assert qualifying["status"] == "QUALIFYING_OPEN" and qualifying["drawnProblemIds"] is None
    assert running["status"] == "RACE_RUNNING" and running["drawnProblemIds"] is not None
    for past in (qualifying, running):
        assert past["revealedSecret"] is None and past["winner"] is None and past["weights"] == []
        assert {q["raceScore"] for q in _nodes(past)} == {None}
        assert all(q["runs"] == [] for q in _nodes(past))  # claimed later than that
    assert before is None
    counts = {
        when: gql(RACES_QUERY, {"status": ["RACE_RUNNING"], "asOf": at.isoformat()})["races"]["totalCount"]
        for when, at in (
            ("qualifying", start + timedelta(minutes=30)),
            ("running", start + timedelta(hours=2)),
        )
    }
    assert counts == {"qualifying": 0, "running": 1}
    assert gql(RACES_QUERY, {"status": ["RACE_COMPLETE"]})["races"]["edges"] == [
        {"node": {"raceNumber": 1, "status": "RACE_COMPLETE"}}
    ]


def test_race_changes_replay_the_cycle_in_order(runtime: Runtime, board: dict[str, Any]) -> None:
    # given a whole cycle, with a pin during qualifying
    settings = _settings(runtime)
    runtime.db.call(races.open_race, settings=settings)
    alice = board["world"].miners[0]
    runtime.db.call(races.pin_selection, hotkey=alice, agent_version_id=board["alice_old"], settings=settings)
    runtime.db.call(races.close_qualifying, settings=settings)
    _race_work(runtime, board)

    # when a client replays everything, then resumes after the fourth change
    changes = asyncio.run(_collect(runtime, {"after": "0"}, until="TOP_CHANGED"))
    rest = asyncio.run(_collect(runtime, {"after": changes[3]["cursor"]}, until="TOP_CHANGED"))

    # then the changes came in log order, with the race and its qualifiers as they are now
    kinds = [c["kind"] for c in changes]
    assert kinds == [
        "RACE_OPENED",
        *["QUALIFIER_ENTERED"] * 4,  # Alice's best, Bob, Ferdie, then Alice's pinned version
        "QUALIFYING_CLOSED",
        *["QUALIFIER_FINISHED"] * 3,
        "RACE_COMPLETED",
        "TOP_CHANGED",
    ]
    entered = [c["qualifier"] and c["qualifier"]["agentVersionId"] for c in changes[1:5]]
    assert entered == [
        None,
        str(board["bob"]),
        str(board["ferdie"]),
        str(board["alice_old"]),
    ]  # Alice's best left
    assert [int(c["cursor"]) for c in changes] == sorted(int(c["cursor"]) for c in changes)
    assert changes[-1]["qualifier"] == {"agentVersionId": str(board["bob"]), "raceScore": 0.9}
    assert {c["race"]["status"] for c in changes} == {"RACE_COMPLETE"}
    assert rest == changes[4:]


def test_a_non_finisher_is_announced_when_the_race_completes(runtime: Runtime, board: dict[str, Any]) -> None:
    # given a running race whose deadline passes before anyone ran
    settings = _settings(runtime)
    start = utcnow()
    runtime.db.call(races.open_race, settings=settings, now=start)
    runtime.db.call(races.close_qualifying, settings=settings, now=start)

    # when the scheduler completes it at the deadline
    runtime.db.call(
        races.tick, settings=settings, holder="p", now=start + timedelta(hours=settings.race_max_hours + 1)
    )
    changes = asyncio.run(_collect(runtime, {"after": "0"}, until="RACE_COMPLETED"))

    # then every qualifier did not finish, announced with the completion, and nobody won
    kinds = [c["kind"] for c in changes]
    assert kinds[-4:] == ["QUALIFIER_DID_NOT_FINISH"] * 3 + ["RACE_COMPLETED"]
    assert "TOP_CHANGED" not in kinds


def test_unpin_and_unknown_ids(runtime: Runtime, gql: Gql, board: dict[str, Any]) -> None:
    # given no pin
    # when Alice unpins, then pins a version that does not exist
    nothing = gql(UNPIN_MUTATION, headers=signed("Alice"))["unpinRaceSelection"]
    missing = gql(PIN_MUTATION, {"id": str(uuid.uuid4())}, headers=signed("Alice"))["pinRaceSelection"]
    garbled = gql(PIN_MUTATION, {"id": "not-an-id"}, headers=signed("Alice"))["pinRaceSelection"]
    pinned = gql(PIN_MUTATION, {"id": str(board["alice"])}, headers=signed("Alice"))["pinRaceSelection"]
    cleared = gql(UNPIN_MUTATION, headers=signed("Alice"))["unpinRaceSelection"]
    unsigned = gql(UNPIN_MUTATION, errors=True)

    # then each answer is typed
    assert nothing == {"__typename": "NoSelectionError", "code": "NO_SELECTION"}
    assert missing["__typename"] == "NotVersionOwnerError"
    assert garbled["__typename"] == "ValidationError" and "not-an-id" in garbled["message"]
    assert pinned["__typename"] == "RaceSelection"
    assert cleared == {"__typename": "UnpinRaceSelectionSuccess", "minerHotkey": board["world"].miners[0]}
    assert unsigned["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert gql(RACE_QUERY, {"id": str(uuid.uuid4())})["race"] is None
    assert gql(CURRENT_RACE_QUERY)["currentRace"] is None


def test_a_cached_race_is_never_served_after_its_transition(
    runtime: Runtime, client: TestClient, board: dict[str, Any]
) -> None:
    # given a race in qualifying, read twice through the response cache
    settings = _settings(runtime)
    runtime.db.call(races.open_race, settings=settings)
    query = {"query": "{ currentRace { status qualifierCount drawnProblemIds } }"}
    first = client.post("/graphql", json=query)
    again = client.post("/graphql", json=query)
    assert first.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"

    # when qualifying closes (the scheduler's write, through the services)
    runtime.db.call(races.close_qualifying, settings=settings)
    fresh = client.post("/graphql", json=query)

    # then the next read is computed again and shows the race running with its draw
    assert fresh.headers["x-cache"] == "miss"
    race = fresh.json()["data"]["currentRace"]
    assert race["status"] == "RACE_RUNNING" and len(race["drawnProblemIds"]) == 3


def test_race_changes_over_sse_and_graphql_transport_ws(
    runtime: Runtime,
    serve: Any,  # noqa: F811  (the fixture imported above)
    board: dict[str, Any],
) -> None:
    # given a race opened and closed (five changes: opened, three entered, closed)
    settings = _settings(runtime)
    runtime.db.call(races.open_race, settings=settings)
    runtime.db.call(races.close_qualifying, settings=settings)
    document = "subscription($after: String) { raceChanges(after: $after) { cursor kind } }"
    server = serve()

    # when a browser-like client reads it over SSE (graphql-sse on /graphql), then a websocket client
    url = "/graphql?" + urlencode({"query": document, "variables": json.dumps({"after": "0"})})
    with server.http() as http, http.stream("GET", url, headers=STREAM) as response:
        streamed = events(response, stop_after=5)
    app = create_app(runtime.settings, runtime=runtime, migrate=False)
    with (
        TestClient(app) as ws_client,
        ws_client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        payload = {"query": document, "variables": {"after": streamed[1]["id"]}}
        ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        received = [ws.receive_json() for _ in range(3)]

    # then both carry the log in order, SSE ids being the cursors, and the websocket resumes after one
    kinds = [e["data"]["data"]["raceChanges"]["kind"] for e in streamed]
    assert kinds == ["RACE_OPENED", *["QUALIFIER_ENTERED"] * 3, "QUALIFYING_CLOSED"]
    assert [e["id"] for e in streamed] == [e["data"]["data"]["raceChanges"]["cursor"] for e in streamed]
    assert [m["payload"]["data"]["raceChanges"]["cursor"] for m in received] == [
        e["id"] for e in streamed[2:]
    ]


QUALIFIER_PAGES = """
query ($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  race(id: $id) {
    qualifiers(first: $first, after: $after, last: $last, before: $before) {
      totalCount pageInfo { hasNextPage hasPreviousPage endCursor startCursor }
      edges { node { agentVersionId } }
    }
  }
}
"""


def test_the_field_pages_with_cursors(runtime: Runtime, gql: Gql, board: dict[str, Any]) -> None:
    # given a field of three (Alice, Bob, Ferdie by qualifying score)
    race = runtime.db.call(races.open_race, settings=_settings(runtime))
    order = [str(board[n]) for n in ("alice", "bob", "ferdie")]

    def page(**args: Any) -> dict[str, Any]:
        return gql(QUALIFIER_PAGES, {"id": str(race.id), **args})["race"]["qualifiers"]

    # when it is read a page of two at a time, forward then backward
    first = page(first=2)
    rest = page(first=2, after=first["pageInfo"]["endCursor"])
    back = page(last=1, before=rest["pageInfo"]["startCursor"])

    # then the pages tile the field in order
    ids = [[e["node"]["agentVersionId"] for e in p["edges"]] for p in (first, rest, back)]
    assert ids == [order[:2], order[2:], order[1:2]]
    assert (first["pageInfo"]["hasNextPage"], rest["pageInfo"]["hasNextPage"]) == (True, False)
    assert rest["pageInfo"]["hasPreviousPage"] and back["pageInfo"]["hasPreviousPage"]
    assert first["totalCount"] == 3
    # a cursor of another order is refused as a bad page argument
    body = gql(QUALIFIER_PAGES, {"id": str(race.id), "after": "bm9wZQ"}, errors=True)
    assert body["errors"][0]["extensions"]["code"] == "BAD_PAGE_ARGUMENT"


# Every public place a race run's scores could show: the race's runs, the run itself, its problem
# results (by run, by version, by node), run listings, the problem matrix and the validator variance.
SCORE_KEYS = {"validatorScore", "scoreComponents", "score", "reasoningScore", "meanScore", "meanSpread"}
RESULTS = "problemResults(first: 5) { edges { node { id score reasoningScore scoreComponents } } }"
RUN_SCORES = f"evalRunId raceId validatorScore scoreComponents {RESULTS}"
EMBARGO_QUERY = f"""
query ($race: ID!, $run: ID!, $version: ID!) {{
  race(id: $race) {{
    qualifiers(first: 10) {{ edges {{ node {{ runs {{ {RUN_SCORES} }} }} }} }}
    validatorVariance {{
      pairCount meanSpread medianSpread maxSpread validators {{ meanScore meanDeltaVsPeers }}
    }}
  }}
  evaluationRun(id: $run) {{ {RUN_SCORES} }}
  evaluationRuns(first: 30) {{ edges {{ node {{ {RUN_SCORES} }} }} }}
  agentVersion(id: $version) {{
    runs(first: 10) {{ edges {{ node {{ {RUN_SCORES} }} }} }}
    problemMatrix {{ validatorResults {{ runId score reasoningScore scoreComponents }} }}
  }}
  validators {{ edges {{ node {{ runs(first: 10) {{ edges {{ node {{ {RUN_SCORES} }} }} }} }} }} }}
}}
"""
NODE_QUERY = (
    "query ($id: ID!) { node(id: $id) { ... on ProblemResult { score reasoningScore scoreComponents } } }"
)
LEASE_CLAIM = "mutation { claimWork { __typename ... on ClaimWorkSuccess { run { evalRunId raceId } } } }"
LEASE_PROGRESS = """
mutation ($run: UUID!, $problems: [ProblemProgressInput!]!) {
  reportProgress(runId: $run, problems: $problems) {
    __typename ... on ReportProgressSuccess { results { score reasoningScore scoreComponents } }
  }
}
"""
LEASE_HEARTBEAT = """
mutation ($run: UUID!) {
  heartbeat(runId: $run) { __typename ... on HeartbeatSuccess { run { validatorScore } } }
}
"""
LEASE_COMPLETE = """
mutation ($run: UUID!) {
  completeRun(runId: $run, terminalStatus: SUCCESS, validatorScore: 0.77, scoreComponents: {pass: 0.77}) {
    __typename ... on CompleteRunSuccess { run { validatorScore scoreComponents ${RESULTS} } }
  }
}
""".replace("${RESULTS}", RESULTS)
RUN_PROGRESS = """
subscription ($run: UUID!) {
  runProgress(runId: $run, after: "0") {
    __typename ... on ProblemScored { score } ... on RunFinished { validatorScore }
  }
}
"""


AS_OF_RUNS = """
query ($at: DateTime) {
  currentRace(asOf: $at) {
    status qualifiers { edges { node { runs { raceId validatorScore } } } } validatorVariance { pairCount }
  }
}
"""


def _scored(events: list[dict[str, Any]]) -> list[Any]:
    return [
        e.get("score", e.get("validatorScore"))
        for e in events
        if e["__typename"] in ("ProblemScored", "RunFinished")
    ]


def _race_run_scores(value: Any, in_race_run: bool = False) -> list[Any]:
    """Every score-carrying value under a race run (a dict with a non-null raceId) or a variance."""
    found: list[Any] = []
    if isinstance(value, dict):
        in_race_run = in_race_run or value.get("raceId") is not None or "pairCount" in value
        for key, item in value.items():
            if key in SCORE_KEYS and in_race_run:
                found.append(item)
            found.extend(_race_run_scores(item, in_race_run))
    elif isinstance(value, list):
        for item in value:
            found.extend(_race_run_scores(item, in_race_run))
    return found


async def _run_progress(rt: Runtime, run_id: str) -> list[dict[str, Any]]:
    stream = await schema.subscribe(
        RUN_PROGRESS, variable_values={"run": run_id}, context_value=Context(rt, headers={})
    )
    assert not hasattr(stream, "errors"), stream
    got = []
    async for result in stream:
        assert result.errors is None, result.errors
        got.append(result.data["runProgress"])
        if got[-1]["__typename"] == "RunFinished":
            break
    return got


def test_race_runs_scores_are_embargoed_until_the_race_completes(
    runtime: Runtime, client: TestClient, gql: Gql, board: dict[str, Any]
) -> None:
    # given a running race, and a validator that works a race run through the graph's lease mutations
    settings = _settings(runtime)
    opened = runtime.db.call(races.open_race, settings=settings)
    drawn = runtime.db.call(races.close_qualifying, settings=settings).problem_ids
    name = "Charlie"
    claimed = gql(LEASE_CLAIM, headers=signed(name))["claimWork"]
    assert claimed["__typename"] == "ClaimWorkSuccess" and claimed["run"]["raceId"] == str(opened.id)
    run_id = claimed["run"]["evalRunId"]
    report = [
        {
            "problemId": p,
            "status": "SUCCESS",
            "score": 0.9,
            "reasoningScore": 0.8,
            "scoreComponents": {"x": 1},
        }
        for p in drawn[:2]
    ]
    progress = gql(LEASE_PROGRESS, {"run": run_id, "problems": report}, headers=signed(name))[
        "reportProgress"
    ]
    beat = gql(LEASE_HEARTBEAT, {"run": run_id}, headers=signed(name))["heartbeat"]
    done = gql(LEASE_COMPLETE, {"run": run_id}, headers=signed(name))["completeRun"]

    # then the lease holder's own answers carry what it reported
    assert progress["results"] == [{"score": 0.9, "reasoningScore": 0.8, "scoreComponents": {"x": 1}}] * 2
    assert beat == {"__typename": "HeartbeatSuccess", "run": {"validatorScore": None}}
    assert done["run"]["validatorScore"] == 0.77 and done["run"]["scoreComponents"] == {"pass": 0.77}
    assert [e["node"]["score"] for e in done["run"]["problemResults"]["edges"]] == [0.9, 0.9]

    # when more race work is done (every qualifier has runs, validators pair up) while the race runs
    _race_work(runtime, board, runs=4)
    assert runtime.db.call(races.get_race, opened.id).status == "RACE_RUNNING"
    version = runtime.db.call(evaluations.get_run, uuid.UUID(run_id)).agent_version_id
    variables = {"race": str(opened.id), "run": run_id, "version": str(version)}
    request = {"query": EMBARGO_QUERY, "variables": variables}
    first, again = client.post("/graphql", json=request), client.post("/graphql", json=request)
    assert "errors" not in first.json(), first.json()["errors"]
    result_ids = [e["node"]["id"] for e in first.json()["data"]["evaluationRun"]["problemResults"]["edges"]]
    by_node = [gql(NODE_QUERY, {"id": i})["node"] for i in result_ids]
    events = asyncio.run(_run_progress(runtime, run_id))

    # then no public path shows a race run's score, though the runs, results and pairs are there
    hidden = first.json()["data"]
    scores = _race_run_scores(hidden)
    assert len(scores) > 30 and all(s is None for s in scores), scores
    assert len(hidden["race"]["qualifiers"]["edges"]) == 3 and hidden["evaluationRun"]["raceId"] == str(
        opened.id
    )
    assert hidden["race"]["validatorVariance"] == {
        "pairCount": 0,
        "meanSpread": None,
        "medianSpread": None,
        "maxSpread": None,
        "validators": [],
    }
    mine = [
        x
        for p in hidden["agentVersion"]["problemMatrix"]
        for x in p["validatorResults"]
        if x["runId"] == run_id
    ]
    assert mine == [{"runId": run_id, "score": None, "reasoningScore": None, "scoreComponents": None}] * 2
    assert by_node == [{"score": None, "reasoningScore": None, "scoreComponents": None}] * 2
    assert _scored(events) == [None, None, None]
    assert first.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"
    # and the qualifying runs' scores still show (the embargo is on race runs only)
    qualifying = [e["node"] for e in hidden["evaluationRuns"]["edges"] if e["node"]["raceId"] is None]
    assert qualifying and all(r["validatorScore"] is not None for r in qualifying)

    # when the race work is done and the race completes
    _race_work(runtime, board)
    assert runtime.db.call(races.get_race, opened.id).status == "RACE_COMPLETE"
    after = client.post("/graphql", json=request)
    shown = after.json()["data"]
    events = asyncio.run(_run_progress(runtime, run_id))

    # then the cached masked answer is not served, and every race run's score is published
    assert after.headers["x-cache"] == "miss"
    assert shown["evaluationRun"]["validatorScore"] == 0.77
    assert shown["evaluationRun"]["scoreComponents"] == {"pass": 0.77}
    assert [e["node"]["score"] for e in shown["evaluationRun"]["problemResults"]["edges"]] == [0.9, 0.9]
    runs = [r for e in shown["race"]["qualifiers"]["edges"] for r in e["node"]["runs"]]
    assert runs and all(r["validatorScore"] is not None for r in runs)
    assert shown["race"]["validatorVariance"]["pairCount"] > 0
    assert [gql(NODE_QUERY, {"id": i})["node"]["score"] for i in result_ids] == [0.9, 0.9]
    assert _scored(events) == [0.9, 0.9, 0.77]
    # but the race as it stood while it ran still hides them
    ended = runtime.db.call(races.get_race, opened.id).race_completed_at
    stood = gql(AS_OF_RUNS, {"at": (ended - timedelta(microseconds=1)).isoformat()})["currentRace"]
    assert stood["status"] == "RACE_RUNNING"
    stood_runs = [r for e in stood["qualifiers"]["edges"] for r in e["node"]["runs"]]
    assert stood_runs and all(r["validatorScore"] is None for r in stood_runs)
    assert stood["validatorVariance"] == {"pairCount": 0}
