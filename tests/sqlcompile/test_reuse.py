"""Copies of a document that differ by comments and layout share its compiled statement (a client's
per-request comment no longer rebuilds it), and the statement's text is sent as it is (not parsed and
written again) whenever that gives the same bytes."""

from __future__ import annotations

import json
from typing import cast

import pytest
from sqlalchemy import text

from benchmarks.queries import DEEP_LEADERBOARD
from oro_graph.graphql.router import Router
from oro_graph.graphql.sqlcompile import wire
from tests.sqlcompile.conftest import Graph, parsed

pytestmark = pytest.mark.postgres


def test_copies_by_comment_share_one_statement_and_answer_alike(
    world: Graph, compiled_answers: list[bool], built: list[str]
) -> None:
    copies = [f"# bench {i}\n{DEEP_LEADERBOARD}" for i in range(3)] + [DEEP_LEADERBOARD.replace("\n", " ,\n")]
    answers = {world.post(copy, compiled=True) for copy in copies}
    assert len(answers) == 1 and answers == {world.post(copies[0], compiled=False)}
    assert built == ["DeepLeaderboard"]
    fewer = DEEP_LEADERBOARD.replace("first: 100", "first: 99")
    assert len(parsed(world.post(fewer, compiled=True))["data"]["leaderboard"]["edges"]) == 99
    assert built == ["DeepLeaderboard", "DeepLeaderboard"]  # another token: another statement
    assert compiled_answers == [True] * 5


def test_an_error_answered_from_a_shared_plan_keeps_its_own_locations(
    world: Graph, compiled_answers: list[bool]
) -> None:
    """A copy the compiled statement cannot answer is executed from its own parse: the error's
    location is the copy's."""
    document = '{ agentVersion(id: "not an id") { id } }'
    for copy in (document, "# moved\n\n" + document):
        compiled = world.post(copy, compiled=True)
        assert compiled == world.post(copy, compiled=False)


def test_the_answer_text_is_sent_as_it_is(
    world: Graph, compiled_answers: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    spliced: list[str] = []
    real = Router.encode_json

    def spy(self: Router, data: object) -> str | bytes:
        if isinstance(data, dict) and isinstance(data.get("data"), wire.Answer):
            spliced.append(data["data"].raw)
        return real(self, data)

    monkeypatch.setattr(Router, "encode_json", spy)
    compiled = world.post(DEEP_LEADERBOARD, compiled=True)
    assert compiled == world.post(DEEP_LEADERBOARD, compiled=False)
    assert compiled_answers == [True] and len(spliced) == 1


@pytest.mark.parametrize(
    "name", ["Zoë's agent", 'quote " back \\ slash', "tab\tnew\nline\x01\x7f", "emoji \U0001f680"]
)
def test_names_postgresql_and_python_write_differently_give_the_same_bytes(
    world: Graph, compiled_answers: list[bool], name: str
) -> None:
    board = json.loads(world.post(DEEP_LEADERBOARD, compiled=False))["data"]["leaderboard"]["edges"]
    before = board[0]["node"]["agentVersion"]["agent"]["name"]
    rename = text("UPDATE agent SET name = :new WHERE name = :old")
    with world.runtime.db.engine.begin() as conn:
        conn.execute(rename, {"new": name, "old": before})
    try:
        compiled = world.post(DEEP_LEADERBOARD, compiled=True)
        assert compiled == world.post(DEEP_LEADERBOARD, compiled=False)
        edges = json.loads(compiled)["data"]["leaderboard"]["edges"]
        assert edges[0]["node"]["agentVersion"]["agent"]["name"] == name
        assert compiled_answers == [True]
    finally:
        with world.runtime.db.engine.begin() as conn:
            conn.execute(rename, {"new": before, "old": name})


@pytest.mark.parametrize(
    "raw", ['{"a":[{"b":1.5,"c":"x"},{"b":null,"c":"y"}],"d":true}', '{"s":"Zo\\u00eb"}']
)
def test_a_batch_is_written_as_json_dumps_would(raw: str) -> None:
    batch = [{"data": wire.Answer(raw), "extensions": {"x": 1}}, {"data": wire.Answer(raw)}]
    expected = [{"data": json.loads(raw), "extensions": {"x": 1}}, {"data": json.loads(raw)}]
    assert Router.encode_json(cast(Router, None), batch) == json.dumps(expected, separators=(",", ":"))
