"""`agentVersionEvents` and `minerEvents`: one version's or one miner's life, replayable from cursors."""

from __future__ import annotations

import asyncio
from typing import Any

from oro_graph.auth import sign_headers
from oro_graph.graphql.context import Context
from oro_graph.graphql.schema import schema
from oro_graph.runtime import Runtime
from tests.factories import claim, keypair, make_world, submit
from tests.graphql.test_subscriptions import _lifecycle

VERSION_EVENTS = """
subscription($id: UUID!, $after: String) {
  agentVersionEvents(id: $id, after: $after) {
    __typename
    ... on VersionEvent { cursor agentVersionId }
    ... on VersionRunClaimed { runId validatorHotkey }
    ... on VersionProblemScored { runId score }
    ... on VersionRunFinished { status becameEligible }
    ... on VersionBecameEligible { rank finalScore }
    ... on VersionBecameTop { finalScore }
  }
}
"""

MINER_EVENTS = """
subscription($after: String) {
  minerEvents(after: $after) { __typename ... on VersionEvent { cursor agentVersionId } }
}
"""


async def _collect(
    rt: Runtime, document: str, variables: dict[str, Any], *, n: int, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    stream = await schema.subscribe(
        document, variable_values=variables, context_value=Context(rt, headers=headers or {})
    )
    assert not hasattr(stream, "errors"), stream
    got: list[dict[str, Any]] = []
    async for result in stream:
        assert result.errors is None, result.errors
        event = next(iter(result.data.values()))
        if event["__typename"] != "KeepAlive":
            got.append(event)
        if len(got) >= n:
            break
    return got


def _drive_to_eligible(rt: Runtime, world: Any, name: str) -> Any:
    """A version through one run per validator (claim, heartbeat, one problem scored, success)."""
    version = submit(rt, world.miners[0], name).agent_version_id
    for validator in world.validators[: rt.settings.required_successes]:
        run = claim(rt, validator)
        assert run is not None and run.run.agent_version_id == version
        _lifecycle(rt, run.run.id, validator)
    return version


def test_agent_version_events_replay_its_life_and_resume_from_a_cursor(runtime: Runtime) -> None:
    # given a version driven to eligibility (and so to the top), and another miner's version evaluated too
    world = make_world(runtime)
    version = _drive_to_eligible(runtime, world, "alpha")
    other = submit(runtime, world.miners[1], "beta").agent_version_id
    claim(runtime, world.validators[0])
    runs = runtime.settings.required_successes

    # when the whole history is replayed
    per_run = ["VersionRunClaimed", "VersionRunStatusChanged", "VersionProblemScored", "VersionRunFinished"]
    expected = per_run * runs
    expected += ["VersionBecameEligible", "VersionBecameTop"]
    events = asyncio.run(_collect(runtime, VERSION_EVENTS, {"id": str(version)}, n=len(expected)))

    # then: only this version's events, in order, without heartbeats
    assert [e["__typename"] for e in events] == expected
    assert {e["agentVersionId"] for e in events} == {str(version)}
    assert events[0]["validatorHotkey"] == world.validators[0] and events[2]["score"] == 0.8
    assert events[-3]["becameEligible"] is True and events[-2]["rank"] == 1
    assert other is not None

    # and resuming after the third event gives the rest
    rest = asyncio.run(
        _collect(
            runtime, VERSION_EVENTS, {"id": str(version), "after": events[2]["cursor"]}, n=len(expected) - 3
        )
    )
    assert [e["cursor"] for e in rest] == [e["cursor"] for e in events[3:]]


def test_miner_events_follow_every_version_of_the_signed_miner_only(runtime: Runtime) -> None:
    # given Alice's version evaluated; Bob's version claimed too
    world = make_world(runtime)
    version = _drive_to_eligible(runtime, world, "alpha")
    submit(runtime, world.miners[1], "beta")
    claim(runtime, world.validators[0])

    # when Alice replays from the first cursor
    events = asyncio.run(
        _collect(runtime, MINER_EVENTS, {"after": "0"}, n=5, headers=sign_headers(keypair("Alice")))
    )

    # then
    assert {e["agentVersionId"] for e in events} == {str(version)}
    assert events[0]["__typename"] == "VersionRunClaimed"


def test_miner_events_need_a_signed_miner(runtime: Runtime) -> None:
    # given
    make_world(runtime)

    async def first_error(headers: dict[str, str]) -> str:
        stream = await schema.subscribe(
            MINER_EVENTS, variable_values={}, context_value=Context(runtime, headers=headers)
        )
        if hasattr(stream, "errors"):
            return stream.errors[0].extensions["code"]
        async for result in stream:
            return result.errors[0].extensions["code"]
        raise AssertionError("no answer")

    # when / then: unsigned, and signed by a validator
    assert asyncio.run(first_error({})) == "UNAUTHENTICATED"
    assert asyncio.run(first_error(sign_headers(keypair("Charlie")))) == "FORBIDDEN"


def test_agent_version_events_of_an_unknown_version_are_refused(runtime: Runtime) -> None:
    # given
    make_world(runtime)

    async def first_error() -> str:
        variables = {"id": "00000000-0000-0000-0000-000000000000"}
        stream = await schema.subscribe(
            VERSION_EVENTS, variable_values=variables, context_value=Context(runtime, headers={})
        )
        async for result in stream:  # type: ignore[union-attr]
            return result.errors[0].extensions["code"]
        raise AssertionError("no answer")

    # when / then
    assert asyncio.run(first_error()) == "AGENT_VERSION_NOT_FOUND"
