"""Every domain refusal of every /v1 path parses into the client's typed model, with both generations.

CONTRACTS.md section 1: a domain refusal uses a status and body the official clients declare for that
path (``api/*/*.py`` ``_parse_response``), with the model's own ``error_code``. Two tests hold it:

- ``test_every_declared_refusal_parses``: for every served route, each (status, code) it documents
  is fed to the installed client's own parser for that path; it must come back as the typed model
  with that code (or as ``HTTPValidationError`` for a 422). Statuses exempt by the contract (401, 403
  for the caller's role, 429 rate limits, 503 outages) are skipped.
- ``test_every_refusal_is_produced_and_parses``: each row of ``REFUSALS`` makes the refusal happen on a
  live server, through the client, and checks status, model, code and a word of the detail. Every
  documented (route, code) must be produced by some row or be listed in ``NOT_PRODUCED`` with why.

To extend it: add rows (one per refusal); a route that is not served by the installed client
generation (``api()`` is None) is skipped for that generation.
"""

from __future__ import annotations

import io
import json
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from oro_sdk.types import File
from sqlmodel import update

from oro_graph.app import create_app
from oro_graph.models import EvaluationRun, Role, utcnow
from oro_graph.services import races
from oro_graph.settings import Settings
from rest_compat.errors import ERROR_CODES_KEY
from tests.factories import AGENT_SOURCE, register
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded, seed
from tests.sdk_compat import SDK_VERSION, api, claim_body, heartbeat_body, model

pytestmark = pytest.mark.sdk1050

# Exempt on every path (CONTRACTS.md section 1): signature, role, rate limit and outage answers.
EXEMPT = {
    (401, "UNAUTHENTICATED"),
    (403, "FORBIDDEN"),
    (413, "FILE_TOO_LARGE"),  # the size caps (a submission over ORO_MAX_AGENT_BYTES included)
    (431, "VALIDATION_ERROR"),
    (429, "RATE_LIMIT_EXCEEDED"),
    (503, "SERVICE_UNAVAILABLE"),
}
# Documented, but not produced by a row here, and why.
NOT_PRODUCED: dict[tuple[str, str], str] = {
    ("get_agent_version", "SUITE_NOT_FOUND"): "a version's suite always exists",
    ("get_artifact_download_url", "SUITE_NOT_FOUND"): "a version's suite always exists",
}


def client_index() -> dict[tuple[str, str], tuple[str, Any]]:
    """(METHOD, path) -> (name, module) for every path of the installed client generation."""
    import importlib
    import pkgutil
    import re

    out = {}
    for tag in ("public", "miner", "validator"):
        package = importlib.import_module(f"oro_sdk.api.{tag}")
        for info in pkgutil.iter_modules(package.__path__):
            module = api(tag, info.name)
            source = open(module.__file__).read()  # type: ignore[union-attr, arg-type]
            method = re.search(r'"method": "(\w+)"', source)
            url = re.search(r'"url": "([^"]+)"', source)
            if method and url:
                out[(method.group(1).upper(), url.group(1))] = (info.name, module)
    return out


def served_refusals() -> list[tuple[str, str, int, str]]:
    """(METHOD, path, status, code) for every domain refusal the served /v1 paths document."""
    state = Path(tempfile.mkdtemp(prefix="refusals-"))
    settings = Settings(database_url=f"sqlite:///{state / 'oro.db'}", data_dir=state, secret_key="k")
    spec = create_app(settings, migrate=False).openapi()
    out = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            if "not served" in operation.get("tags", []):
                continue  # answered as the contract says for unserved paths (tests/rest/test_races.py)
            for status, response in operation["responses"].items():
                for code in response.get(ERROR_CODES_KEY, []):
                    if (int(status), code) not in EXEMPT:
                        out.append((method.upper(), path, int(status), code))
    return out


def body_for(status: int, code: str) -> dict[str, Any]:
    if status == 422:
        item = {"loc": ["query", "suite_id"], "msg": "what to fix", "type": "value_error"}
        return {"detail": [item], "error_code": code}
    body: dict[str, Any] = {"detail": "what to fix", "error_code": code}
    if code == "COOLDOWN_ACTIVE":
        body["remaining_seconds"] = 60
    return body


