"""Group 3: a whole evaluation lifecycle through the official client alone, with both generations
(oro-sdk 7.0.2 and, through scripts/test, 1.0.50, which the public validator pins).

Only the operator's part (importing the suite, registering hotkeys) goes through the services,
since no documented path does it. The validators send what the real one sends (service versions and
machine metrics with every claim and heartbeat) and read their run's problems from the run.
"""

from __future__ import annotations

from uuid import UUID

import httpx
import pytest
from oro_sdk.api.miner import get_owned_agent_version_status, list_miner_agents, submit_agent
from oro_sdk.api.public import (
    get_agent_version,
    get_agent_version_problems,
    get_agent_version_runs,
    get_agent_version_status,
    get_artifact_download_url,
    get_evaluation_run,
    get_leaderboard,
    get_pending_evaluations,
    get_running_evaluations,
    get_suite_problems,
    get_top_agent,
    get_validators,
)
from oro_sdk.api.validator import (
    claim_work,
    complete_run,
    get_run_problems,
    heartbeat,
    presign_upload,
    update_progress,
)
from oro_sdk.models import (
    AdmissionStatus,
    AgentVersionState,
    ArtifactDownloadRequest,
    ArtifactReleaseState,
    ArtifactType,
    ClaimWorkResponse,
    CompleteRunRequest,
    CompleteRunResponse,
    EvaluationRunStatus,
    PresignUploadRequest,
    ProblemProgressUpdate,
    ProblemPublic,
    ProblemStatus,
    ProgressUpdateRequest,
    TerminalStatus,
    ValidatorStatus,
)

from oro_graph.models import Role
from tests.factories import AGENT_SOURCE, make_suite, register
from tests.rest.live import LiveServer, wallet
from tests.rest.seed import agent_file
from tests.sdk_compat import VALIDATOR_METRICS, claim_body, heartbeat_body, wire

pytestmark = pytest.mark.sdk1050


def hotkey(name: str) -> str:
    return wallet(name).hotkey.ss58_address


# Per validator, per agent: the score it reports for every problem and as the run's score.
SCORES = {
    ("Charlie", "alpha"): 0.9,
    ("Dave", "alpha"): 0.7,
    ("Charlie", "bravo"): 0.5,
    ("Dave", "bravo"): 0.3,
}


def start(server: LiveServer, validator: str) -> ClaimWorkResponse:
    claim = claim_work.sync(
        client=server.signed(validator), body=claim_body(cpu_pct=20.0, docker_container_count=2)
    )
    assert isinstance(claim, ClaimWorkResponse)
    # neither client has a field for the code's hash: the downloaded bytes are the submitted file
    assert httpx.get(claim.code_download_url).content == AGENT_SOURCE
    return claim


def finish(
    server: LiveServer,
    validator: str,
    claim: ClaimWorkResponse,
    score: float,
    problems: list[ProblemPublic],
    logs: dict[tuple[UUID, UUID], bytes],
) -> CompleteRunResponse:
    """The rest of one validator's run: its problems, heartbeat, a log per problem, report, complete."""
    client = server.signed(validator)
    whole = get_run_problems.sync(claim.eval_run_id, client=client).problems
    assert [p.problem_id for p in whole] == [p.problem_id for p in problems]
    assert all("reward" in p.metadata.to_dict() for p in whole)  # the answers, for the lease holder
    beat = heartbeat.sync(
        claim.eval_run_id,
        client=client,
        body=heartbeat_body(cpu_pct=55.0, ram_pct=30.0, docker_container_count=2),
    )
    assert beat.lease_expires_at >= claim.lease_expires_at
    updates = []
    for problem in problems:
        text = f"{validator} ran {claim.agent_version_id} on {problem.problem_id}".encode()
        grant = presign_upload.sync(
            client=client,
            body=PresignUploadRequest(
                content_length=len(text), eval_run_id=claim.eval_run_id, problem_id=problem.problem_id
            ),
        )
        put = httpx.put(grant.upload_url, content=text)
        assert put.status_code == 200, put.text
        logs[(claim.eval_run_id, problem.problem_id)] = text
        updates.append(
            ProblemProgressUpdate(
                problem_id=problem.problem_id,
                status=ProblemStatus.SUCCESS,
                score=score,
                logs_s3_key=grant.results_s3_key,
                execution_time=2.0,
                inference_total=4,
                inference_failure_count=1,
            )
        )
    accepted = update_progress.sync(
        claim.eval_run_id, client=client, body=ProgressUpdateRequest(problems=updates)
    )
    assert accepted.accepted is True
    done = complete_run.sync(
        claim.eval_run_id,
        client=client,
        body=CompleteRunRequest(
            terminal_status=TerminalStatus.SUCCESS, validator_score=score, score_components={"qa": score}
        ),
    )
    assert isinstance(done, CompleteRunResponse)
    assert done.status == "SUCCESS" and done.eval_run_id == claim.eval_run_id
    return done


