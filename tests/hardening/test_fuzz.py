"""Schemathesis against /openapi.json of a live server over PostgreSQL: every operation, signed
where the path needs it, over a seeded world so ids exist. No 5xx, every response conforms to its
declared status, content type, headers and schema, and the server logs no unhandled exception.

ORO_FUZZ_EXAMPLES sets the examples per operation (50 by default, as in CI; the deeper runs of
benchmarks/RELIABILITY.md use 300).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.hardening.conftest import ErrorLog
from tests.hardening.support import signed
from tests.rest.seed import Seeded, seed

EXAMPLES = int(os.environ.get("ORO_FUZZ_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CALLS: Counter[str] = Counter()


@pytest.fixture
def fuzzed(serve: Any) -> tuple[Any, Seeded]:
    server = serve()
    world = seed(server.runtime)
    return schemathesis.openapi.from_url(server.base_url + "/openapi.json"), world


@pytest.fixture
def api_schema(fuzzed: tuple[Any, Seeded]) -> Any:
    return fuzzed[0]


def _known_ids(world: Seeded) -> dict[str, list[Any]]:
    return {
        "agent_version_id": [world.alpha, world.beta],
        "eval_run_id": [world.beta_run, *world.alpha_runs],
        "agent_id": [world.alpha_agent, world.beta_agent],
        "problem_id": [world.problems[0].id],
        "suite_id": [world.world.suite.id],
    }


def _aim(values: dict[str, Any] | None, known: dict[str, list[Any]]) -> None:
    """Point half the generated ids at rows that exist, chosen from the generated value itself
    (deterministic, so Hypothesis can replay and shrink), leaving the others as generated."""
    if not isinstance(values, dict):
        return
    for name, choices in known.items():
        value = values.get(name)
        if value is None:
            continue
        digest = sum(str(value).encode())
        if digest % 2 == 0:
            chosen = choices[digest % len(choices)]
            values[name] = chosen if isinstance(chosen, int) else str(chosen)


def _signer(path: str) -> str | None:
    if path.startswith("/v1/validator/"):
        return "Eve"  # holds the seeded running run
    if path.startswith("/v1/miner/"):
        return "Alice"
    return None


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_survives_generated_input(
    case: Any, fuzzed: tuple[Any, Seeded], error_log: ErrorLog
) -> None:
    known = _known_ids(fuzzed[1])
    _aim(case.path_parameters, known)
    _aim(case.query, known)
    _aim(case.body if isinstance(case.body, dict) else None, known)
    name = _signer(case.path)
    headers = signed(name, nonce=uuid.uuid4().hex) if name else None
    CALLS[
        case.operation.label
        if case.method.upper() == case.operation.method.upper()
        else "other methods (405 probes)"
    ] += 1
    logged = len(error_log.records)
    case.call_and_validate(headers=headers, checks=CHECKS)
    assert error_log.messages()[logged:] == []


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Any:
    """With ORO_FUZZ_REPORT=path, write the requests sent per operation (for RELIABILITY.md)."""
    yield
    path = os.environ.get("ORO_FUZZ_REPORT")
    if path:
        import json

        with open(path, "w") as handle:
            json.dump(
                {"total": sum(CALLS.values()), "per_operation": dict(sorted(CALLS.items()))}, handle, indent=1
            )