def test_every_declared_refusal_parses() -> None:
    clients = client_index()
    checked, problems = 0, []
    for method, path, status, code in served_refusals():
        if (method, path) not in clients:
            continue  # not a path of this generation
        name, module = clients[(method, path)]
        client = SimpleNamespace(raise_on_unexpected_status=True)
        response = httpx.Response(status, json=body_for(status, code))
        try:
            parsed = module._parse_response(client=client, response=response)
        except Exception as exc:  # the client does not declare this status, or no model takes the code
            problems.append(f"{method} {path}: {status} {code} does not parse ({type(exc).__name__}: {exc})")
            continue
        checked += 1
        if parsed is None:
            continue  # declared without a model (cast(Any, None)): any body parses
        expected = "HTTPValidationError" if status == 422 else None
        if expected and type(parsed).__name__ != expected:
            problems.append(f"{name}: {status} {code} parsed as {type(parsed).__name__}")
        elif not expected and getattr(parsed, "error_code", None) != code:
            problems.append(f"{name}: {status} {code} parsed as {type(parsed).__name__}")
    assert not problems, "\n".join(problems)
    assert checked >= 40, checked  # the walk really walked (oro-sdk %s)


# --------------------------------------------------------------------------------------------------
# The live walk: each row makes one refusal happen through the client.


@dataclass(frozen=True)
class World:
    server: LiveServer
    seeded: Seeded

    def signed(self, name: str) -> Any:
        return self.server.signed(name)

    @property
    def public(self) -> Any:
        return self.server.public()

    @property
    def settings(self) -> Any:
        return self.server.runtime.settings

    @property
    def p0(self) -> uuid.UUID:
        """The suite's first problem."""
        return self.seeded.problems[0].id

    def __getattr__(self, name: str) -> Any:  # the seeded ids: w.beta_run, w.alpha, ...
        return getattr(self.seeded, name)


@dataclass(frozen=True)
class Refusal:
    tag: str  # the client's api package: public, miner or validator
    path: str  # the client's module for the path
    case: str  # what is refused, for people
    call: Callable[[Any, World], Any]  # (the path's module, the world) -> the client's Response
    status: int
    model: str  # the client's model class
    code: str  # error_code in the body
    detail: str = ""  # a word the detail must contain
    # "empty" (no suite yet), "seeded" (tests.rest.seed), "lapsed" (beta's lease ran out), "racing"
    # (a race's qualifying has closed)
    stage: str = "seeded"
    loc: tuple[str, ...] | None = None  # for a 422: where the input it names is


def upload(name: str = "agent", content: bytes = AGENT_SOURCE, file_name: str = "agent.py") -> Any:
    payload = File(payload=io.BytesIO(content), file_name=file_name, mime_type="text/x-python")
    return model("BodySubmitAgent")(agent_name=name, file=payload)


def progress(problem_id: uuid.UUID, score: float = 0.5) -> Any:
    entry = model("ProblemProgressUpdate")(
        problem_id=problem_id, status=model("ProblemStatus").SUCCESS, score=score
    )
    return model("ProgressUpdateRequest")(problems=[entry])


def completion(score: float | None = 0.5) -> Any:
    return model("CompleteRunRequest")(terminal_status=model("TerminalStatus").SUCCESS, validator_score=score)


def presign(run_id: uuid.UUID, problem_id: uuid.UUID, size: int = 100) -> Any:
    return model("PresignUploadRequest")(content_length=size, eval_run_id=run_id, problem_id=problem_id)


def download(artifact_type: Any, version: uuid.UUID, **extra: Any) -> Any:
    kind = model("ArtifactType")[artifact_type] if isinstance(artifact_type, str) else artifact_type
    return model("ArtifactDownloadRequest")(artifact_type=kind, agent_version_id=version, **extra)


MISSING = uuid.UUID("00000000-0000-4000-8000-000000000000")
UNTYPED = "NoneType"  # the client declares the status without a model (it parses the body as None)


