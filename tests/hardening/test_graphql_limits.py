"""Abusive documents are refused before any SQL runs, with an error that names the limit; /graphql
bodies and headers are capped like the /v1 ones.

The documents are those of ``benchmarks/refusals.py`` (which measures what each refusal costs):
deep nesting, alias fan-out, huge pages (literal and variable), too many ids, an over-budget
cost, too many tokens, and batches (too many operations, or too costly ones). Every SQL statement
the engine runs is counted by a listener of the test's own, so a limit that stops working (or
starts working only after a query ran) fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from graphql.language.lexer import Lexer

from benchmarks.refusals import ABUSES, Abuse, StatementCounter, errors_of
from oro_graph.app import create_app
from oro_graph.edge.sizecap import MAX_HEADER_BYTES, MAX_JSON_BODY_BYTES, MULTIPART_OVERHEAD_BYTES
from oro_graph.runtime import Runtime
from oro_graph.settings import DEFAULT_GRAPHQL_LIMITS as LIMITS
from oro_graph.settings import Settings
from tests.factories import make_eligible, make_world
from tests.hardening.conftest import ErrorLog

LIMIT_CODES = {"GRAPHQL_VALIDATION_FAILED", "BAD_PAGE_ARGUMENT", "QUERY_TOO_COSTLY"}
SUBMIT_AGENT = 'mutation ($f: Upload!) { submitAgent(agentName: "a", file: $f) { __typename } }'


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The served app over a world with rows behind every root field: an admitted document runs SQL."""
    world = make_world(runtime)
    make_eligible(runtime, world, world.miners[0], "alpha", [0.5, 0.7])
    settings = Settings(**{**runtime.settings.model_dump(), "rate_limit_per_minute": 100_000})
    app = create_app(settings, runtime=Runtime.build(settings, db=runtime.db), migrate=False)
    yield TestClient(app)


@pytest.mark.parametrize("abuse", ABUSES, ids=[a.name for a in ABUSES])
def test_an_abusive_document_is_refused_before_any_sql(
    runtime: Runtime, client: TestClient, abuse: Abuse, error_log: ErrorLog
) -> None:
    # when
    with StatementCounter(runtime.db.engine) as sql:
        response = client.post("/graphql", json=abuse.body)

    # then
    assert sql.count == 0, f"{sql.count} SQL statements ran before {abuse.name} was refused"
    assert response.status_code == abuse.status, response.text
    if abuse.code is None:  # refused by the HTTP layer, before any operation
        assert abuse.words in response.text
    else:
        body = response.json()
        answers = body if isinstance(body, list) else [body]
        assert all(answer["data"] is None for answer in answers), body
        for answer in answers:  # every operation of a batch is refused, each saying why
            named = [e for e in answer["errors"] if e["extensions"]["code"] == abuse.code]
            assert named and abuse.words in named[0]["message"], answer["errors"]
        assert all(e["extensions"]["code"] in LIMIT_CODES for e in errors_of(body)), body
    assert error_log.messages() == []


def test_the_same_documents_within_the_limits_do_run_sql(runtime: Runtime, client: TestClient) -> None:
    # given the smallest admissible neighbours of the abusive documents (the counter does count)
    documents = [
        "{ " + " ".join(f"a{i}: currentSuite {{ suiteId }}" for i in range(30)) + " }",
        "{ suites(first: 100) { totalCount } }",
        "{ leaderboard(first: 10) { edges { node { agentVersion { agent { miner { hotkey } } } } } } }",
        "{ " + "currentSuite { suiteId } " * 30 + "}",  # 870 repeated pairs, within the 1,000
        "{ ...F4 } fragment F0 on Query { currentSuite { suiteId } } "  # 47 fields once expanded
        + " ".join(f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 5)),
    ]
    for document in documents:
        # when
        with StatementCounter(runtime.db.engine) as sql:
            body = client.post("/graphql", json={"query": document}).json()
        # then
        assert "errors" not in body, body
        assert sql.count > 0