def test_two_miners_two_validators_whole_lifecycle(server: LiveServer) -> None:
    # given an operator's suite and registry
    rt = server.runtime
    suite = make_suite(rt, problems=4)
    for name in ("Alice", "Bob"):
        register(rt, name)
    for name in ("Charlie", "Dave"):
        register(rt, name, Role.VALIDATOR)
    public = server.public()
    problems = get_suite_problems.sync(suite.id, client=public).problems
    assert len(problems) == 4

    # when two miners submit
    alpha = submit_agent.sync(client=server.signed("Alice"), body=agent_file("alpha"))
    bravo = submit_agent.sync(client=server.signed("Bob"), body=agent_file("bravo"))
    assert alpha.admission_status == bravo.admission_status == AdmissionStatus.ACCEPTED
    pending = get_pending_evaluations.sync(client=public)
    assert [i.agent_version_id for i in pending.items] == [alpha.agent_version_id, bravo.agent_version_id]

    # and two validators evaluate the oldest first: both hold alpha's leases at once, then bravo's
    logs: dict[tuple[UUID, UUID], bytes] = {}
    claims: dict[tuple[str, str], ClaimWorkResponse] = {}
    for agent, version in (("alpha", alpha.agent_version_id), ("bravo", bravo.agent_version_id)):
        for validator in ("Charlie", "Dave"):
            claims[(validator, agent)] = start(server, validator)
            assert claims[(validator, agent)].agent_version_id == version
        running = get_running_evaluations.sync(client=public)
        assert {(r.validator_hotkey, r.agent_name, r.progress_percent) for r in running} == {
            (hotkey("Charlie"), agent, 0.0),
            (hotkey("Dave"), agent, 0.0),
        }
        assert {v.status for v in get_validators.sync(client=public)} == {ValidatorStatus.EVALUATING}
        first = finish(
            server, "Charlie", claims[("Charlie", agent)], SCORES[("Charlie", agent)], problems, logs
        )
        last = finish(server, "Dave", claims[("Dave", agent)], SCORES[("Dave", agent)], problems, logs)
        assert first.agent_version_became_eligible is False and first.work_item.included_success_count == 1
        assert last.agent_version_became_eligible is True and last.work_item.is_closed is True
        assert last.final_score == pytest.approx({"alpha": 0.8, "bravo": 0.4}[agent])
    nothing = claim_work.sync_detailed(
        client=server.signed("Charlie"), body=claim_body(cpu_pct=55.0, ram_pct=30.0, docker_container_count=2)
    )
    assert nothing.status_code == 204

    # then both versions are eligible, ranked by final score, and alpha is the top agent
    board = get_leaderboard.sync(client=public)
    assert [(e.rank, e.agent_version_id, e.final_score) for e in board.entries] == [
        (1, alpha.agent_version_id, pytest.approx(0.8)),
        (2, bravo.agent_version_id, pytest.approx(0.4)),
    ]
    assert (board.total, board.unique_miners, wire(board, "agents_submitted_24h")) == (2, 2, 2)
    assert board.entries[0].is_current_top and not board.entries[1].is_current_top
    top = get_top_agent.sync(client=public)
    assert (top.top_agent_version_id, top.top_miner_hotkey) == (alpha.agent_version_id, alpha.hotkey)
    assert top.top_score == pytest.approx(0.8)

    # and alpha's status, runs and problem matrix agree with what the validators reported
    status = get_agent_version_status.sync(alpha.agent_version_id, client=public)
    assert (
        status.state == AgentVersionState.ELIGIBLE and status.release_state == ArtifactReleaseState.RELEASED
    )
    assert (status.success_count, status.required_successes, status.active_count, status.is_closed) == (
        2,
        2,
        0,
        True,
    )
    assert status.final_score == pytest.approx(0.8)
    runs = get_agent_version_runs.sync(alpha.agent_version_id, client=public)
    by_validator = {r.validator_hotkey: r for r in runs}
    assert len(runs) == 2 and all(r.status == EvaluationRunStatus.SUCCESS and r.is_included for r in runs)
    for name in ("Charlie", "Dave"):
        run = by_validator[hotkey(name)]
        assert run.eval_run_id == claims[(name, "alpha")].eval_run_id
        assert run.validator_score == SCORES[(name, "alpha")]
        assert (wire(run, "inference_total"), wire(run, "inference_failure_count")) == (16, 4)  # 4 problems
        assert run.last_heartbeat_at is not None and run.completed_at is not None
        detail = get_evaluation_run.sync(run.eval_run_id, client=public)
        assert (detail.agent_name, detail.version_number, detail.score) == (
            "alpha",
            1,
            SCORES[(name, "alpha")],
        )
    matrix = get_agent_version_problems.sync(alpha.agent_version_id, client=public)
    assert [p.problem_id for p in matrix.problems] == [p.problem_id for p in problems]
    reported = sorted(
        (claims[(n, "alpha")].eval_run_id, SCORES[(n, "alpha")], ProblemStatus.SUCCESS)
        for n in ("Charlie", "Dave")
    )
    for entry in matrix.problems:
        assert sorted((r.eval_run_id, r.score, r.status) for r in entry.validator_results) == reported

    # and the uploaded logs and the code are downloadable now that alpha is released
    for (run_id, problem_id), text in logs.items():
        if run_id not in {r.eval_run_id for r in runs}:
            continue
        body = ArtifactDownloadRequest(
            artifact_type=ArtifactType.EVAL_PROBLEM_LOGS,
            agent_version_id=alpha.agent_version_id,
            eval_run_id=run_id,
            problem_id=problem_id,
        )
        url = get_artifact_download_url.sync(client=public, body=body)
        assert httpx.get(url.download_url).content == text
    code = ArtifactDownloadRequest(
        artifact_type=ArtifactType.AGENT_CODE, agent_version_id=alpha.agent_version_id
    )
    assert (
        httpx.get(get_artifact_download_url.sync(client=public, body=code).download_url).content
        == AGENT_SOURCE
    )
    assert get_agent_version.sync(alpha.agent_version_id, client=public).latest_final_score == pytest.approx(
        0.8
    )

    # and the queue is empty, the validators idle with their last metrics, the miners see the result
    assert get_running_evaluations.sync(client=public) == []
    assert get_pending_evaluations.sync(client=public).items == []
    validators = get_validators.sync(client=public)
    assert {v.status for v in validators} == {ValidatorStatus.AVAILABLE}
    assert all(v.cpu_pct == 55.0 and v.docker_container_count == 2 and v.last_claim_at for v in validators)
    assert all(v.disk_pct == VALIDATOR_METRICS["disk_pct"] for v in validators)
    reported = VALIDATOR_METRICS["service_versions"]
    assert all(v.service_versions.to_dict() == reported for v in validators)
    mine = list_miner_agents.sync(client=server.signed("Bob"))
    assert [(a.agent_name, a.latest_version.state) for a in mine.agents] == [
        ("bravo", AgentVersionState.ELIGIBLE)
    ]
    owned = get_owned_agent_version_status.sync(bravo.agent_version_id, client=server.signed("Bob"))
    assert owned.final_score == pytest.approx(0.4)
