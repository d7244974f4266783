"""The validator's lease mutations: claim work, heartbeat, report progress, complete, upload URLs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from oro_graph import models
from oro_graph.graphql import error_types as e
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import ProblemStatus, TerminalStatus
from oro_graph.graphql.permissions import IsValidatorPresigning
from oro_graph.services import artifacts, evaluations, inference
from oro_graph.threads import to_thread


@strawberry.input(description="What a validator reports about its machine.")
class MetricsInput:
    service_versions: JSON | None = strawberry.field(default=None, description="Versions of its services.")
    cpu_pct: float | None = strawberry.field(default=None, description="CPU use in percent.")
    ram_pct: float | None = strawberry.field(default=None, description="Memory use in percent.")
    disk_pct: float | None = strawberry.field(default=None, description="Disk use in percent.")
    docker_container_count: int | None = strawberry.field(default=None, description="Running containers.")

    def to_service(self) -> evaluations.Metrics:
        return evaluations.Metrics(
            service_versions=self.service_versions,
            cpu_pct=self.cpu_pct,
            ram_pct=self.ram_pct,
            disk_pct=self.disk_pct,
            docker_container_count=self.docker_container_count,
        )


def _metrics(value: MetricsInput | None) -> evaluations.Metrics | None:
    return value.to_service() if value else None


@strawberry.type(
    description="An inference token minted for one run, for the validator holding its lease only."
)
class InferenceToken:
    provider: str = strawberry.field(description="Who minted it: chutes or openrouter.")
    access_token: str = strawberry.field(description="The bearer credential to present at `baseUrl`.")
    base_url: str = strawberry.field(description="The OpenAI-compatible inference API to call with it.")
    expires_at: datetime = strawberry.field(description="When it stops being usable (UTC).")


@strawberry.type(description="A lease on a version to evaluate.")
class ClaimWorkSuccess:
    code_download_url: str = strawberry.field(description="Where to download the agent's code (short-lived).")
    code_sha256: str = strawberry.field(description="SHA-256 the downloaded code must have.")
    inference_token: InferenceToken | None = strawberry.field(
        default=None,
        description="The token to run the agent's inference with, minted from its miner's credential; "
        "null only when the server does not require one (ORO_REQUIRE_INFERENCE_CREDENTIAL=false) and the "
        "miner has none.",
    )
    _run: strawberry.Private[refs.EvaluationRun]
    _lease_expires_at: strawberry.Private[datetime]

    @strawberry.field(description="The new run.")
    def run(self) -> refs.EvaluationRun:
        return self._run

    @strawberry.field(description="When the lease ends without a heartbeat (UTC).")
    def lease_expires_at(self) -> datetime:
        return self._lease_expires_at


@strawberry.type(description="No version needs a run from this validator now; ask again later.")
class NoWorkAvailable:
    message: str = strawberry.field(description="A sentence for people.")


ClaimWorkResult = Annotated[
    ClaimWorkSuccess
    | NoWorkAvailable
    | e.AtCapacityError
    | e.ServiceUnavailableError
    | e.RateLimitExceededError,
    strawberry.union(
        "ClaimWorkResult",
        description="A lease, no work, or why the validator may not claim. SERVICE_UNAVAILABLE: no inference "
        "token could be minted (the run was released; claim again later).",
    ),
]

RUN_ERRORS = (
    e.EvalRunNotFoundError
    | e.NotRunOwnerError
    | e.RunAlreadyCompleteError
    | e.LeaseExpiredError
    | e.RateLimitExceededError  # over the hotkey's budget for this write (ORO_WRITE_RATE_LIMIT)
)


@strawberry.type(description="The lease was extended.")
class HeartbeatSuccess:
    _run: strawberry.Private[refs.EvaluationRun]
    _lease_expires_at: strawberry.Private[datetime]

    @strawberry.field(description="The run, now RUNNING.")
    def run(self) -> refs.EvaluationRun:
        return self._run

    @strawberry.field(description="The new end of the lease (UTC).")
    def lease_expires_at(self) -> datetime:
        return self._lease_expires_at


HeartbeatResult = Annotated[
    HeartbeatSuccess | RUN_ERRORS,
    strawberry.union("HeartbeatResult", description="The extended lease or why not."),
]


@strawberry.input(description="One problem's result within a progress report.")
class ProblemProgressInput:
    problem_id: uuid.UUID = strawberry.field(description="A problem of the run's suite.")
    status: ProblemStatus = strawberry.field(description="Its status.")
    score: float | None = strawberry.field(default=None, description="Score, 0 to 1.")
    reasoning_score: float | None = strawberry.field(default=None, description="Reasoning score, 0 to 1.")
    score_components: JSON | None = strawberry.field(default=None, description="The score's components.")
    logs_key: str | None = strawberry.field(
        default=None, description="Key from requestUploadUrl for its logs."
    )
    execution_time: float | None = strawberry.field(default=None, description="Seconds taken, not negative.")
    inference_failure_count: int | None = strawberry.field(
        default=None, description="Failed inference calls."
    )
    inference_total: int | None = strawberry.field(default=None, description="Inference calls.")

    def to_service(self) -> evaluations.ProblemUpdate:
        return evaluations.ProblemUpdate(
            problem_id=self.problem_id,
            status=models.ProblemStatus(self.status),
            score=self.score,
            reasoning_score=self.reasoning_score,
            score_components=self.score_components,
            logs_key=self.logs_key,
            execution_time=self.execution_time,
            inference_failure_count=self.inference_failure_count,
            inference_total=self.inference_total,
        )


@strawberry.type(description="The results were recorded (all of them: one bad entry records none).")
class ReportProgressSuccess:
    _run_id: strawberry.Private[uuid.UUID]
    _results: strawberry.Private[list[refs.ProblemResult]]

    @strawberry.field(description="The results as stored.")
    def results(self) -> list[refs.ProblemResult]:
        return self._results

    @strawberry.field(description="The run.")
    async def run(self, info: Info) -> refs.EvaluationRun | None:
        row = await info.context.loaders.run_by_id.load(self._run_id)
        return refs.EvaluationRun.of(row) if row else None


ReportProgressResult = Annotated[
    ReportProgressSuccess | RUN_ERRORS | e.InvalidProblemIdError | e.ValidationError,
    strawberry.union("ReportProgressResult", description="The recorded results or why none were."),
]


@strawberry.type(description="The run is finished; the version may have become eligible.")
class CompleteRunSuccess:
    agent_version_became_eligible: bool = strawberry.field(
        description="This completion made the version eligible."
    )
    final_score: float | None = strawberry.field(description="The version's final score, once eligible.")
    _run: strawberry.Private[refs.EvaluationRun]
    _work_item: strawberry.Private[refs.WorkItem]

    @strawberry.field(description="The finished run.")
    def run(self) -> refs.EvaluationRun:
        return self._run

    @strawberry.field(description="The version's work item after this completion.")
    def work_item(self) -> refs.WorkItem:
        return self._work_item


CompleteRunResult = Annotated[
    CompleteRunSuccess | RUN_ERRORS | e.MissingScoreError | e.ValidationError,
    strawberry.union("CompleteRunResult", description="The finished run or why it could not finish."),
]


@strawberry.type(description="A short-lived URL to PUT one problem's logs.")
class UploadUrlSuccess:
    upload_url: str = strawberry.field(description="PUT the file here before it expires.")
    logs_key: str = strawberry.field(
        description="Pass this as `logsKey` in reportProgress (REST `results_s3_key`)."
    )
    expires_at: datetime = strawberry.field(description="When the URL stops working (UTC).")
    method: str = strawberry.field(description="The HTTP method to use: PUT.")


RequestUploadUrlResult = Annotated[
    UploadUrlSuccess
    | e.EvalRunNotFoundError
    | e.ProblemNotFoundError
    | e.FileTooLargeError
    | e.NotRunOwnerError
    | e.ValidationError
    | e.RateLimitExceededError,
    strawberry.union("RequestUploadUrlResult", description="An upload URL or why there is none."),
]

Metrics = Annotated[MetricsInput | None, strawberry.argument(description="The machine's metrics now.")]
RunId = Annotated[uuid.UUID, strawberry.argument(description="A run this validator holds.")]
SIGNED_VALIDATOR = (
    " Signed (X-Hotkey, X-Timestamp, X-Nonce, X-Signature) by a hotkey with a validator permit."
)


@strawberry.type
class EvaluationMutation:
    @strawberry.mutation(
        description="Lease the oldest version that still needs a run from this validator." + SIGNED_VALIDATOR
    )
    async def claim_work(self, info: Info, metrics: Metrics = None) -> ClaimWorkResult:
        hotkey = await info.context.signed_write("claim")
        runtime = info.context.runtime
        assert runtime.inference is not None
        got = await to_thread(
            inference.claim_with_grant,
            runtime.db,
            runtime.inference,
            validator_hotkey=hotkey,
            settings=runtime.settings,
            storage=runtime.storage,
            metrics=_metrics(metrics),
        )
        if got is None:
            return NoWorkAvailable(message="no version needs a run from this validator now")
        info.context.held_versions.add(got.claim.run.agent_version_id)  # its validator sees the version
        info.context.held_runs.add(got.claim.run.id)
        grant = got.grant
        token = (
            InferenceToken(
                provider=grant.provider,
                access_token=grant.access_token,
                base_url=grant.base_url,
                expires_at=grant.expires_at,
            )
            if grant is not None and grant.expires_at is not None
            else None
        )
        return ClaimWorkSuccess(
            code_download_url=got.claim.code_download_url,
            code_sha256=got.claim.code_sha256,
            inference_token=token,
            _run=refs.EvaluationRun.of(got.claim.run),
            _lease_expires_at=got.claim.run.lease_expires_at,
        )

    @strawberry.mutation(
        description="Extend the lease of a run and report the machine's metrics." + SIGNED_VALIDATOR
    )
    async def heartbeat(self, info: Info, run_id: RunId, metrics: Metrics = None) -> HeartbeatResult:
        hotkey = await info.context.signed_write("heartbeat")
        runtime = info.context.runtime
        run = await runtime.db.run(
            evaluations.heartbeat,
            run_id=run_id,
            validator_hotkey=hotkey,
            settings=runtime.settings,
            metrics=_metrics(metrics),
        )
        info.context.loaders.forget_run(run.id)
        info.context.held_runs.add(run.id)
        return HeartbeatSuccess(_run=refs.EvaluationRun.of(run), _lease_expires_at=run.lease_expires_at)

    @strawberry.mutation(
        description=f"Record per-problem results (at most {evaluations.MAX_PROBLEMS_PER_UPDATE}, all "
        f"or nothing)." + SIGNED_VALIDATOR
    )
    async def report_progress(
        self,
        info: Info,
        run_id: RunId,
        problems: Annotated[
            list[ProblemProgressInput], strawberry.argument(description="Results to record.")
        ],
    ) -> ReportProgressResult:
        hotkey = await info.context.signed_write("progress")
        rows = await info.context.runtime.db.run(
            evaluations.update_progress,
            run_id=run_id,
            validator_hotkey=hotkey,
            problems=[p.to_service() for p in problems],
        )
        info.context.loaders.forget_run(run_id)
        info.context.held_runs.add(run_id)
        return ReportProgressSuccess(_run_id=run_id, _results=[refs.ProblemResult.of(row) for row in rows])

    @strawberry.mutation(
        description="Finish a run; the last success a version needs makes it eligible." + SIGNED_VALIDATOR
    )
    async def complete_run(
        self,
        info: Info,
        run_id: RunId,
        terminal_status: Annotated[TerminalStatus, strawberry.argument(description="How the run ended.")],
        validator_score: Annotated[
            float | None, strawberry.argument(description="0 to 1; required for SUCCESS.")
        ] = None,
        score_components: Annotated[
            JSON | None, strawberry.argument(description="The score's components.")
        ] = None,
        results_key: Annotated[
            str | None,
            strawberry.argument(description="Key of the uploaded results bundle (REST `results_s3_key`)."),
        ] = None,
        failure_reason: Annotated[str | None, strawberry.argument(description="Why it failed.")] = None,
        sandbox_metadata: Annotated[JSON | None, strawberry.argument(description="Sandbox metadata.")] = None,
    ) -> CompleteRunResult:
        hotkey = await info.context.signed_write("complete")
        runtime = info.context.runtime
        done = await runtime.db.run(
            evaluations.complete_run,
            run_id=run_id,
            validator_hotkey=hotkey,
            terminal_status=models.RunStatus(terminal_status.value),
            settings=runtime.settings,
            validator_score=validator_score,
            score_components=score_components,
            results_key=results_key,
            failure_reason=failure_reason,
            sandbox_metadata=sandbox_metadata,
        )
        info.context.loaders.forget_run(run_id)
        info.context.held_runs.add(run_id)
        return CompleteRunSuccess(
            agent_version_became_eligible=done.became_eligible,
            final_score=done.final_score,
            _run=refs.EvaluationRun.of(done.run),
            _work_item=refs.WorkItem.of(done.work_item),
        )

    @strawberry.mutation(
        description="A short-lived URL to upload one problem's logs of a run." + SIGNED_VALIDATOR,
        permission_classes=[IsValidatorPresigning],
    )
    async def request_upload_url(
        self,
        info: Info,
        run_id: RunId,
        problem_id: Annotated[uuid.UUID, strawberry.argument(description="A problem of the run's suite.")],
        content_length: Annotated[int, strawberry.argument(description="Exact size of the upload in bytes.")],
        content_type: Annotated[
            str, strawberry.argument(description="The upload's MIME type.")
        ] = "application/gzip",
    ) -> RequestUploadUrlResult:
        hotkey = await info.context.signer()
        runtime = info.context.runtime
        grant = await runtime.db.run(
            artifacts.presign_upload,
            validator_hotkey=hotkey,
            eval_run_id=run_id,
            problem_id=problem_id,
            content_length=content_length,
            content_type=content_type,
            settings=runtime.settings,
            storage=runtime.storage,
        )
        return UploadUrlSuccess(
            upload_url=grant.url.url,
            logs_key=grant.key,
            expires_at=grant.url.expires_at,
            method=grant.url.method,
        )
