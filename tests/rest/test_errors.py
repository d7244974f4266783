"""Group 2: every error the client knows for a path, produced here, comes back as its typed model.

Not producible by this server, so not tested: RACE_IN_FLIGHT (no races), CODE_ANALYSIS_ERROR,
SIMILARITY_CHECK_UNAVAILABLE, SUBMISSIONS_PAUSED (no such checks), and SUITE_NOT_FOUND on the two
agent-version paths (a version's suite always exists). RATE_LIMIT_EXCEEDED: test_rate_limits.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from oro_sdk.api.miner import (
    get_owned_agent_version_status,
    list_agent_versions,
    list_miner_agents,
    store_chutes_token,
    submit_agent,
)
from oro_sdk.api.public import (
    get_agent_version,
    get_agent_version_problems,
    get_agent_version_runs,
    get_agent_version_status,
    get_artifact_download_url,
    get_current_suite,
    get_evaluation_run,
    get_leaderboard,
    get_pending_evaluations,
    get_suite_problems,
)
from oro_sdk.api.validator import claim_work, complete_run, heartbeat, presign_upload, update_progress
from oro_sdk.models import (
    AgentNotFoundError,
    AgentVersionNotFoundError,
    ArtifactDownloadRequest,
    ArtifactNotFoundError,
    ArtifactNotReleasedError,
    ArtifactType,
    AtCapacityError,
    CompleteRunRequest,
    CooldownActiveError,
    EvalRunNotFoundError,
    FileTooLargeError,
    HTTPValidationError,
    InvalidAgentNameError,
    InvalidArtifactTypeError,
    InvalidFileError,
    InvalidProblemIdError,
    LeaseExpiredError,
    MissingParameterError,
    MissingScoreError,
    NoActiveSuiteError,
    NotRunOwnerError,
    PresignUploadRequest,
    ProblemNotFoundError,
    ProblemProgressUpdate,
    ProblemStatus,
    ProgressUpdateRequest,
    RunAlreadyCompleteError,
    StoreChutesTokenRequest,
    SuiteNotFoundError,
    TerminalStatus,
    ValidationErrorError,
)
from oro_sdk.types import Response
from sqlmodel import update

from oro_graph.models import EvaluationRun, utcnow
from tests.factories import register
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded, agent_file, seed


@pytest.fixture
def seeded(server: LiveServer) -> Seeded:
    return seed(server.runtime)


def expect(response: Response[Any], status: int, model: type, code: str | None = None) -> Any:
    """The response has this status and the client parsed it into ``model`` (with ``code``)."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, model), response.parsed
    if code is not None:
        assert response.parsed.error_code == code and response.parsed.detail
    return response.parsed


