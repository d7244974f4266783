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
