"""/v1/validator/...: claim work, keep the lease, report progress and results. Signed, permit holders only.

Claim, heartbeat, progress and complete check the permit in the service, and spend the request's nonce,
in the transaction of the work, on one worker thread that applies the hotkey's write charge first
(``SignatureVerifier.call_charged``); the rate limit made that charge with the request's point, in the
same round trip to Redis (``edge.ratelimit.PRECHARGED_WRITES``), and the route takes its verdict
(``RateLimits.write_charge`` with the request's scope). The other paths check both here
(``ValidatorHotkey``)."""

from __future__ import annotations

import functools
import uuid

from fastapi import APIRouter, Request, Response

from oro_graph.errors import ErrorCode as E
from oro_graph.models import RunStatus
from oro_graph.services import artifacts, evaluations, inference
from oro_graph.threads import to_thread
from rest_compat import schemas
from rest_compat.deps import RateLimitsDep, RuntimeDep, UnspentSignature, ValidatorHotkey
from rest_compat.errors import documented

router = APIRouter(
    prefix="/v1/validator",
    tags=["validator"],
    responses=documented({401: [E.UNAUTHENTICATED], 403: [E.FORBIDDEN], 429: [E.RATE_LIMIT_EXCEEDED]}),
)

RUN_NOT_FOUND = {404: [E.EVAL_RUN_NOT_FOUND]}


@router.post(
    "/work/claim",
    response_model=schemas.ClaimWorkResponse,
    responses={
        204: {"description": "No work is available now"},
        **documented({409: [E.AT_CAPACITY], 503: [E.SERVICE_UNAVAILABLE]}),
    },
)
async def claim_work(
    signed: UnspentSignature,
    runtime: RuntimeDep,
    limits: RateLimitsDep,
    request: Request,
    body: schemas.ClaimWorkRequest | None = None,
) -> schemas.ClaimWorkResponse | Response:
    """Lease the oldest version that still needs a run from this validator; 204 when there is none.

    The answer carries an inference token minted from the miner's credential (``inference_token``,
    and ``chutes_access_token`` for Chutes). If none can be minted, the run is released and the
    answer is 503 with Retry-After."""
    hotkey = signed[0]
    assert runtime.inference is not None
    got = await to_thread(
        inference.claim_with_grant,
        runtime.db,
        runtime.inference,
        validator_hotkey=hotkey,
        settings=runtime.settings,
        storage=runtime.storage,
        metrics=body.metrics() if body else None,
        call=functools.partial(
            runtime.verifier.call_charged,
            runtime.db,
            signed,
            limits.write_charge(hotkey, "claim", request.scope),
        ),
    )
    return schemas.ClaimWorkResponse.of(got.claim, got.grant) if got else Response(status_code=204)


@router.get("/evaluation-runs/{eval_run_id}/problems", responses=documented(RUN_NOT_FOUND))
async def get_run_problems(
    eval_run_id: uuid.UUID, hotkey: ValidatorHotkey, runtime: RuntimeDep
) -> schemas.RunProblemsResponse:
    """Every problem the run must evaluate, whole (answers included), for the validator holding its lease.

    Any other caller, a lapsed or finished run and an unknown id are all EVAL_RUN_NOT_FOUND; the detail
    says which.
    """
    found = await runtime.db.run(evaluations.run_problems, run_id=eval_run_id, validator_hotkey=hotkey)
    return schemas.RunProblemsResponse.of(found)


@router.post(
    "/evaluation-runs/{eval_run_id}/heartbeat",
    responses=documented({**RUN_NOT_FOUND, 409: [E.LEASE_EXPIRED, E.NOT_RUN_OWNER, E.RUN_ALREADY_COMPLETE]}),
)
async def heartbeat(
    eval_run_id: uuid.UUID,
    signed: UnspentSignature,
    runtime: RuntimeDep,
    limits: RateLimitsDep,
    request: Request,
    body: schemas.HeartbeatRequest | None = None,
) -> schemas.HeartbeatResponse:
    """Extend the lease of a run this validator holds, and report its machine's metrics."""
    hotkey = signed[0]
    run = await to_thread(
        runtime.verifier.call_charged,
        runtime.db,
        signed,
        limits.write_charge(hotkey, "heartbeat", request.scope),
        evaluations.heartbeat,
        run_id=eval_run_id,
        validator_hotkey=hotkey,
        settings=runtime.settings,
        metrics=body.metrics() if body else None,
    )
    return schemas.HeartbeatResponse(lease_expires_at=run.lease_expires_at)


