"""Copies of a document that differ by comments and layout share its compiled statement (a client's
per-request comment no longer rebuilds it); another document gets its own."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.queries import DEEP_LEADERBOARD
from oro_graph.graphql.sqlcompile import executor
from tests.sqlcompile.conftest import Graph, parsed

pytestmark = pytest.mark.postgres


def test_copies_by_comment_share_one_statement_and_answer_alike(
    world: Graph, compiled_answers: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = executor.compile_operation

    def counting(*args: Any) -> Any:
        built.append(args[1].name.value)
        return real(*args)

    monkeypatch.setattr(executor, "PLANS", executor.Plans())
    monkeypatch.setattr(executor, "compile_operation", counting)
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
