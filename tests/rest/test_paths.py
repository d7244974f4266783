"""Group 1: every documented path answers its success case with a model the real client parses."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from oro_sdk.api.miner import (
    get_chutes_auth_status,
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
    get_running_evaluations,
    get_suite_problems,
    get_top_agent,
    get_validators,
    health_check,
)
from oro_sdk.api.validator import claim_work, complete_run, heartbeat, presign_upload, update_progress
from oro_sdk.models import (
    AdmissionStatus,
    AgentVersionProblemsResponse,
    AgentVersionPublic,
    AgentVersionState,
    AgentVersionStatus,
    ArtifactDownloadRequest,
    ArtifactDownloadResponse,
    ArtifactReleaseState,
    ChutesAuthStatusResponse,
    ClaimWorkRequest,
    ClaimWorkResponse,
    CompleteRunRequest,
    CompleteRunResponse,
    EvaluationRunDetail,
    EvaluationRunPublic,
    EvaluationRunStatus,
    HealthCheckResponseHealthCheck,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaderboardResponse,
    MinerAgentsResponse,
    PendingEvaluationsResponse,
    PresignUploadRequest,
    PresignUploadResponse,
    ProblemProgressUpdate,
    ProblemStatus,
    ProgressUpdateRequest,
    ProgressUpdateResponse,
    RunningEvaluation,
    StoreChutesTokenRequest,
    StoreChutesTokenResponseStoreChutesToken,
    SubmitAgentResponse,
    SuitePublic,
    SuiteWithProblemsResponse,
    TerminalStatus,
    TopAgentResponse,
    ValidatorPublic,
    ValidatorStatus,
)
from oro_sdk.models import ArtifactType as SdkArtifactType

from oro_graph.services import agents, credentials
from tests.factories import AGENT_SOURCE
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded, agent_file, seed


@pytest.fixture
def seeded(server: LiveServer) -> Seeded:
    return seed(server.runtime)


def test_health_parses(server: LiveServer) -> None:
    result = health_check.sync(client=server.public())
    assert isinstance(result, HealthCheckResponseHealthCheck)
    assert result["status"] == "ok"


def test_public_suite_paths(server: LiveServer, seeded: Seeded) -> None:
    client = server.public()
    suite_id = seeded.world.suite.id
    # when
    current = get_current_suite.sync(client=client)
    with_problems = get_suite_problems.sync(suite_id, client=client, include_embeddings=True)
    # then
    assert isinstance(current, SuitePublic)
    assert (current.suite_id, current.suite_version, current.is_active) == (suite_id, 1, True)
    assert current.execution_kind.value == "legacy_shoppingbench"
    assert isinstance(with_problems, SuiteWithProblemsResponse)
    assert with_problems.suite.suite_id == suite_id
    assert [p.problem_id for p in with_problems.problems] == [p.id for p in seeded.problems]
    assert with_problems.problems[0].metadata["title"] == "Problem 1"
    assert "reward" not in with_problems.problems[0].metadata.additional_properties  # answers stay private


def test_public_leaderboard_and_top(server: LiveServer, seeded: Seeded) -> None:
    client = server.public()
    board = get_leaderboard.sync(client=client, limit=10, q="alp")
    top = get_top_agent.sync(client=client)
    assert isinstance(board, LeaderboardResponse)
    assert (board.total, board.limit, board.offset, board.unique_miners) == (1, 10, 0, 1)
    assert board.agents_submitted_24h == 2
    [entry] = board.entries
    assert (entry.rank, entry.agent_version_id, entry.agent_name) == (1, seeded.alpha, "alpha")
    assert entry.miner_hotkey == seeded.alice and entry.final_score == pytest.approx(0.7)
    assert entry.is_current_top is True and entry.was_top is True and entry.top_at is not None
    assert isinstance(top, TopAgentResponse)
    assert top.top_agent_version_id == seeded.alpha and top.top_miner_hotkey == seeded.alice
    assert top.top_score == pytest.approx(0.7) and top.suite_id == seeded.world.suite.id


def test_public_agent_version_paths(server: LiveServer, seeded: Seeded) -> None:
    client = server.public()
    public = get_agent_version.sync(seeded.alpha, client=client)
    status = get_agent_version_status.sync(seeded.beta, client=client)
    runs = get_agent_version_runs.sync(seeded.alpha, client=client)
    matrix = get_agent_version_problems.sync(seeded.alpha, client=client)

    assert isinstance(public, AgentVersionPublic)
    assert (public.agent_id, public.agent_name, public.version_number) == (seeded.alpha_agent, "alpha", 1)
    assert public.latest_final_score == pytest.approx(0.7) and public.released_at == public.code_available_at

    assert isinstance(status, AgentVersionStatus)
    assert status.state == AgentVersionState.RUNNING and status.release_state == ArtifactReleaseState.HIDDEN
    assert (status.required_successes, status.success_count, status.active_count, status.is_closed) == (
        2,
        0,
        1,
        False,
    )

    assert isinstance(runs, list) and all(isinstance(r, EvaluationRunPublic) for r in runs)
    assert [r.eval_run_id for r in runs] == seeded.alpha_runs
    assert [r.validator_score for r in runs] == [0.6, 0.8]
    assert all(r.status == EvaluationRunStatus.SUCCESS and r.is_included for r in runs)

    assert isinstance(matrix, AgentVersionProblemsResponse)
    assert [p.problem_id for p in matrix.problems] == [p.id for p in seeded.problems]
    first = matrix.problems[0]
    assert {(r.validator_hotkey, r.score, r.status) for r in first.validator_results} == {
        (seeded.charlie, 0.6, ProblemStatus.SUCCESS),
        (seeded.dave, 0.8, ProblemStatus.SUCCESS),
    }
    assert all(p.validator_results == [] for p in matrix.problems[1:])


def test_public_run_and_queue_paths(server: LiveServer, seeded: Seeded) -> None:
    client = server.public()
    detail = get_evaluation_run.sync(seeded.alpha_runs[1], client=client)
    validators = get_validators.sync(client=client)
    running = get_running_evaluations.sync(client=client)
    pending = get_pending_evaluations.sync(client=client, limit=5)

    assert isinstance(detail, EvaluationRunDetail)
    assert (detail.agent_name, detail.validator_hotkey, detail.score) == ("alpha", seeded.dave, 0.8)
    assert detail.status == EvaluationRunStatus.SUCCESS and detail.is_included is True

    assert isinstance(validators, list) and all(isinstance(v, ValidatorPublic) for v in validators)
    by_key = {v.hotkey: v for v in validators}
    assert set(by_key) == {seeded.charlie, seeded.dave, seeded.eve}
    assert by_key[seeded.eve].status == ValidatorStatus.EVALUATING
    assert by_key[seeded.eve].current_agent.version_id == seeded.beta
    assert by_key[seeded.charlie].status == ValidatorStatus.AVAILABLE

    assert isinstance(running, list) and all(isinstance(r, RunningEvaluation) for r in running)
    assert [(r.eval_run_id, r.agent_name, r.miner_hotkey) for r in running] == [
        (seeded.beta_run, "beta", seeded.bob)
    ]

    assert isinstance(pending, PendingEvaluationsResponse)
    assert (
        pending.summary.total_pending,
        pending.summary.total_runs_needed,
        pending.summary.total_runs_active,
    ) == (1, 2, 1)
    [item] = pending.items
    assert (item.agent_version_id, item.remaining, item.active_runs) == (seeded.beta, 2, 1)


def test_public_download_url_serves_released_code(server: LiveServer, seeded: Seeded) -> None:
    body = ArtifactDownloadRequest(artifact_type=SdkArtifactType.AGENT_CODE, agent_version_id=seeded.alpha)
    result = get_artifact_download_url.sync(client=server.public(), body=body)
    assert isinstance(result, ArtifactDownloadResponse)
    assert httpx.get(result.download_url).content == AGENT_SOURCE


def test_miner_paths(server: LiveServer, seeded: Seeded) -> None:
    alice = server.signed("Alice")
    agents = list_miner_agents.sync(client=alice)
    versions = list_agent_versions.sync(seeded.alpha_agent, client=alice)
    owned = get_owned_agent_version_status.sync(seeded.alpha, client=alice)
    stored = store_chutes_token.sync(client=alice, body=StoreChutesTokenRequest(refresh_token="rt-secret"))
    status = get_chutes_auth_status.sync(client=alice)

    assert isinstance(agents, MinerAgentsResponse)
    assert [(a.agent_id, a.agent_name) for a in agents.agents] == [(seeded.alpha_agent, "alpha")]
    assert agents.agents[0].latest_version.state == AgentVersionState.ELIGIBLE
    assert agents.can_submit is False and agents.next_allowed_at is not None  # cooldown after alpha
    assert isinstance(versions, list) and [(v.agent_version_id, v.version_number) for v in versions] == [
        (seeded.alpha, 1)
    ]
    assert isinstance(owned, AgentVersionStatus) and owned.state == AgentVersionState.ELIGIBLE
    assert owned.release_state == ArtifactReleaseState.RELEASED and owned.final_score == pytest.approx(0.7)
    assert isinstance(stored, StoreChutesTokenResponseStoreChutesToken) and stored["success"] is True
    assert isinstance(status, ChutesAuthStatusResponse) and status.connected is True and status.updated_at
    secret = server.runtime.settings.secret
    assert (
        server.runtime.db.call(credentials.reveal_credential, hotkey=seeded.alice, secret=secret)
        == "rt-secret"
    )


def test_miner_submit_accepts_the_clients_multipart(serve: Callable[..., LiveServer]) -> None:
    # given no cooldown, so Bob may submit again right away
    server = serve(submission_cooldown_seconds=0)
    seeded = seed(server.runtime)
    # when
    result = submit_agent.sync(client=server.signed("Bob"), body=agent_file("beta", b"print('v2')\n"))
    # then a second version of the same agent, its file stored as sent
    assert isinstance(result, SubmitAgentResponse)
    assert result.admission_status == AdmissionStatus.ACCEPTED and result.hotkey == seeded.bob
    assert result.agent_id == seeded.beta_agent and result.agent_version_id not in (None, seeded.beta)
    assert result["version_number"] == 2 and result.next_allowed_at is not None
    version = server.runtime.db.call(agents.get_version, result.agent_version_id)
    assert server.runtime.storage.get(version.code_key) == b"print('v2')\n"


def test_validator_paths(server: LiveServer, seeded: Seeded) -> None:
    # given beta has a free slot (Eve holds the other) and Charlie is idle
    charlie = server.signed("Charlie")
    problem = seeded.problems[1]
    metrics = {"cpu_pct": 12.5, "ram_pct": 40.0, "disk_pct": 70.0, "docker_container_count": 3}

    # when Charlie goes through one run
    claim = claim_work.sync(client=charlie, body=ClaimWorkRequest(service_versions=None, **metrics))
    assert isinstance(claim, ClaimWorkResponse)
    beat = heartbeat.sync(claim.eval_run_id, client=charlie, body=HeartbeatRequest(cpu_pct=50.0))
    presigned = presign_upload.sync(
        client=charlie,
        body=PresignUploadRequest(content_length=11, eval_run_id=claim.eval_run_id, problem_id=problem.id),
    )
    update = ProblemProgressUpdate(problem_id=problem.id, status=ProblemStatus.SUCCESS, score=0.9)
    progressed = update_progress.sync(
        claim.eval_run_id, client=charlie, body=ProgressUpdateRequest(problems=[update])
    )
    done = complete_run.sync(
        claim.eval_run_id,
        client=charlie,
        body=CompleteRunRequest(terminal_status=TerminalStatus.SUCCESS, validator_score=0.9),
    )

    # then
    assert claim.agent_version_id == seeded.beta and claim.suite_id == seeded.world.suite.id
    assert httpx.get(claim.code_download_url).content == AGENT_SOURCE
    assert isinstance(beat, HeartbeatResponse) and beat.lease_expires_at >= claim.lease_expires_at
    assert isinstance(presigned, PresignUploadResponse) and presigned.method == "PUT"
    assert presigned.results_s3_key.startswith(f"runs/{claim.eval_run_id}/{problem.id}/")
    assert isinstance(progressed, ProgressUpdateResponse) and progressed.accepted is True
    assert isinstance(done, CompleteRunResponse)
    assert (done.eval_run_id, done.status, done.agent_version_became_eligible) == (
        claim.eval_run_id,
        "SUCCESS",
        False,
    )
    assert (
        done.work_item.included_success_count,
        done.work_item.required_successes,
        done.work_item.is_closed,
    ) == (1, 2, False)
    charlie_public = {v.hotkey: v for v in get_validators.sync(client=server.public())}[seeded.charlie]
    assert charlie_public.cpu_pct == 50.0 and charlie_public.docker_container_count == 3


def test_validator_claim_without_work_is_204(server: LiveServer, seeded: Seeded) -> None:
    # Charlie already ran alpha and beta is Eve's and Dave's to finish... except Dave: give Dave beta first.
    assert isinstance(claim_work.sync(client=server.signed("Dave")), ClaimWorkResponse)
    response = claim_work.sync_detailed(client=server.signed("Charlie"))
    assert response.status_code == 204 and response.content == b"" and response.parsed is None


def test_uuid_paths_reject_junk_with_fastapi_422(server: LiveServer) -> None:
    response = server.http().get(f"/v1/public/agent-versions/{uuid.uuid4().hex[:8]}")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "agent_version_id"]