def pin(version: uuid.UUID) -> Any:
    return model("MinerRaceSelectionRequest")(agent_version_id=version)


V, M, PUB = "validator", "miner", "public"
NF, NRO, RAC = "EvalRunNotFoundError", "NotRunOwnerError", "RunAlreadyCompleteError"

REFUSALS: list[Refusal] = [
    # -- public: no suite yet
    Refusal(PUB, "get_current_suite", "no active suite", lambda m, w: m.sync_detailed(client=w.public),
            404, "SuiteNotFoundError", "SUITE_NOT_FOUND", "no suite is active", stage="empty"),
    Refusal(PUB, "get_leaderboard", "no active suite", lambda m, w: m.sync_detailed(client=w.public),
            422, "HTTPValidationError", "SUITE_NOT_FOUND", "no suite is active", stage="empty",
            loc=("query", "suite_id")),
    Refusal(M, "submit_agent", "no active suite",
            lambda m, w: m.sync_detailed(client=w.signed("Ferdie"), body=upload()),
            503, "NoActiveSuiteError", "NO_ACTIVE_SUITE", "suites import", stage="empty"),
    # -- public
    Refusal(PUB, "get_suite_problems", "unknown suite", lambda m, w: m.sync_detailed(999, client=w.public),
            404, "SuiteNotFoundError", "SUITE_NOT_FOUND", "999"),
    Refusal(PUB, "get_leaderboard", "unknown suite",
            lambda m, w: m.sync_detailed(client=w.public, suite_id=999),
            422, "HTTPValidationError", "SUITE_NOT_FOUND", "999", loc=("query", "suite_id")),
    Refusal(PUB, "get_pending_evaluations", "unknown suite",
            lambda m, w: m.sync_detailed(client=w.public, suite_id=999),
            422, "HTTPValidationError", "SUITE_NOT_FOUND", "999", loc=("query", "suite_id")),
    Refusal(PUB, "get_agent_version", "unknown version",
            lambda m, w: m.sync_detailed(MISSING, client=w.public),
            404, "AgentVersionNotFoundError", "AGENT_VERSION_NOT_FOUND", "does not exist"),
    Refusal(PUB, "get_agent_version", "not released", lambda m, w: m.sync_detailed(w.beta, client=w.public),
            404, "ArtifactNotReleasedError", "ARTIFACT_NOT_RELEASED", "not released"),
    Refusal(PUB, "get_agent_version_status", "unknown version",
            lambda m, w: m.sync_detailed(MISSING, client=w.public),
            404, "AgentVersionNotFoundError", "AGENT_VERSION_NOT_FOUND"),
    Refusal(PUB, "get_agent_version_runs", "unknown version",
            lambda m, w: m.sync_detailed(MISSING, client=w.public),
            404, "AgentVersionNotFoundError", "AGENT_VERSION_NOT_FOUND"),
    Refusal(PUB, "get_agent_version_problems", "unknown version",
            lambda m, w: m.sync_detailed(MISSING, client=w.public),
            404, "AgentVersionNotFoundError", "AGENT_VERSION_NOT_FOUND"),
    Refusal(PUB, "get_evaluation_run", "unknown run", lambda m, w: m.sync_detailed(MISSING, client=w.public),
            404, NF, "EVAL_RUN_NOT_FOUND"),
    Refusal(PUB, "get_artifact_download_url", "unknown version",
            lambda m, w: m.sync_detailed(client=w.public, body=download("AGENT_CODE", MISSING)),
            404, "AgentVersionNotFoundError", "AGENT_VERSION_NOT_FOUND"),
    Refusal(PUB, "get_artifact_download_url", "not released",
            lambda m, w: m.sync_detailed(client=w.public, body=download("AGENT_CODE", w.beta)),
            404, "ArtifactNotReleasedError", "ARTIFACT_NOT_RELEASED"),
    Refusal(PUB, "get_artifact_download_url", "nothing stored",
            lambda m, w: m.sync_detailed(client=w.public, body=download("REASONING_DETAILS", w.alpha)),
            404, "ArtifactNotFoundError", "ARTIFACT_NOT_FOUND"),
    Refusal(PUB, "get_artifact_download_url", "unknown run",
            lambda m, w: m.sync_detailed(
                client=w.public, body=download("EVAL_LOGS_BUNDLE", w.alpha, eval_run_id=MISSING)),
            404, NF, "EVAL_RUN_NOT_FOUND"),
    Refusal(PUB, "get_artifact_download_url", "no run named",
            lambda m, w: m.sync_detailed(client=w.public, body=download("EVAL_LOGS_BUNDLE", w.alpha)),
            400, "MissingParameterError", "MISSING_PARAMETER", "eval_run_id"),
    Refusal(PUB, "get_artifact_download_url", "unknown type",
            lambda m, w: m.sync_detailed(
                client=w.public, body=download(SimpleNamespace(value="SOURCE_TARBALL"), w.alpha)),
            400, "InvalidArtifactTypeError", "INVALID_ARTIFACT_TYPE", "AGENT_CODE"),
    # -- miner
    Refusal(M, "submit_agent", "bad agent name",
            lambda m, w: m.sync_detailed(client=w.signed("Ferdie"), body=upload("no spaces!")),
            400, "InvalidAgentNameError", "INVALID_AGENT_NAME", "letters, digits"),
    Refusal(M, "submit_agent", "not Python",
            lambda m, w: m.sync_detailed(client=w.signed("Ferdie"), body=upload(content=b"def f(:\n")),
            400, "InvalidFileError", "INVALID_FILE", "line 1"),
    Refusal(M, "submit_agent", "not a .py file",
            lambda m, w: m.sync_detailed(client=w.signed("Ferdie"), body=upload(file_name="agent.txt")),
            400, "InvalidFileError", "INVALID_FILE", ".py"),
    Refusal(M, "submit_agent", "too large",
            lambda m, w: m.sync_detailed(
                client=w.signed("Ferdie"), body=upload(content=b"#" * (w.settings.max_agent_bytes + 1))),
            413, "FileTooLargeError", "FILE_TOO_LARGE", "limit"),
    Refusal(M, "submit_agent", "cooldown",
            lambda m, w: m.sync_detailed(client=w.signed("Alice"), body=upload("alpha")),
            429, "CooldownActiveError", "COOLDOWN_ACTIVE"),
    Refusal(M, "list_agent_versions", "another miner's agent",
            lambda m, w: m.sync_detailed(w.beta_agent, client=w.signed("Alice")),
            404, "AgentNotFoundError", "AGENT_NOT_FOUND"),
    Refusal(M, "get_owned_agent_version_status", "another miner's version",
            lambda m, w: m.sync_detailed(w.beta, client=w.signed("Alice")),
            404, "AgentVersionNotFoundError", "AGENT_VERSION_NOT_FOUND"),
    Refusal(M, "store_chutes_token", "blank token",
            lambda m, w: m.sync_detailed(
                client=w.signed("Alice"), body=model("StoreChutesTokenRequest")(refresh_token="  ")),
            422, "HTTPValidationError", "VALIDATION_ERROR"),
    # -- validator, while beta's run is leased by Eve
    Refusal(V, "claim_work", "at capacity",
            lambda m, w: m.sync_detailed(client=w.signed("Eve"), body=claim_body()),
            409, "AtCapacityError", "AT_CAPACITY", "limit"),
    Refusal(V, "get_run_problems", "unknown run",
            lambda m, w: m.sync_detailed(MISSING, client=w.signed("Eve")),
            404, NF, "EVAL_RUN_NOT_FOUND", "does not exist"),
    Refusal(V, "get_run_problems", "another validator's run",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Charlie")),
            404, NF, "EVAL_RUN_NOT_FOUND", "another validator"),
    Refusal(V, "get_run_problems", "finished run",
            lambda m, w: m.sync_detailed(w.alpha_runs[0], client=w.signed("Charlie")),
            404, NF, "EVAL_RUN_NOT_FOUND", "complete"),
    Refusal(V, "heartbeat", "unknown run",
            lambda m, w: m.sync_detailed(MISSING, client=w.signed("Eve"), body=heartbeat_body()),
            404, NF, "EVAL_RUN_NOT_FOUND"),
    Refusal(V, "heartbeat", "another validator's run",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Charlie"), body=heartbeat_body()),
            409, NRO, "NOT_RUN_OWNER"),
    Refusal(V, "heartbeat", "finished run",
            lambda m, w: m.sync_detailed(w.alpha_runs[0], client=w.signed("Charlie"), body=heartbeat_body()),
            409, RAC, "RUN_ALREADY_COMPLETE"),
    Refusal(V, "update_progress", "problem not in the suite",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve"), body=progress(MISSING)),
            400, "InvalidProblemIdError", "INVALID_PROBLEM_ID", str(MISSING)),
    Refusal(V, "update_progress", "unknown run",
            lambda m, w: m.sync_detailed(MISSING, client=w.signed("Eve"), body=progress(w.p0)),
            404, NF, "EVAL_RUN_NOT_FOUND"),
    Refusal(V, "update_progress", "another validator's run",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Charlie"), body=progress(w.p0)),
            409, NRO, "NOT_RUN_OWNER"),
    Refusal(V, "update_progress", "finished run",
            lambda m, w: m.sync_detailed(
                w.alpha_runs[0], client=w.signed("Charlie"), body=progress(w.p0)),
            409, RAC, "RUN_ALREADY_COMPLETE"),
    Refusal(V, "update_progress", "score out of range",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve"), body=progress(w.p0, 1.5)),
            422, "HTTPValidationError", "VALIDATION_ERROR"),
    Refusal(V, "complete_run", "success without a score",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve"), body=completion(None)),
            400, "MissingScoreError", "MISSING_SCORE"),
    Refusal(V, "complete_run", "score out of range",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve"), body=completion(1.5)),
            400, "ValidationErrorError", "VALIDATION_ERROR", "between 0 and 1"),
    Refusal(V, "complete_run", "unknown run",
            lambda m, w: m.sync_detailed(MISSING, client=w.signed("Eve"), body=completion()),
            404, NF, "EVAL_RUN_NOT_FOUND"),
    Refusal(V, "complete_run", "another validator's run",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Charlie"), body=completion()),
            409, NRO, "NOT_RUN_OWNER"),
    Refusal(V, "complete_run", "finished run",
            lambda m, w: m.sync_detailed(w.alpha_runs[1], client=w.signed("Dave"), body=completion()),
            409, RAC, "RUN_ALREADY_COMPLETE"),
    Refusal(V, "presign_upload", "unknown run",
            lambda m, w: m.sync_detailed(client=w.signed("Eve"), body=presign(MISSING, w.p0)),
            404, NF, "EVAL_RUN_NOT_FOUND"),
    Refusal(V, "presign_upload", "problem not in the suite",
            lambda m, w: m.sync_detailed(client=w.signed("Eve"), body=presign(w.beta_run, MISSING)),
            404, "ProblemNotFoundError", "PROBLEM_NOT_FOUND"),
    Refusal(V, "presign_upload", "another validator's run",
            lambda m, w: m.sync_detailed(client=w.signed("Charlie"), body=presign(w.beta_run, w.p0)),
            409, NRO, "NOT_RUN_OWNER", "another validator"),
    Refusal(V, "presign_upload", "finished run",
            lambda m, w: m.sync_detailed(
                client=w.signed("Charlie"), body=presign(w.alpha_runs[0], w.p0)),
            409, NRO, "NOT_RUN_OWNER", "complete"),
    Refusal(V, "presign_upload", "over the upload cap",
            lambda m, w: m.sync_detailed(
                client=w.signed("Eve"),
                body=presign(w.beta_run, w.p0, w.settings.max_upload_bytes + 1)),
            400, "FileTooLargeError", "FILE_TOO_LARGE"),
    Refusal(V, "presign_upload", "empty upload",
            lambda m, w: m.sync_detailed(client=w.signed("Eve"), body=presign(w.beta_run, w.p0, 0)),
            400, "ValidationErrorError", "VALIDATION_ERROR", "positive"),
    # -- validator, after Eve's lease on beta lapsed without a heartbeat
    Refusal(V, "heartbeat", "lease lapsed",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve"), body=heartbeat_body()),
            409, "LeaseExpiredError", "LEASE_EXPIRED", "lapsed", stage="lapsed"),
    Refusal(V, "update_progress", "lease lapsed",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve"), body=progress(w.p0)),
            409, RAC, "RUN_ALREADY_COMPLETE", "lapsed", stage="lapsed"),
    Refusal(V, "complete_run", "lease lapsed",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve"), body=completion()),
            409, RAC, "RUN_ALREADY_COMPLETE", "lapsed", stage="lapsed"),
    Refusal(V, "presign_upload", "lease lapsed",
            lambda m, w: m.sync_detailed(client=w.signed("Eve"), body=presign(w.beta_run, w.p0)),
            409, NRO, "NOT_RUN_OWNER", "lapsed", stage="lapsed"),
    Refusal(V, "get_run_problems", "lease lapsed",
            lambda m, w: m.sync_detailed(w.beta_run, client=w.signed("Eve")),
            404, NF, "EVAL_RUN_NOT_FOUND", "lapsed", stage="lapsed"),
    # -- races (7.0.2 has these paths; 1.0.50 only the public reads)
    Refusal(PUB, "get_top_history", "unknown suite",
            lambda m, w: m.sync_detailed(client=w.public, suite_id=999),
            422, "HTTPValidationError", "SUITE_NOT_FOUND", "999", loc=("query", "suite_id")),
    Refusal(PUB, "get_race_detail", "unknown race", lambda m, w: m.sync_detailed(MISSING, client=w.public),
            404, "RaceNotFoundError", "RACE_NOT_FOUND", "does not exist"),
    Refusal(PUB, "get_race_validator_variance", "unknown race",
            lambda m, w: m.sync_detailed(MISSING, client=w.public),
            404, "RaceNotFoundError", "RACE_NOT_FOUND", "does not exist"),
    Refusal(M, "set_race_selection", "another miner's version",
            lambda m, w: m.sync_detailed(client=w.signed("Bob"), body=pin(w.alpha)),
            403, "NotVersionOwnerError", "NOT_VERSION_OWNER", "not one of your versions"),
    Refusal(M, "set_race_selection", "a version that cannot race",
            lambda m, w: m.sync_detailed(client=w.signed("Bob"), body=pin(w.beta)),
            400, UNTYPED, "VALIDATION_ERROR", "ELIGIBLE"),
    Refusal(M, "clear_race_selection", "nothing pinned", lambda m, w: m.sync_detailed(client=w.signed("Bob")),
            404, "NoSelectionError", "NO_SELECTION", "no race selection"),
    Refusal(M, "set_race_selection", "qualifying closed",
            lambda m, w: m.sync_detailed(client=w.signed("Alice"), body=pin(w.alpha)),
            409, "RaceLockedError", "RACE_LOCKED", "closed", stage="racing"),
    Refusal(M, "clear_race_selection", "qualifying closed",
            lambda m, w: m.sync_detailed(client=w.signed("Alice")),
            409, "RaceLockedError", "RACE_LOCKED", "closed", stage="racing"),
]  # fmt: skip