def test_a_refused_document_reports_only_the_limit_not_the_rest_of_validation(client: TestClient) -> None:
    # given a document over the alias limit that also asks for a field that does not exist
    document = "{ " + " ".join(f"a{i}: currentSuite {{ suiteId nope }}" for i in range(40)) + " }"

    # when
    errors = client.post("/graphql", json={"query": document}).json()["errors"]

    # then the limit pass refused it alone: the standard rules (one error per alias here) never ran
    assert [e["message"] for e in errors] == ["40 aliases found. Allowed: 30"]


def _chunks(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_graphql_bodies_are_capped_with_or_without_a_content_length(
    runtime: Runtime, client: TestClient, error_log: ErrorLog
) -> None:
    # given a JSON body just over the cap, and an agent file over the agent limit
    body = json.dumps({"query": "{ __typename }", "variables": {"x": "a" * MAX_JSON_BODY_BYTES}}).encode()
    operations = json.dumps({"query": SUBMIT_AGENT, "variables": {"f": None}})
    too_big = b"x" * (runtime.settings.max_agent_bytes + MULTIPART_OVERHEAD_BYTES + 1)
    multipart = client.build_request(
        "POST",
        "/graphql",
        data={"operations": operations, "map": json.dumps({"0": ["variables.f"]})},
        files={"0": ("agent.py", too_big, "text/x-python")},
    )
    multipart_body, multipart_type = multipart.read(), multipart.headers["content-type"]

    # when each is sent with its Content-Length, and streamed in chunks without one
    with StatementCounter(runtime.db.engine) as sql:
        answers = [
            client.post("/graphql", content=body, headers={"content-type": "application/json"}),
            client.post("/graphql", content=_chunks(body), headers={"content-type": "application/json"}),
            client.post("/graphql", content=multipart_body, headers={"content-type": multipart_type}),
            client.post(
                "/graphql", content=_chunks(multipart_body), headers={"content-type": multipart_type}
            ),
        ]

    # then each is a 413 in the GraphQL shape, nothing was read into the database, nothing was logged
    for answer in answers:
        assert answer.status_code == 413, answer.text[:300]
        [error] = answer.json()["errors"]
        assert error["extensions"]["code"] == "FILE_TOO_LARGE" and "exceeds" in error["message"]
    assert sql.count == 0
    assert error_log.messages() == []


def test_graphql_headers_are_capped(client: TestClient) -> None:
    # when
    response = client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"X-Padding": "a" * (MAX_HEADER_BYTES + 1)}
    )

    # then
    assert response.status_code == 431
    assert "request headers total" in response.json()["errors"][0]["message"]


def test_a_body_within_the_cap_is_served(client: TestClient) -> None:
    # given variables of almost the whole cap
    padding = "a" * (MAX_JSON_BODY_BYTES - 1000)
    payload: dict[str, Any] = {"query": "{ __typename }", "variables": {"padding": padding}}

    # when
    response = client.post("/graphql", json=payload)

    # then
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("{ " + "a " * 49_000 + "}", f"at most {LIMITS.max_document_chars} are allowed"),
        ("{ " + "a " * 6_000 + "}", f"more than {LIMITS.max_tokens} tokens"),
        ("{ " + " ".join(f"a{i}: b" for i in range(200)) + " }", "200 aliases found"),
        ("{ " + "a { " * 600 + "b" + " }" * 600 + " }", "exceeds maximum operation depth"),
    ],
    ids=["98 KB", "6,000 tokens", "200 aliases", "600 levels"],
)
def test_a_large_abusive_document_is_refused_without_being_lexed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, document: str, words: str
) -> None:
    # given graphql-core's lexer, counting every token it reads
    lexed = 0
    advance = Lexer.advance

    def counting(self: Lexer) -> Any:
        nonlocal lexed
        lexed += 1
        return advance(self)

    monkeypatch.setattr(Lexer, "advance", counting)

    # when
    body = client.post("/graphql", json={"query": document}).json()

    # then the gate refused it from its lexical bounds, before the lexer read a single token
    assert words in body["errors"][0]["message"], body
    assert lexed == 0, lexed