@router.post(
    "/evaluation-runs/{eval_run_id}/progress",
    responses=documented(
        {
            400: [E.INVALID_PROBLEM_ID],
            **RUN_NOT_FOUND,
            409: [E.NOT_RUN_OWNER, E.RUN_ALREADY_COMPLETE],
        }
    ),
)
async def update_progress(
    eval_run_id: uuid.UUID,
    body: schemas.ProgressUpdateRequest,
    signed: UnspentSignature,
    runtime: RuntimeDep,
    limits: RateLimitsDep,
    request: Request,
) -> schemas.ProgressUpdateResponse:
    """Record per-problem results of a run (upserted by problem; all or nothing).

    A run whose lease lapsed is over: RUN_ALREADY_COMPLETE, with a detail saying the lease lapsed."""
    hotkey = signed[0]
    await to_thread(
        runtime.verifier.call_charged,
        runtime.db,
        signed,
        limits.write_charge(hotkey, "progress", request.scope),
        evaluations.update_progress,
        run_id=eval_run_id,
        validator_hotkey=hotkey,
        problems=[entry.update() for entry in body.problems],
    )
    return schemas.ProgressUpdateResponse(accepted=True)


@router.post(
    "/evaluation-runs/{eval_run_id}/complete",
    responses=documented(
        {
            400: [E.MISSING_SCORE, E.VALIDATION_ERROR],
            **RUN_NOT_FOUND,
            409: [E.NOT_RUN_OWNER, E.RUN_ALREADY_COMPLETE],
        }
    ),
)
async def complete_run(
    eval_run_id: uuid.UUID,
    body: schemas.CompleteRunRequest,
    signed: UnspentSignature,
    runtime: RuntimeDep,
    limits: RateLimitsDep,
    request: Request,
) -> schemas.CompleteRunResponse:
    """Finish a run; the last success a version needs makes it eligible.

    A run whose lease lapsed is over: RUN_ALREADY_COMPLETE, with a detail saying the lease lapsed."""
    hotkey = signed[0]
    done = await to_thread(
        runtime.verifier.call_charged,
        runtime.db,
        signed,
        limits.write_charge(hotkey, "complete", request.scope),
        evaluations.complete_run,
        run_id=eval_run_id,
        validator_hotkey=hotkey,
        terminal_status=RunStatus(body.terminal_status),
        settings=runtime.settings,
        validator_score=body.validator_score,
        score_components=body.score_components,
        results_key=body.results_s3_key,
        failure_reason=body.failure_reason,
        sandbox_metadata=body.sandbox_metadata,
    )
    return schemas.CompleteRunResponse.of(done)


@router.post(
    "/uploads/presign",
    responses=documented(
        {
            # FILE_TOO_LARGE is a 400 here (413 on submit): the client reads it only under 400.
            400: [E.FILE_TOO_LARGE, E.VALIDATION_ERROR],
            404: [E.EVAL_RUN_NOT_FOUND, E.PROBLEM_NOT_FOUND],
            409: [E.NOT_RUN_OWNER],
        }
    ),
)
async def presign_upload(
    body: schemas.PresignUploadRequest, hotkey: ValidatorHotkey, runtime: RuntimeDep, limits: RateLimitsDep
) -> schemas.PresignUploadResponse:
    """A short-lived URL to PUT the logs of one problem of a run this validator holds.

    A run that is not live any more (lease lapsed, or finished) is NOT_RUN_OWNER: the validator no longer
    holds it."""
    await limits.charge_write(hotkey, "presign")
    grant = await runtime.db.run(
        artifacts.presign_upload,
        validator_hotkey=hotkey,
        eval_run_id=body.eval_run_id,
        problem_id=body.problem_id,
        content_length=body.content_length,
        content_type=body.content_type,
        settings=runtime.settings,
        storage=runtime.storage,
    )
    return schemas.PresignUploadResponse.of(grant)