def check(row: Refusal, world: World) -> str | None:
    """None if the row's refusal came back as its typed model; else what went wrong."""
    module = api(row.tag, row.path)
    if module is None:
        return None  # not a path of this client generation
    response = row.call(module, world)
    where = f"{row.path} ({row.case})"
    if response.status_code != row.status:
        return f"{where}: status {response.status_code}, expected {row.status}: {response.content[:300]!r}"
    parsed = response.parsed
    if row.model == UNTYPED:  # nothing typed to check: the body itself says what was refused
        parsed = SimpleNamespace(**json.loads(response.content))
    elif type(parsed).__name__ != row.model:
        return f"{where}: parsed as {type(parsed).__name__}, expected {row.model}: {response.content[:300]!r}"
    if row.model == "HTTPValidationError":
        code, detail = parsed["error_code"], " ".join(str(item.msg) for item in parsed.detail)
    else:
        code, detail = parsed.error_code, str(parsed.detail)
    if code != row.code:
        return f"{where}: error_code {code}, expected {row.code}"
    if row.detail not in detail:
        return f"{where}: detail {detail!r} does not say {row.detail!r}"
    if row.loc is not None and tuple(parsed.detail[0].loc) != row.loc:
        return f"{where}: loc {parsed.detail[0].loc}, expected {row.loc}"
    return None


