"""The rules of graphql-sse single-connection streams shared by the server processes (both databases)."""

from __future__ import annotations

import pytest

from oro_graph.runtime import Runtime
from oro_graph.services import eventstreams
from oro_graph.services.eventstreams import StreamRefused

NOW = 1_000_000.0
REQUEST = {"method": "POST", "headers": [], "client": None, "query": "{ __typename }"}


def refused(status: int, fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(StreamRefused) as caught:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def test_a_stream_opens_once_and_only_while_its_reservation_lives(runtime: Runtime) -> None:
    call = runtime.db.call
    call(eventstreams.reserve, "t", now=NOW, expires_at=NOW + 60, max_streams=10)
    assert "PUT /graphql" in refused(
        404, call, eventstreams.open_stream, "nope", now=NOW, expires_at=NOW + 60
    )
    # a reservation nobody opened in time lapses
    refused(404, call, eventstreams.open_stream, "t", now=NOW + 61, expires_at=NOW + 121)
    call(eventstreams.open_stream, "t", now=NOW + 1, expires_at=NOW + 61)
    assert "already open" in refused(
        409, call, eventstreams.open_stream, "t", now=NOW + 2, expires_at=NOW + 62
    )
    # its holder renews it while taking its messages; a holder that stopped renewing lets it lapse
    call(eventstreams.take, ["t"], renew_until=NOW + 200)
    call(eventstreams.submit, "t", "a", REQUEST, now=NOW + 150, max_operations=5)
    refused(404, call, eventstreams.submit, "t", "b", REQUEST, now=NOW + 201, max_operations=5)


def test_operations_have_unique_ids_a_cap_and_reach_the_holder_in_order(runtime: Runtime) -> None:
    call = runtime.db.call
    call(eventstreams.reserve, "t", now=NOW, expires_at=NOW + 60, max_streams=10)
    call(eventstreams.submit, "t", "a", REQUEST, now=NOW, max_operations=2)
    assert "already running" in refused(
        409, call, eventstreams.submit, "t", "a", REQUEST, now=NOW, max_operations=2
    )
    call(eventstreams.submit, "t", "b", {**REQUEST, "query": "{ b: __typename }"}, now=NOW, max_operations=2)
    refused(429, call, eventstreams.submit, "t", "c", REQUEST, now=NOW, max_operations=2)
    call(eventstreams.stop, "t", "a", now=NOW)
    refused(404, call, eventstreams.stop, "t", "a", now=NOW)  # stopped already
    # when the holder takes them: in the order sent, once
    assert call(eventstreams.waiting, ["other", "t"]) and not call(eventstreams.waiting, ["other"])
    taken = call(eventstreams.take, ["t", "other"])
    assert not call(eventstreams.waiting, ["t"])
    assert [(token, sorted(m)) for token, m in taken] == [("t", ["request", "run"])] * 2 + [("t", ["stop"])]
    assert [m.get("run") or m.get("stop") for _, m in taken] == ["a", "b", "a"]
    assert taken[1][1]["request"]["query"] == "{ b: __typename }"
    assert call(eventstreams.take, ["t"]) == []
    # a finished operation frees its id; a closed stream takes nothing more
    call(eventstreams.finish, "t", "b")
    call(eventstreams.submit, "t", "b", REQUEST, now=NOW, max_operations=2)
    call(eventstreams.close, "t")
    refused(404, call, eventstreams.submit, "t", "c", REQUEST, now=NOW, max_operations=2)
    assert call(eventstreams.take, ["t"]) == []


def test_reservations_are_capped_and_lapsed_ones_make_room(runtime: Runtime) -> None:
    call = runtime.db.call
    call(eventstreams.reserve, "a", now=NOW, expires_at=NOW + 60, max_streams=2)
    call(eventstreams.reserve, "b", now=NOW, expires_at=NOW + 10, max_streams=2)
    call(eventstreams.submit, "b", "x", REQUEST, now=NOW, max_operations=5)
    refused(503, call, eventstreams.reserve, "c", now=NOW + 1, expires_at=NOW + 61, max_streams=2)
    call(eventstreams.reserve, "c", now=NOW + 11, expires_at=NOW + 71, max_streams=2)  # b lapsed
    assert call(eventstreams.take, ["b"]) == []  # and what was sent to it went with it
