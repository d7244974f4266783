"""A document is validated once per process, whatever its variables; an invalid one is refused every time."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema
from fastapi.testclient import TestClient

from oro_graph.edge import limits

DOCUMENT = "query Suites($first: Int) { suites(first: $first) { totalCount } } # validation-cache"


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = strawberry_schema.validate_document

    def counting(schema: Any, document: Any, rules: Any) -> Any:
        seen.append(document.loc.source.body)
        return real(schema, document, rules)

    monkeypatch.setattr(strawberry_schema, "validate_document", counting)
    monkeypatch.setattr(limits, "_valid", type(limits._valid)())  # nothing validated yet
    return seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_document_is_validated_once_whatever_its_variables(
    client: TestClient, validations: list[str]
) -> None:
    for first in (1, 2, 3):
        response = client.post("/graphql", json={"query": DOCUMENT, "variables": {"first": first}})
        assert response.status_code == 200 and "errors" not in response.json(), response.text
    assert validations == [DOCUMENT]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_invalid_document_is_refused_every_time(client: TestClient, validations: list[str]) -> None:
    invalid = "{ suites(first: 1) { noSuchField } }"
    for _ in range(2):
        body = client.post("/graphql", json={"query": invalid}).json()
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", body
    assert validations == [invalid, invalid]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_copy_differing_by_comments_and_layout_is_not_validated_again(
    client: TestClient, validations: list[str]
) -> None:
    copies = [
        DOCUMENT,
        "# a client's build stamp\n" + DOCUMENT,
        DOCUMENT.replace("{ ", "{\n\t ,").replace(") ", ")\r\n") + "\n# trailing",
    ]
    for copy in copies:
        response = client.post("/graphql", json={"query": copy, "variables": {"first": 1}})
        assert response.status_code == 200 and "errors" not in response.json(), response.text
    assert validations == [DOCUMENT]
    other = DOCUMENT.replace("totalCount", "totalCount __typename")
    assert "errors" not in client.post("/graphql", json={"query": other}).json()
    assert validations == [DOCUMENT, other]  # different tokens: validated on its own


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_invalid_copy_of_a_valid_document_is_still_refused_where_it_is_wrong(
    client: TestClient, validations: list[str]
) -> None:
    valid = "{ suites(first: 1) { totalCount } }"
    assert "errors" not in client.post("/graphql", json={"query": valid}).json()
    for invalid in ("# x\n{ suites(first: 1) { noSuchField } }", "{ suites(first: 1) {\n\n noSuchField } }"):
        body = client.post("/graphql", json={"query": invalid}).json()
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        # the location is this document's own
        line = invalid.splitlines().index(next(x for x in invalid.splitlines() if "noSuchField" in x)) + 1
        assert body["errors"][0]["locations"][0]["line"] == line, body
    # a comment is not a string: what looks like one inside a string is kept and validated
    body = client.post("/graphql", json={"query": '{ suites(first: 1) { totalCount } } # "'}).json()
    assert "errors" not in body, body
