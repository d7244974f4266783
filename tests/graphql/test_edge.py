"""The edge in front of /graphql: the server's own budgets (Settings), and each rule judged once."""

from __future__ import annotations

from typing import Any

import pytest

from oro_graph.edge import limits
from oro_graph.graphql.schema import schema
from oro_graph.runtime import Runtime
from oro_graph.settings import DEFAULT_GRAPHQL_LIMITS, Settings
from tests.graphql.conftest import _client

TWO_ALIASES = "query { a: currentSuite { suiteId } b: currentSuite { suiteId } }"
BOARD = "query Board { currentSuite { suiteId } }"


def test_budgets_are_the_servers_settings(runtime: Runtime) -> None:
    # given a server whose alias and batch budgets are lower than the defaults
    client = _client(runtime, graphql_max_aliases=1, graphql_max_batch=2)

    # when
    aliased = client.post("/graphql", json={"query": TWO_ALIASES}).json()
    batch = client.post("/graphql", json=[{"query": "{ __typename }"}] * 3)
    default = _client(runtime).post("/graphql", json={"query": TWO_ALIASES}).json()

    # then
    assert aliased["data"] is None and aliased["errors"][0]["message"] == "2 aliases found. Allowed: 1"
    assert batch.status_code == 400 and "Too many operations" in batch.text
    assert "errors" not in default


def test_the_committed_sdl_does_not_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # given budgets in the environment that differ from the defaults
    monkeypatch.setenv("ORO_GRAPHQL_MAX_COST", "7")

    # when
    settings = Settings()

    # then the server reads them, the schema's text states the defaults
    assert settings.graphql_limits.max_cost == 7
    assert f"an operation may cost at most {DEFAULT_GRAPHQL_LIMITS.max_cost} " in schema.as_str()


def test_an_admitted_operation_is_judged_once(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the limit rules, counted
    judged: list[str] = []
    rules = limits.limit_errors

    def counted(*args: Any, **kwargs: Any) -> Any:
        judged.append("judged")
        return rules(*args, **kwargs)

    monkeypatch.setattr(limits, "limit_errors", counted)
    client = _client(runtime, response_cache=False)

    # when one operation, then a batch of two, are sent
    single = client.post("/graphql", json={"query": BOARD})
    once = len(judged)
    batch = client.post("/graphql", json=[{"query": BOARD}, {"query": BOARD, "variables": {"x": 1}}])

    # then the gate judged each operation and the schema took its verdict (the cost it reports)
    assert single.status_code == 200 and "errors" not in single.json(), single.text
    assert single.json()["extensions"]["cost"]["requested"] > 0
    assert once == 1
    assert batch.status_code == 200 and all("errors" not in answer for answer in batch.json())
    assert len(judged) == once + 2


def test_a_copy_by_comment_or_layout_is_not_judged_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the gate's parser and limit rules, counted
    judged: list[str] = []
    rules, parse = limits.limit_errors, limits.parse_document

    def counted_rules(*args: Any, **kwargs: Any) -> Any:
        judged.append("rules")
        return rules(*args, **kwargs)

    def counted_parse(*args: Any, **kwargs: Any) -> Any:
        judged.append("parse")
        return parse(*args, **kwargs)

    monkeypatch.setattr(limits, "limit_errors", counted_rules)
    monkeypatch.setattr(limits, "parse_document", counted_parse)
    client = _client(runtime, response_cache=False)
    board = "query Board { currentSuite { suiteId } }"

    # when copies of one document that differ by a comment or their layout are sent
    answers = [
        client.post("/graphql", json={"query": copy, "variables": {"n": 2}}).json()
        for copy in (board, f"# build 1\n{board}", f"# build 2\n{board.replace(' ', '  ')}")
    ]
    first = judged.count("rules")
    # and copies with other variables, or with a string literal
    client.post("/graphql", json={"query": f"# build 3\n{board}", "variables": {"n": 3}})
    literal = 'query { agentVersion(id: "QWdlbnRWZXJzaW9uOjE=") { id } }'
    for copy in (literal, f"# build 4\n{literal}"):
        client.post("/graphql", json={"query": copy})

    # then the copies were judged once, and answered alike
    assert first == 1 and all(answer == answers[0] for answer in answers), answers
    assert "errors" not in answers[0] and answers[0]["extensions"]["cost"]["requested"] > 0
    # other variables may cost otherwise (these, unused, do not: others may); a string could hide
    # tokens from the canonical form
    assert judged.count("rules") == first + 3