def expire_lease(server: LiveServer, run_id: uuid.UUID) -> None:
    stmt = (
        update(EvaluationRun)
        .where(EvaluationRun.id == run_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    server.runtime.db.call(lambda s: s.exec(stmt))


def test_every_refusal_is_produced_and_parses(server: LiveServer) -> None:
    # given an empty server (no suite yet) and a registered miner that never submitted
    register(server.runtime, "Ferdie")
    failures = []
    empty = World(server, None)  # type: ignore[arg-type]
    failures += [check(row, empty) for row in REFUSALS if row.stage == "empty"]
    # then the seeded world (tests/rest/seed.py), and the same after Eve's lease lapsed
    world = World(server, seed(server.runtime))
    failures += [check(row, world) for row in REFUSALS if row.stage == "seeded"]
    expire_lease(server, world.beta_run)
    failures += [check(row, world) for row in REFUSALS if row.stage == "lapsed"]
    # then a race whose qualifying has closed (alpha qualified)
    settings = server.runtime.settings
    server.runtime.db.call(races.open_race, settings=settings)
    server.runtime.db.call(races.close_qualifying, settings=settings)
    failures += [check(row, world) for row in REFUSALS if row.stage == "racing"]
    problems = [f for f in failures if f]
    assert not problems, f"oro-sdk {SDK_VERSION}:\n" + "\n".join(problems)


def test_every_documented_refusal_has_a_row() -> None:
    clients = client_index()
    produced = {(row.path, row.code) for row in REFUSALS}
    missing = []
    for method, path, _status, code in served_refusals():
        name = clients.get((method, path), (None, None))[0]
        if name is None or (name, code) in produced or (name, code) in NOT_PRODUCED:
            continue
        missing.append(f"{method} {path} ({name}): {code}")
    assert not missing, "add a row to REFUSALS (or to NOT_PRODUCED, saying why):\n" + "\n".join(missing)


def test_public_answers_where_a_client_declares_no_refusal(server: LiveServer) -> None:
    """/top declares only 200: before any suite is active it answers one, with null fields."""
    top = api(PUB, "get_top_agent").sync_detailed(client=server.public())  # type: ignore[union-attr]
    assert top.status_code == 200, top.content
    assert type(top.parsed).__name__ == "TopAgentResponse"
    assert (top.parsed.suite_id, top.parsed.top_agent_version_id, top.parsed.top_miner_hotkey) == (
        0,
        None,
        None,
    )
    # and once a suite is active, a leaderboard of it is a page, empty until a version is eligible
    seed(server.runtime)
    board = api(PUB, "get_leaderboard").sync_detailed(client=server.public())  # type: ignore[union-attr]
    assert board.status_code == 200 and board.parsed.total == 1
    pending_path: Any = api(PUB, "get_pending_evaluations")
    pending = pending_path.sync_detailed(client=server.public())
    assert pending.status_code == 200 and len(pending.parsed.items) == 1


def test_a_miner_and_a_validator_path_refuse_the_wrong_role_with_403(server: LiveServer) -> None:
    """Role failures keep 403 (exempt), with the flat body, on the new path too."""
    register(server.runtime, "Alice")
    register(server.runtime, "Charlie", Role.VALIDATOR)
    with server.http():
        path: Any = api(V, "get_run_problems")
        answer = path.sync_detailed(MISSING, client=server.signed("Alice"))
    assert answer.status_code == 403 and b"FORBIDDEN" in answer.content
