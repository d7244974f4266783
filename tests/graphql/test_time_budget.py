"""A GraphQL request has a wall-clock budget (``ORO_GRAPHQL_TIME_BUDGET_SECONDS``).

Nothing here waits for a clock: a resolver that never returns is stopped by the deadline (a tiny
budget), and a resolver that is "slow" moves the executor's clock by hand, so what runs after it
is decided by the deadline, not by the machine's speed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry

from oro_graph.edge import deadline as deadline_module
from oro_graph.edge.deadline import REQUEST_DEADLINE, BoundedExecutor, Deadline
from oro_graph.runtime import Runtime
from oro_graph.services import suites as suite_services
from tests.factories import make_suite
from tests.graphql.conftest import _client


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(deadline_module, "clock", fake)
    return fake


def _instrument(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, slow: Callable[[], Any]) -> list[str]:
    """Record every service call the graph makes; ``current_suite_or_none`` also calls ``slow``."""
    calls: list[str] = []
    original = runtime.db.run

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn.__name__)
        if fn is suite_services.current_suite_or_none:
            await slow()
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(runtime.db, "run", run)
    return calls


def _refused(answer: dict[str, Any], budget: float) -> None:
    assert answer["data"] is None, answer
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "TIME_BUDGET_EXCEEDED", error
    assert error["extensions"]["budgetSeconds"] == budget
    assert "time budget" in error["message"]


def test_a_batch_over_the_budget_is_stopped_and_its_resolvers_cancelled(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    # given a resolver that would wait forever, and a budget of 50 ms (the executor's clock stands
    # still, so however slow the machine, the resolver starts: only the cancellation can end it)
    make_suite(runtime)
    cancelled: list[bool] = []

    async def forever() -> None:
        try:  # (the 60 s are a backstop, so that a broken budget fails rather than hangs)
            await asyncio.wait_for(asyncio.Event().wait(), 60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    calls = _instrument(runtime, monkeypatch, forever)
    client = _client(runtime, graphql_time_budget_seconds=0.05, rate_limit_per_minute=100_000)
    document = "{ currentSuite { suiteId validatorVariance { versions meanSpread } } }"

    # when
    response = client.post("/graphql", json=[{"query": document}, {"query": document}])

    # then both operations are answered with the refusal (HTTP 200, as the other budget refusals),
    # the waiting resolvers were cancelled, and nothing below them ran
    assert response.status_code == 200, response.text
    for answer in response.json():
        _refused(answer, 0.05)
    assert cancelled == [True, True]
    assert calls == ["current_suite_or_none", "current_suite_or_none"]

    # and the worker is free: the next request is answered
    monkeypatch.undo()
    body = _client(runtime).post("/graphql", json={"query": "{ currentSuite { suiteId } }"}).json()
    assert body["data"]["currentSuite"]["suiteId"] >= 1


def test_a_query_waiting_on_a_worker_thread_is_answered_without_waiting_for_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    # given a read that blocks its worker thread until the test lets it go (threads cannot be killed)
    make_suite(runtime)
    release, finished = threading.Event(), threading.Event()

    def blocked(session: Any) -> None:
        release.wait(60)  # a backstop: a broken budget fails the test rather than hanging it
        finished.set()

    monkeypatch.setattr(suite_services, "current_suite_or_none", blocked)
    client = _client(runtime, graphql_time_budget_seconds=0.05, rate_limit_per_minute=100_000)

    # when
    response = client.post("/graphql", json={"query": "{ currentSuite { suiteId } }"})

    # then the refusal came while the thread was still blocked: the request did not wait for it
    still_running = not finished.is_set()
    release.set()
    _refused(response.json(), 0.05)
    assert still_running
    assert finished.wait(10)


def test_no_field_is_resolved_once_the_deadline_has_passed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    # given a resolver that returns after the deadline (a blocking call: it cannot be cancelled)
    make_suite(runtime)

    async def late() -> None:
        clock.now += 11.0

    calls = _instrument(runtime, monkeypatch, late)
    client = _client(runtime, graphql_time_budget_seconds=10.0, rate_limit_per_minute=100_000)

    # when
    document = "{ currentSuite { suiteId validatorVariance { versions meanSpread } } }"
    response = client.post("/graphql", json={"query": document})

    # then the fields below it are not resolved (validatorVariance's service never ran), and the
    # query is answered as a whole with one error
    assert response.status_code == 200
    _refused(response.json(), 10.0)
    assert calls == ["current_suite_or_none"]


def test_within_the_budget_the_same_query_runs(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    # given the same resolver, a second short of the deadline
    make_suite(runtime)

    async def almost() -> None:
        clock.now += 9.0

    calls = _instrument(runtime, monkeypatch, almost)
    client = _client(runtime, graphql_time_budget_seconds=10.0, rate_limit_per_minute=100_000)

    # when
    document = "{ currentSuite { suiteId validatorVariance { versions meanSpread } } }"
    body = client.post("/graphql", json={"query": document}).json()

    # then
    assert "errors" not in body, body
    assert calls == ["current_suite_or_none", "validator_variance"]


def test_the_operations_of_a_batch_share_one_deadline(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    make_suite(runtime)
    seen: list[Deadline | None] = []

    async def look() -> None:
        seen.append(REQUEST_DEADLINE.get())

    _instrument(runtime, monkeypatch, look)
    client = _client(runtime, graphql_time_budget_seconds=7.0, rate_limit_per_minute=100_000)

    # when
    document = "{ currentSuite { suiteId } }"
    client.post("/graphql", json=[{"query": document}, {"query": document}, {"query": document}])

    # then
    assert len(seen) == 3 and seen[0] is not None and seen[0].budget == 7.0
    assert seen[1] is seen[0] and seen[2] is seen[0]


# -- the executor alone: mutations and subscriptions --------------------------------------------

ran: list[str] = []


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Mutation:
    @strawberry.mutation
    def first(self) -> int:
        ran.append("first")
        deadline_module.clock.now += 11.0  # type: ignore[attr-defined]
        return 1

    @strawberry.mutation
    def second(self) -> int | None:
        ran.append("second")
        return 2


@strawberry.type
class Event:
    number: int

    @strawberry.field
    async def slow(self) -> int:
        if self.number == 1:
            await asyncio.wait_for(asyncio.Event().wait(), 60)  # only the event's deadline ends this
        return self.number


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(self) -> AsyncGenerator[Event, None]:
        for number in (1, 2):
            deadline_module.clock.now += 100.0  # type: ignore[attr-defined]
            yield Event(number=number)


bounded = strawberry.Schema(
    query=Query, mutation=Mutation, subscription=Subscription, execution_context_class=BoundedExecutor
)


def _context(budget: float) -> SimpleNamespace:
    return SimpleNamespace(
        runtime=SimpleNamespace(settings=SimpleNamespace(graphql_time_budget_seconds=budget))
    )


@pytest.fixture
def reset_ran() -> Iterator[None]:
    ran.clear()
    yield
    ran.clear()


def test_a_mutation_keeps_what_completed_and_starts_nothing_after_the_deadline(
    clock: FakeClock, reset_ran: None
) -> None:
    # when the first of two mutation fields ends after the deadline
    result = asyncio.run(bounded.execute("mutation { first second }", context_value=_context(10.0)))

    # then the first keeps its answer (its transaction is done), the second never started
    assert ran == ["first"]
    assert result.data == {"first": 1, "second": None}
    [error] = result.errors or []
    assert error.path == ["second"] and (error.extensions or {})["code"] == "TIME_BUDGET_EXCEEDED"


def test_each_subscription_event_has_its_own_budget(clock: FakeClock) -> None:
    # given a subscription that lives far beyond the budget (100 s between events on the clock)
    async def collect() -> list[Any]:
        document = "subscription { events { number slow } }"
        results = await bounded.subscribe(document, context_value=_context(0.05))
        return [result async for result in results]  # type: ignore[union-attr]

    # when
    answers = asyncio.run(collect())

    # then the event whose field never returned is stopped, and the stream goes on
    assert answers[0].data is None
    assert [(e.extensions or {}).get("code") for e in answers[0].errors or []] == ["TIME_BUDGET_EXCEEDED"]
    assert answers[1].data == {"events": {"number": 2, "slow": 2}} and not answers[1].errors
