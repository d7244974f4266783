"""Execution capacity (oro_graph/edge/capacity.py): graph reads wait in a bounded line, signed writes do not.

Each test holds capacity itself (the read slots, or every default worker thread) and shows, by what
has answered and what still waits, that a signed heartbeat is served anyway; no timing is asserted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread
import httpx
import pytest

from oro_graph.app import create_app
from oro_graph.auth import sign_headers
from oro_graph.edge.capacity import Lanes, Saturated, lane_of
from oro_graph.models import Role
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.factories import claim, keypair, make_suite, register, submit

QUERY = {"query": "{ __typename }"}


def _app(runtime: Runtime, **overrides: Any) -> Any:
    settings = Settings(
        **{
            **runtime.settings.model_dump(),
            "write_rate_limit": "10000/minute",
            "rate_limit_per_minute": 100_000,
            "response_cache": False,
            **overrides,
        }
    )
    return create_app(settings, runtime=Runtime.build(settings, db=runtime.db), migrate=False)


def _claimed_run(runtime: Runtime) -> str:
    make_suite(runtime)
    miner = register(runtime, "Alice")
    validator = register(runtime, "Charlie", Role.VALIDATOR)
    submit(runtime, miner, "agent")
    got = claim(runtime, validator)
    assert got is not None
    return str(got.run.id)


async def _until(condition: Any) -> None:
    for _ in range(2000):  # the loop turns, not the clock: each pass lets every ready task run
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_a_signed_heartbeat_answers_while_every_read_slot_is_taken_and_a_full_line_is_refused(runtime):
    run = _claimed_run(runtime)
    app = _app(runtime, capacity_read_slots=1, capacity_read_queue=1, capacity_retry_after_seconds=2)
    lanes: Lanes = app.state.capacity

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # given the only read slot taken (a long graph execution in progress)
            async with lanes.reading():
                # when a graph read arrives, it waits in line
                queued = asyncio.create_task(client.post("/graphql", json=QUERY))
                await _until(lambda: lanes.waiting == 1)
                # and the next one finds the line full: 503 with Retry-After, nothing executed
                refused = await client.post("/graphql", json=QUERY)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "2"
                assert refused.json()["error_code"] == "SERVICE_UNAVAILABLE"
                assert "no-store" in refused.headers["cache-control"]
                # while a signed heartbeat is answered at once, ahead of the waiting read
                beat = await client.post(
                    f"/v1/validator/evaluation-runs/{run}/heartbeat",
                    json={},
                    headers=sign_headers(keypair("Charlie")),
                )
                assert beat.status_code == 200, beat.text
                assert not queued.done()
                assert (lanes.admitted, lanes.waiting, lanes.refused) == (1, 1, 1)
            # then the slot passes to the waiting read, which is answered
            answered = await queued
            assert answered.status_code == 200 and answered.json()["data"] == {"__typename": "Query"}
            assert (lanes.admitted, lanes.executing, lanes.waiting) == (2, 0, 0)

    asyncio.run(scenario())


def test_a_signed_heartbeat_has_threads_of_its_own_when_reads_hold_every_default_thread(runtime):
    run = _claimed_run(runtime)
    app = _app(runtime)

    async def scenario() -> None:
        default = anyio.to_thread.current_default_thread_limiter()
        holders = [object() for _ in range(int(default.total_tokens))]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # given every default worker thread taken (reads blocked in the database, say)
            for holder in holders:
                await default.acquire_on_behalf_of(holder)
            try:
                # when an unsigned REST read arrives, it waits for a thread
                read = asyncio.create_task(client.get("/v1/public/suites/current"))
                await _until(lambda: default.statistics().tasks_waiting >= 1)
                # while a signed heartbeat is answered on the write lane's threads
                beat = await asyncio.wait_for(  # a generous guard: a starved heartbeat fails, not hangs
                    client.post(
                        f"/v1/validator/evaluation-runs/{run}/heartbeat",
                        json={},
                        headers=sign_headers(keypair("Charlie")),
                    ),
                    timeout=60,
                )
                assert beat.status_code == 200, beat.text
                assert not read.done()
            finally:
                for holder in holders:
                    default.release_on_behalf_of(holder)
            assert (await read).status_code in (200, 404)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("method", "path", "headers", "lane"),
    [
        ("POST", "/graphql", [], "read"),
        ("GET", "/graphql", [], "read"),
        ("POST", "/graphql", [(b"x-signature", b"0x00")], "write"),
        ("POST", "/graphql", [(b"accept", b"text/event-stream")], None),
        ("POST", "/v1/validator/work/claim", [], "write"),
        ("POST", "/v1/miner/upload", [], "write"),
        ("GET", "/v1/validator/evaluation-runs/x/problems", [(b"x-signature", b"0x00")], "write"),
        ("GET", "/v1/public/leaderboard", [], None),
        ("GET", "/health", [], None),
    ],
)
def test_requests_are_put_in_their_lane(method, path, headers, lane):
    assert lane_of({"type": "http", "method": method, "path": path, "headers": headers}) == lane


def test_the_read_line_is_served_in_arrival_order_and_a_cancelled_waiter_leaves_it():
    async def scenario() -> list[int]:
        lanes = Lanes(read_slots=1, read_queue=3)
        order: list[int] = []
        gate = asyncio.Event()

        async def read(i: int) -> None:
            async with lanes.reading():
                order.append(i)
                await gate.wait()

        first = asyncio.create_task(read(0))
        await _until(lambda: lanes.executing == 1)
        waiting = [asyncio.create_task(read(i)) for i in (1, 2, 3)]
        await _until(lambda: lanes.waiting == 3)
        with pytest.raises(Saturated):
            async with lanes.reading():
                pass
        waiting[0].cancel()  # a client that went away gives its place up
        await _until(lambda: lanes.waiting == 2)
        gate.set()
        await asyncio.gather(first, *waiting[1:])
        assert (lanes.executing, lanes.waiting, lanes.refused) == (0, 0, 1)
        return order

    assert asyncio.run(scenario()) == [0, 2, 3]


def test_a_graph_read_waits_while_a_signed_call_is_in_flight_and_goes_on_when_it_ends(runtime):
    app = _app(runtime, capacity_read_yield_seconds=10)  # the bound is not what this test looks at
    lanes: Lanes = app.state.capacity

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # given a signed call in flight in this process
            with lanes.writing():
                # when a graph read (and a health check) arrive, they wait for it
                read = asyncio.create_task(client.post("/graphql", json=QUERY))
                health = asyncio.create_task(client.get("/health"))
                await _until(lambda: lanes.yielded == 2)
                for _ in range(50):
                    await asyncio.sleep(0)
                assert not read.done() and not health.done()
                assert lanes.admitted == 0  # nothing of the read ran yet
            # then the signed call's end lets them through
            answered = await read
            assert answered.status_code == 200 and answered.json()["data"] == {"__typename": "Query"}
            assert (await health).status_code == 200

    asyncio.run(scenario())


def test_reads_yield_to_a_young_signed_call_only_and_not_at_all_when_disabled():
    async def scenario() -> None:
        # given a signed call that started longer ago than the yield window: reads do not wait
        lanes = Lanes(read_yield_seconds=60)
        with lanes.writing():
            lanes._writes = {k: v - 120 for k, v in lanes._writes.items()}
            await lanes.yield_to_writes()
            assert lanes.yielded == 0
            # but a second, young one holds them back again until every signed call has ended
            with lanes.writing():
                waiting = asyncio.create_task(lanes.yield_to_writes())
                await _until(lambda: lanes.yielded == 1)
                await asyncio.sleep(0)
                assert not waiting.done()
            await asyncio.sleep(0)
            assert not waiting.done()  # the old one is still in flight, the young one's window is open
        await waiting
        # and with the yield off, a read never waits
        off = Lanes(read_yield_seconds=0)
        with off.writing():
            await off.yield_to_writes()
        assert off.yielded == 0

    asyncio.run(scenario())


def test_a_signed_event_stream_is_not_a_signed_call_reads_yield_to():
    async def scenario() -> None:
        lanes = Lanes(read_yield_seconds=10)
        opened = asyncio.Event()
        close = asyncio.Event()

        async def stream(scope: Any, receive: Any, send: Any) -> None:
            opened.set()
            await close.wait()

        from oro_graph.edge.capacity import WriteLane

        app = WriteLane(stream, lanes)
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/graphql",
            "headers": [(b"x-signature", b"0x00"), (b"accept", b"text/event-stream")],
        }
        # given a signed subscription stream open in this process
        task = asyncio.create_task(app(scope, None, None))
        await opened.wait()
        # then a read does not wait for it
        await lanes.yield_to_writes()
        assert lanes.yielded == 0
        close.set()
        await task

    asyncio.run(scenario())
