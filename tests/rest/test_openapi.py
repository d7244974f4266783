"""/openapi.json is valid OpenAPI 3, names the client's operations, and documents every status the
client parses and every error body with its codes. The client's expectations are read from the
installed oro-sdk package itself, so a drift on either side fails here."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from oro_graph.app import create_app
from oro_graph.cli.data import openapi_document
from oro_graph.services.artifacts import ArtifactType
from oro_graph.settings import Settings
from tests.rest.live import LiveServer

OPERATIONS = {
    "public": [
        "get_current_suite", "get_suite_problems", "get_leaderboard", "get_top_agent",
        "get_agent_version", "get_agent_version_status", "get_agent_version_runs",
        "get_agent_version_problems", "get_evaluation_run", "get_validators", "get_running_evaluations",
        "get_pending_evaluations", "get_artifact_download_url", "health_check",
        "get_current_race", "get_race_history", "get_race_detail", "get_race_validator_variance",
        "get_top_history", "get_top_miner_payout", "list_suites",
    ],
    "miner": [
        "submit_agent", "list_miner_agents", "list_agent_versions", "get_owned_agent_version_status",
        "store_chutes_token", "get_chutes_auth_status", "set_race_selection", "clear_race_selection",
    ],
    "validator": [
        "claim_work", "get_run_problems", "heartbeat", "update_progress", "complete_run", "presign_upload",
    ],
}  # fmt: skip
# Statuses the client parses that this server never sends: RACE_IN_FLIGHT (no races here).
NEVER_SENT = {("get_artifact_download_url", "403")}


def client_expectation(tag: str, name: str) -> tuple[str, str, set[str]]:
    """(method, path, statuses) as the installed client's generated module has them."""
    source = inspect.getsource(importlib.import_module(f"oro_sdk.api.{tag}.{name}"))
    method = re.search(r'"method": "(\w+)"', source).group(1)  # type: ignore[union-attr]
    path = re.search(r'"url": "([^"]+)"', source).group(1)  # type: ignore[union-attr]
    return method, path, set(re.findall(r"response\.status_code == (\d{3})", source))


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document /openapi.json serves (test_swagger_ui_is_served fetches it live), built once."""
    state = tmp_path_factory.mktemp("openapi")
    app = create_app(
        Settings(database_url=f"sqlite:///{state / 'oro.db'}", data_dir=state, secret_key="k"), migrate=False
    )
    return app.openapi()


OPENAPI_FILE = Path(__file__).resolve().parents[2] / "openapi.json"


def test_committed_openapi_document_is_the_served_one(spec: dict[str, Any]) -> None:
    # given the committed document (CONTRACTS section 7) and the one `oro-graph export-openapi` prints
    committed = OPENAPI_FILE.read_text()
    exported = openapi_document()

    # then both are what /openapi.json serves, byte for byte
    assert exported == committed, "openapi.json is stale: run `oro-graph export-openapi > openapi.json`"
    assert json.loads(committed) == spec


def test_openapi_document_validates(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.")


@pytest.mark.parametrize(
    ("tag", "name"), [(tag, name) for tag, names in OPERATIONS.items() for name in names]
)
def test_every_documented_path_matches_the_client(spec: dict[str, Any], tag: str, name: str) -> None:
    method, path, statuses = client_expectation(tag, name)
    operation = spec["paths"][path][method]
    if name != "health_check":
        assert operation["operationId"] == name
        assert operation["description"], "every route has a docstring"
    missing = {s for s in statuses if s not in operation["responses"]} - {
        s for n, s in NEVER_SENT if n == name
    }
    assert not missing, f"{method.upper()} {path} does not document {missing}"


def test_error_responses_name_their_models_and_codes(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    presign = spec["paths"]["/v1/validator/uploads/presign"]["post"]["responses"]
    assert presign["400"]["x-error-codes"] == ["FILE_TOO_LARGE", "VALIDATION_ERROR"]
    submit = spec["paths"]["/v1/miner/submit"]["post"]["responses"]
    assert submit["413"]["x-error-codes"] == ["FILE_TOO_LARGE"]
    assert submit["429"]["x-error-codes"] == ["COOLDOWN_ACTIVE", "RATE_LIMIT_EXCEEDED"]
    assert schemas["CooldownActiveError"]["required"] == ["detail", "remaining_seconds"]
    assert schemas["SuiteNotFoundError"]["properties"]["error_code"]["const"] == "SUITE_NOT_FOUND"
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            responses = operation["responses"]
            if path.startswith(("/v1/miner", "/v1/validator")) and "not served" not in operation["tags"]:
                assert responses["401"]["x-error-codes"] == ["UNAUTHENTICATED"], path
                # A path may declare a domain refusal under 403 too (NOT_VERSION_OWNER on race-selection).
                assert "FORBIDDEN" in responses["403"]["x-error-codes"], path
            if path.startswith("/v1/"):
                assert "RATE_LIMIT_EXCEEDED" in responses["429"]["x-error-codes"], path
                assert {"Retry-After", "X-RateLimit-Remaining"} <= responses["429"]["headers"].keys(), path


def test_swagger_ui_and_the_document_are_served(server: LiveServer, spec: dict[str, Any]) -> None:
    with server.http() as http:
        docs, served = http.get("/docs"), http.get("/openapi.json")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert served.status_code == 200 and served.json()["paths"].keys() == spec["paths"].keys()


def test_artifact_type_lists_its_values_and_an_unknown_one_is_the_declared_400(
    server: LiveServer, spec: dict[str, Any]
) -> None:
    # the schema says which values the server takes
    declared = spec["components"]["schemas"]["ArtifactDownloadRequest"]["properties"]["artifact_type"]
    assert declared["enum"] == [kind.value for kind in ArtifactType]
    # and a value outside them is still the path's declared 400 INVALID_ARTIFACT_TYPE, not a 422
    with server.http() as http:
        answer = http.post(
            "/v1/public/artifacts/download-url",
            json={"artifact_type": "SOURCE_TARBALL", "agent_version_id": str(uuid.uuid4())},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_ARTIFACT_TYPE"
    assert "AGENT_CODE" in answer.json()["detail"]
