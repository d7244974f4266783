import json

import httpx
import pandas as pd
import pytest

from oro_graph.analytics.client import Client, GraphQLError, frame

PAGED = (
    "query($first: Int, $after: String) { things(first: $first, after: $after) "
    "{ edges { node { id } } pageInfo { hasNextPage endCursor } } }"
)


def _client(handler, **kw):
    return Client("http://graph.test/graphql", transport=httpx.MockTransport(handler), backoff=0.0, **kw)


def test_query_raises_on_errors_sent_with_200():
    def handler(request):
        return httpx.Response(
            200, json={"data": None, "errors": [{"message": "boom", "extensions": {"code": "FORBIDDEN"}}]}
        )

    with pytest.raises(GraphQLError, match=r"boom \[FORBIDDEN\]"):
        _client(handler).query("{ x }")


def test_retries_on_5xx_and_429_but_not_on_400():
    calls = []

    def flaky(request):
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503 if len(calls) == 1 else 429, json={})
        return httpx.Response(200, json={"data": {"ok": True}})

    assert _client(flaky).query("{ ok }") == {"ok": True}
    assert len(calls) == 3

    bad = []

    def refuse(request):
        bad.append(1)
        return httpx.Response(400, json={"errors": [{"message": "syntax"}]})

    with pytest.raises(GraphQLError, match="syntax"):
        _client(refuse).query("{")
    assert len(bad) == 1


def test_retries_are_bounded():
    calls = []

    def down(request):
        calls.append(1)
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(httpx.HTTPStatusError):
        _client(down, retries=2).query("{ x }")
    assert len(calls) == 3


def test_paginate_follows_cursors_lazily():
    pages = {None: (["a", "b"], "c1", True), "c1": (["c"], "c2", False)}
    seen = []

    def handler(request):
        variables = json.loads(request.content)["variables"]
        seen.append(variables["after"])
        ids, cursor, more = pages[variables["after"]]
        edges = [{"node": {"id": i}} for i in ids]
        return httpx.Response(
            200,
            json={
                "data": {"things": {"edges": edges, "pageInfo": {"hasNextPage": more, "endCursor": cursor}}}
            },
        )

    nodes = _client(handler).paginate(PAGED, {}, ["things"], page_size=2)
    assert next(nodes) == {"id": "a"} and seen == [None]  # lazy: one page fetched so far
    assert [n["id"] for n in nodes] == ["b", "c"]
    assert seen == [None, "c1"]


def test_paginate_stops_on_a_repeated_cursor():
    def handler(request):
        return httpx.Response(
            200,
            json={
                "data": {
                    "things": {
                        "edges": [{"node": {"id": 1}}],
                        "pageInfo": {"hasNextPage": True, "endCursor": "same"},
                    }
                }
            },
        )

    with pytest.raises(GraphQLError, match="repeated cursor"):
        list(_client(handler).paginate(PAGED, {}, ["things"]))


COLUMNS = {
    "id": "str",
    "validator_score": "float",
    "claimed_at": "datetime",
    "status": "category",
    "agent_version_version_number": "int",
}


def test_frame_flattens_and_types():
    nodes = [
        {
            "id": "r1",
            "validatorScore": 0.5,
            "claimedAt": "2026-10-01T00:00:00+00:00",
            "status": "SUCCESS",
            "agentVersion": {"versionNumber": 2},
        },
        {
            "id": "r2",
            "validatorScore": None,
            "claimedAt": "2026-10-02T12:00:00Z",
            "status": "STALE",
            "agentVersion": {"versionNumber": 1},
        },
    ]
    df = frame(nodes, columns=COLUMNS, categories={"status": ["SUCCESS", "FAILED", "STALE"]})
    assert list(df.columns) == list(COLUMNS)
    assert str(df["validator_score"].dtype) == "Float64" and pd.isna(df["validator_score"][1])
    assert str(df["claimed_at"].dt.tz) == "UTC"
    assert list(df["status"].cat.categories) == ["SUCCESS", "FAILED", "STALE"]
    assert df["agent_version_version_number"].tolist() == [2, 1]


def test_frame_of_nothing_keeps_every_column():
    df = frame([], columns=COLUMNS, categories={"status": ["SUCCESS"]})
    assert df.empty and list(df.columns) == list(COLUMNS)
    assert str(df["validator_score"].dtype) == "Float64"