def expire_lease(server: LiveServer, run_id: uuid.UUID) -> None:
    stmt = (
        update(EvaluationRun)
        .where(EvaluationRun.id == run_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    server.runtime.db.call(lambda s: s.exec(stmt))


def test_public_errors_without_an_active_suite(server: LiveServer) -> None:
    client = server.public()
    expect(get_current_suite.sync_detailed(client=client), 404, SuiteNotFoundError, "SUITE_NOT_FOUND")
    expect(get_suite_problems.sync_detailed(7, client=client), 404, SuiteNotFoundError, "SUITE_NOT_FOUND")


def test_public_validation_errors_keep_fastapis_shape(server: LiveServer) -> None:
    client = server.public()
    bad = expect(get_leaderboard.sync_detailed(client=client, limit=0), 422, HTTPValidationError)
    assert bad.detail[0].loc == ["query", "limit"]
    expect(get_pending_evaluations.sync_detailed(client=client, offset=-1), 422, HTTPValidationError)
    expect(get_suite_problems.sync_detailed("one", client=client), 422, HTTPValidationError)  # type: ignore[arg-type]


def test_public_agent_version_errors(server: LiveServer, seeded: Seeded) -> None:
    client = server.public()
    missing = uuid.uuid4()
    expect(
        get_agent_version.sync_detailed(missing, client=client),
        404,
        AgentVersionNotFoundError,
        "AGENT_VERSION_NOT_FOUND",
    )
    # beta is still being evaluated: not released, and a 404 on this path
    expect(
        get_agent_version.sync_detailed(seeded.beta, client=client),
        404,
        ArtifactNotReleasedError,
        "ARTIFACT_NOT_RELEASED",
    )
    for path in (get_agent_version_status, get_agent_version_runs, get_agent_version_problems):
        expect(
            path.sync_detailed(missing, client=client),
            404,
            AgentVersionNotFoundError,
            "AGENT_VERSION_NOT_FOUND",
        )
    expect(
        get_evaluation_run.sync_detailed(missing, client=client),
        404,
        EvalRunNotFoundError,
        "EVAL_RUN_NOT_FOUND",
    )


def test_download_url_errors(server: LiveServer, seeded: Seeded) -> None:
    client = server.public()

    def ask(artifact_type: Any, version: uuid.UUID, **extra: Any) -> Response[Any]:
        body = ArtifactDownloadRequest(artifact_type=artifact_type, agent_version_id=version, **extra)
        return get_artifact_download_url.sync_detailed(client=client, body=body)

    expect(
        ask(ArtifactType.AGENT_CODE, uuid.uuid4()), 404, AgentVersionNotFoundError, "AGENT_VERSION_NOT_FOUND"
    )
    expect(ask(ArtifactType.AGENT_CODE, seeded.beta), 404, ArtifactNotReleasedError, "ARTIFACT_NOT_RELEASED")
    expect(
        ask(ArtifactType.REASONING_DETAILS, seeded.alpha), 404, ArtifactNotFoundError, "ARTIFACT_NOT_FOUND"
    )
    expect(
        ask(
            ArtifactType.EVAL_LOGS_BUNDLE, seeded.alpha, eval_run_id=seeded.alpha_runs[0]
        ),  # no bundle uploaded
        404,
        ArtifactNotFoundError,
        "ARTIFACT_NOT_FOUND",
    )
    expect(
        ask(ArtifactType.EVAL_LOGS_BUNDLE, seeded.alpha, eval_run_id=uuid.uuid4()),
        404,
        EvalRunNotFoundError,
        "EVAL_RUN_NOT_FOUND",
    )
    expect(ask(ArtifactType.EVAL_LOGS_BUNDLE, seeded.alpha), 400, MissingParameterError, "MISSING_PARAMETER")
    expect(
        ask(ArtifactType.EVAL_PROBLEM_LOGS, seeded.alpha, eval_run_id=seeded.alpha_runs[0]),
        400,
        MissingParameterError,
        "MISSING_PARAMETER",
    )
    unknown_type = SimpleNamespace(value="SOURCE_TARBALL")  # the client's enum cannot say it; its model can
    expect(ask(unknown_type, seeded.alpha), 400, InvalidArtifactTypeError, "INVALID_ARTIFACT_TYPE")


def test_submit_errors(server: LiveServer, seeded: Seeded) -> None:
    limit = server.runtime.settings.max_agent_bytes
    register(server.runtime, "Ferdie")  # a registered miner that never submitted
    ferdie = server.signed("Ferdie")
    bad_name = expect(
        submit_agent.sync_detailed(client=ferdie, body=agent_file("no spaces!")),
        400,
        InvalidAgentNameError,
        "INVALID_AGENT_NAME",
    )
    assert "letters, digits" in bad_name.detail
    bad_file = expect(
        submit_agent.sync_detailed(client=ferdie, body=agent_file("a", b"def f(:\n    pass\n")),
        400,
        InvalidFileError,
        "INVALID_FILE",
    )
    assert "line 1" in bad_file.detail
    expect(
        submit_agent.sync_detailed(client=ferdie, body=agent_file("a", b"#" * (limit + 1))),
        413,
        FileTooLargeError,
        "FILE_TOO_LARGE",
    )
    # Alice submitted alpha just now; the cooldown is an hour
    response = submit_agent.sync_detailed(client=server.signed("Alice"), body=agent_file("alpha"))
    cooldown = expect(response, 429, CooldownActiveError, "COOLDOWN_ACTIVE")
    assert 3500 < cooldown.remaining_seconds <= 3600
    assert response.headers["retry-after"] == str(cooldown.remaining_seconds)
    # and nothing of Ferdie's was stored by the refused submissions
    assert list_miner_agents.sync(client=ferdie).agents == []


def test_submit_without_an_active_suite(server: LiveServer) -> None:
    register(server.runtime, "Alice")
    response = submit_agent.sync_detailed(client=server.signed("Alice"), body=agent_file("alpha"))
    expect(response, 503, NoActiveSuiteError, "NO_ACTIVE_SUITE")


def test_miner_reads_only_its_own_rows(server: LiveServer, seeded: Seeded) -> None:
    alice = server.signed("Alice")
    # Bob's agent and version exist, but not for Alice: not found, so ids don't leak
    expect(
        list_agent_versions.sync_detailed(seeded.beta_agent, client=alice),
        404,
        AgentNotFoundError,
        "AGENT_NOT_FOUND",
    )
    expect(
        list_agent_versions.sync_detailed(uuid.uuid4(), client=alice),
        404,
        AgentNotFoundError,
        "AGENT_NOT_FOUND",
    )
    expect(
        get_owned_agent_version_status.sync_detailed(seeded.beta, client=alice),
        404,
        AgentVersionNotFoundError,
        "AGENT_VERSION_NOT_FOUND",
    )
    bad = expect(
        store_chutes_token.sync_detailed(client=alice, body=StoreChutesTokenRequest(refresh_token="   ")),
        422,
        HTTPValidationError,
    )
    assert bad["error_code"] == "VALIDATION_ERROR"


def test_claim_at_capacity(server: LiveServer, seeded: Seeded) -> None:
    # Eve holds beta's run and may hold only one
    expect(claim_work.sync_detailed(client=server.signed("Eve")), 409, AtCapacityError, "AT_CAPACITY")


def test_heartbeat_errors(server: LiveServer, seeded: Seeded) -> None:
    charlie, eve = server.signed("Charlie"), server.signed("Eve")
    expect(heartbeat.sync_detailed(uuid.uuid4(), client=eve), 404, EvalRunNotFoundError, "EVAL_RUN_NOT_FOUND")
    expect(heartbeat.sync_detailed(seeded.beta_run, client=charlie), 409, NotRunOwnerError, "NOT_RUN_OWNER")
    expect(
        heartbeat.sync_detailed(seeded.alpha_runs[0], client=charlie),
        409,
        RunAlreadyCompleteError,
        "RUN_ALREADY_COMPLETE",
    )
    expire_lease(server, seeded.beta_run)
    expect(heartbeat.sync_detailed(seeded.beta_run, client=eve), 409, LeaseExpiredError, "LEASE_EXPIRED")


def test_progress_errors(server: LiveServer, seeded: Seeded) -> None:
    charlie, eve = server.signed("Charlie"), server.signed("Eve")
    problem = seeded.problems[0]

    def report(
        run_id: uuid.UUID, client: Any, problem_id: uuid.UUID = problem.id, score: float = 0.5
    ) -> Response[Any]:
        entry = ProblemProgressUpdate(problem_id=problem_id, status=ProblemStatus.SUCCESS, score=score)
        return update_progress.sync_detailed(
            run_id, client=client, body=ProgressUpdateRequest(problems=[entry])
        )

    expect(report(seeded.beta_run, eve, uuid.uuid4()), 400, InvalidProblemIdError, "INVALID_PROBLEM_ID")
    expect(report(uuid.uuid4(), eve), 404, EvalRunNotFoundError, "EVAL_RUN_NOT_FOUND")
    expect(report(seeded.beta_run, charlie), 409, NotRunOwnerError, "NOT_RUN_OWNER")
    expect(report(seeded.alpha_runs[0], charlie), 409, RunAlreadyCompleteError, "RUN_ALREADY_COMPLETE")
    out_of_range = expect(report(seeded.beta_run, eve, score=1.5), 422, HTTPValidationError)
    assert (
        out_of_range["error_code"] == "VALIDATION_ERROR" and "between 0 and 1" in out_of_range.detail[0].msg
    )
    # a lapsed lease: the run is over, in the client's declared 409 model (its retry queue drops it)
    expire_lease(server, seeded.beta_run)
    gone = expect(report(seeded.beta_run, eve), 409, RunAlreadyCompleteError, "RUN_ALREADY_COMPLETE")
    assert "lapsed" in gone.detail


def test_complete_errors(server: LiveServer, seeded: Seeded) -> None:
    charlie, eve = server.signed("Charlie"), server.signed("Eve")

    def finish(run_id: uuid.UUID, client: Any, score: float | None = 0.5) -> Response[Any]:
        body = CompleteRunRequest(terminal_status=TerminalStatus.SUCCESS, validator_score=score)
        return complete_run.sync_detailed(run_id, client=client, body=body)

    expect(finish(seeded.beta_run, eve, None), 400, MissingScoreError, "MISSING_SCORE")
    expect(finish(seeded.beta_run, eve, 1.5), 400, ValidationErrorError, "VALIDATION_ERROR")
    expect(finish(uuid.uuid4(), eve), 404, EvalRunNotFoundError, "EVAL_RUN_NOT_FOUND")
    expect(finish(seeded.beta_run, charlie), 409, NotRunOwnerError, "NOT_RUN_OWNER")
    expect(
        finish(seeded.alpha_runs[1], server.signed("Dave")),
        409,
        RunAlreadyCompleteError,
        "RUN_ALREADY_COMPLETE",
    )
    expire_lease(server, seeded.beta_run)
    gone = expect(finish(seeded.beta_run, eve), 409, RunAlreadyCompleteError, "RUN_ALREADY_COMPLETE")
    assert "lapsed" in gone.detail


def test_presign_errors(server: LiveServer, seeded: Seeded) -> None:
    charlie, eve = server.signed("Charlie"), server.signed("Eve")
    problem = seeded.problems[0]
    cap = server.runtime.settings.max_upload_bytes

    def presign(
        run_id: uuid.UUID, client: Any, problem_id: uuid.UUID = problem.id, size: int = 100
    ) -> Response[Any]:
        body = PresignUploadRequest(content_length=size, eval_run_id=run_id, problem_id=problem_id)
        return presign_upload.sync_detailed(client=client, body=body)

    expect(presign(uuid.uuid4(), eve), 404, EvalRunNotFoundError, "EVAL_RUN_NOT_FOUND")
    expect(presign(seeded.beta_run, eve, uuid.uuid4()), 404, ProblemNotFoundError, "PROBLEM_NOT_FOUND")
    expect(presign(seeded.beta_run, charlie), 409, NotRunOwnerError, "NOT_RUN_OWNER")
    expect(presign(seeded.beta_run, eve, size=cap + 1), 400, FileTooLargeError, "FILE_TOO_LARGE")
    expect(presign(seeded.beta_run, eve, size=0), 400, ValidationErrorError, "VALIDATION_ERROR")
    # a run that is not live any more is not the validator's to upload for
    finished = expect(presign(seeded.alpha_runs[0], charlie), 409, NotRunOwnerError, "NOT_RUN_OWNER")
    assert "complete" in finished.detail
    expire_lease(server, seeded.beta_run)
    lapsed = expect(presign(seeded.beta_run, eve), 409, NotRunOwnerError, "NOT_RUN_OWNER")
    assert "lapsed" in lapsed.detail
