"""Evaluation runs and problem results; the validator's lifecycle mutations."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import inspect as sa_inspect
from strawberry import relay
from strawberry.scalars import JSON

from oro_graph import models
from oro_graph.capacity import to_thread
from oro_graph.graphql import errors as e
from oro_graph.graphql.agents import Agent, AgentVersion, WorkItem, agent_of_version, shown_version
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import ProblemStatus, RunStatus, TerminalStatus
from oro_graph.graphql.filters import ProblemResultFilter, ProblemResultOrder, filtered_edge, result_filter
from oro_graph.graphql.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    OrderDirection,
    edge_connection,
    make_window,
    to_connection,
)
from oro_graph.graphql.suites import NodeRef, Problem, Suite, load_by_uuid, parse_node_id, uuid_id
from oro_graph.models import Role
from oro_graph.services import artifacts, evaluations, inference, pages, races
from oro_graph.services.pages import RunFilter

if TYPE_CHECKING:
    from oro_graph.graphql.races import Race
    from oro_graph.graphql.validators import Validator


async def _lease_expires_at(root: EvaluationRun, info: Info) -> datetime:
    return await root.live(info, 0)


async def _last_heartbeat_at(root: EvaluationRun, info: Info) -> datetime | None:
    return await root.live(info, 1)


async def scores_disclosed(info: Info, run_id: uuid.UUID, race_id: uuid.UUID | None) -> bool:
    """Whether this caller may see the run's scores (``services.races.run_scores_disclosed``): a race
    run's are embargoed until its race completes, except in the answers to its validator's lease calls.
    Reading the race makes a cached answer depend on its status, so completion ends a masked answer."""
    if race_id is None:
        return True
    race = await info.context.loaders.race_by_id.load(race_id)
    return races.run_scores_disclosed(race, holds_run=run_id in info.context.held_runs)


async def _validator_score(root: EvaluationRun, info: Info) -> float | None:
    return root._scores[0] if await root.disclosed(info) else None


async def _score_components(root: EvaluationRun, info: Info) -> Any:
    return root._scores[1] if await root.disclosed(info) else None


@strawberry.type(description="One validator's lease on one agent version, and what it reported.")
class EvaluationRun(relay.Node):
    id: relay.NodeID[str]
    eval_run_id: uuid.UUID = strawberry.field(description="The run's id (the REST `eval_run_id`).")
    agent_version_id: uuid.UUID = strawberry.field(description="The version evaluated.")
    work_item_id: uuid.UUID = strawberry.field(description="The work item the run counts toward.")
    suite_id: int = strawberry.field(description="The suite evaluated on.")
    validator_hotkey: str = strawberry.field(description="The validator holding the run.")
    status: RunStatus = strawberry.field(description="The run's status.")
    claimed_at: datetime = strawberry.field(description="When the validator claimed it (UTC).")
    lease_expires_at: datetime = strawberry.field(
        resolver=_lease_expires_at, description="When the lease runs out without a heartbeat (UTC)."
    )
    last_heartbeat_at: datetime | None = strawberry.field(
        resolver=_last_heartbeat_at, description="The last heartbeat (UTC)."
    )

    completed_at: datetime | None = strawberry.field(description="When it finished or went stale (UTC).")
    validator_score: float | None = strawberry.field(
        resolver=_validator_score,
        description="The score reported on completion, 0 to 1. A race run's: null until its race is "
        "RACE_COMPLETE (the embargo; a cancelled race never publishes it), except to its validator in "
        "the answers to its own lease mutations.",
    )
    score_components: JSON | None = strawberry.field(
        resolver=_score_components,
        description="The score's components as reported (embargoed with `validatorScore`).",
    )
    failure_reason: str | None = strawberry.field(description="Why it failed, when it did.")
    sandbox_metadata: JSON | None = strawberry.field(description="The validator's sandbox metadata.")
    service_versions: JSON | None = strawberry.field(description="The validator's service versions.")
    is_included: bool = strawberry.field(description="Whether its score counts toward the final score.")
    inference_failure_count: int | None = strawberry.field(
        description="Failed inference calls over its problems."
    )
    inference_total: int | None = strawberry.field(description="Inference calls over its problems.")
    # (lease_expires_at, last_heartbeat_at) when the row came with them; pages of runs leave them out
    # (services.pages.RUN_LIVENESS) so a cached answer that does not show them outlives heartbeats.
    _liveness: strawberry.Private[tuple[datetime, datetime | None] | None]
    _scores: strawberry.Private[tuple[float | None, Any]]  # (validator score, components) as stored

    _hidden: strawberry.Private[bool]  # embargoed whatever its race is now (a race as it stood at asOf)

    async def disclosed(self, info: Info) -> bool:
        return not self._hidden and await scores_disclosed(info, self.eval_run_id, self.race_id)

    async def live(self, info: Info, which: int) -> Any:
        """The lease end (0) or last heartbeat (1), loaded apart when the row came without them."""
        if self._liveness is None:
            found = await info.context.loaders.liveness_by_run_id.load(self.eval_run_id)
            assert found is not None, f"run {self.eval_run_id} vanished"
            self._liveness = found
        return self._liveness[which]

    race_id: uuid.UUID | None = strawberry.field(
        description="The race this run is race work for; null for qualifying runs."
    )

    @classmethod
    def from_row(cls, row: models.EvaluationRun, *, hidden: bool = False) -> EvaluationRun:
        """``hidden``: its scores are embargoed whatever its race's status now (``Race`` at ``asOf``)."""
        unloaded = sa_inspect(row, raiseerr=True).unloaded
        return cls(
            id=str(row.id),
            eval_run_id=row.id,
            agent_version_id=row.agent_version_id,
            work_item_id=row.work_item_id,
            suite_id=row.suite_id,
            validator_hotkey=row.validator_hotkey,
            status=models.RunStatus(row.status),
            claimed_at=row.claimed_at,
            completed_at=row.completed_at,
            _scores=(row.validator_score, row.score_components),
            _hidden=hidden,
            failure_reason=row.failure_reason,
            sandbox_metadata=row.sandbox_metadata,
            service_versions=row.service_versions,
            is_included=row.is_included,
            inference_failure_count=row.inference_failure_count,
            inference_total=row.inference_total,
            _liveness=None
            if unloaded & {"lease_expires_at", "last_heartbeat_at"}
            else (row.lease_expires_at, row.last_heartbeat_at),
            race_id=row.race_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[EvaluationRun | None]:
        rows = await load_by_uuid(info.context.loaders.run_by_id, node_ids)
        return [cls.from_row(r) if r else None for r in rows]

    @strawberry.field(
        description="The version evaluated: null before its release, except to the validator holding the run."
    )
    async def agent_version(self, info: Info) -> AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return shown_version(info, row)

    @strawberry.field(
        description="The agent whose version was evaluated: public before the version's release, unlike "
        "`agentVersion`."
    )
    async def agent(self, info: Info) -> Agent | None:
        return await agent_of_version(info, self.agent_version_id)

    @strawberry.field(description="The validator holding the run (null if it left the registry).")
    async def validator(
        self, info: Info
    ) -> Annotated[Validator, strawberry.lazy("oro_graph.graphql.validators")] | None:
        from oro_graph.graphql.validators import Validator

        row = await info.context.loaders.validator_hotkey_by_ss58.load(self.validator_hotkey)
        return Validator.from_hotkey(row) if row else None

    @strawberry.field(description="The suite evaluated on.")
    async def suite(self, info: Info) -> Suite | None:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        return Suite.from_row(row) if row else None

    @strawberry.field(description="The race this run is race work for; null for qualifying runs.")
    async def race(self, info: Info) -> Annotated[Race, strawberry.lazy("oro_graph.graphql.races")] | None:
        from oro_graph.graphql.races import Race

        row = await info.context.loaders.race_by_id.load(self.race_id) if self.race_id else None
        return Race.from_row(row) if row else None

    @strawberry.field(description="The work item the run counts toward.")
    async def work_item(self, info: Info) -> WorkItem | None:
        row = await info.context.loaders.work_item_by_id.load(self.work_item_id)
        return WorkItem.from_row(row) if row else None

    @strawberry.field(
        description="Share of the suite's problems finished (success, failure, timeout or skip), 0-100."
    )
    async def progress_percent(self, info: Info) -> float:
        return await info.context.loaders.progress_by_run_id.load(self.eval_run_id) or 0.0

    @strawberry.field(description="Per-problem results reported so far, in report order.")
    async def problem_results(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[
            ProblemResultFilter | None, strawberry.argument(description="Which results; all if omitted.")
        ] = None,
        order_by: Annotated[
            ProblemResultOrder | None,
            strawberry.argument(description="Sort order; by report time, oldest first, by default."),
        ] = None,
    ) -> Connection[ProblemResult]:
        spec = result_filter(filter, order_by)
        if spec is not None:
            return await filtered_edge(
                info, "result", self.eval_run_id, spec, ProblemResult.from_row, first, after, last, before
            )
        loaders = info.context.loaders
        return await edge_connection(
            loaders.result_page_by_run_id,
            loaders.result_count_by_run_id,
            self.eval_run_id,
            "result.updated_at",
            ProblemResult.from_row,
            first,
            after,
            last,
            before,
        )


async def _result_score(root: ProblemResult, info: Info) -> float | None:
    return root._scores[0] if await root.disclosed(info) else None


async def _result_reasoning_score(root: ProblemResult, info: Info) -> float | None:
    return root._scores[1] if await root.disclosed(info) else None


async def _result_score_components(root: ProblemResult, info: Info) -> Any:
    return root._scores[2] if await root.disclosed(info) else None


@strawberry.type(description="What one run reported for one problem.")
class ProblemResult(relay.Node):
    id: relay.NodeID[str]
    run_id: uuid.UUID = strawberry.field(description="The run (the REST `eval_run_id`).")
    problem_id: uuid.UUID = strawberry.field(description="The problem.")
    status: ProblemStatus = strawberry.field(description="The problem's status in this run.")
    score: float | None = strawberry.field(
        resolver=_result_score,
        description="Score, 0 to 1 (a race run's: embargoed like the run's `validatorScore`).",
    )
    reasoning_score: float | None = strawberry.field(
        resolver=_result_reasoning_score, description="Reasoning score, 0 to 1 (embargoed like `score`)."
    )
    score_components: JSON | None = strawberry.field(
        resolver=_result_score_components, description="The score's components (embargoed like `score`)."
    )
    execution_time: float | None = strawberry.field(description="Seconds the agent took.")
    inference_failure_count: int | None = strawberry.field(description="Failed inference calls.")
    inference_total: int | None = strawberry.field(description="Inference calls.")
    updated_at: datetime = strawberry.field(description="Last report for this problem (UTC).")
    _scores: strawberry.Private[tuple[float | None, float | None, Any]]  # score, reasoning, components
    _disclosed: strawberry.Private[bool | None]  # None: decided from its run's race when asked

    async def disclosed(self, info: Info) -> bool:
        if self._disclosed is None:
            run = await info.context.loaders.run_by_id.load(self.run_id)
            self._disclosed = run is None or await scores_disclosed(info, run.id, run.race_id)
        return self._disclosed

    @classmethod
    def from_row(cls, row: models.ProblemResult, disclosed: bool | None = None) -> ProblemResult:
        return cls(
            id=str(row.id),
            run_id=row.run_id,
            problem_id=row.problem_id,
            status=models.ProblemStatus(row.status),
            _scores=(row.score, row.reasoning_score, row.score_components),
            _disclosed=disclosed,
            execution_time=row.execution_time,
            inference_failure_count=row.inference_failure_count,
            inference_total=row.inference_total,
            updated_at=row.updated_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ProblemResult | None]:
        rows = await load_by_uuid(info.context.loaders.result_by_id, node_ids)
        return [cls.from_row(r) if r else None for r in rows]

    @strawberry.field(description="The problem.")
    async def problem(self, info: Info) -> Problem | None:
        row = await info.context.loaders.problem_by_id.load(self.problem_id)
        return Problem.from_row(row) if row else None

    @strawberry.field(description="The run that reported it.")
    async def run(self, info: Info) -> EvaluationRun | None:
        row = await info.context.loaders.run_by_id.load(self.run_id)
        return EvaluationRun.from_row(row) if row else None


@strawberry.input(description="Which runs to list; every condition given must hold.")
class EvaluationRunFilter:
    status: list[RunStatus] | None = strawberry.field(default=None, description="Any of these statuses.")
    validator_hotkey: str | None = strawberry.field(default=None, description="Held by this validator.")
    agent_version_id: uuid.UUID | None = strawberry.field(default=None, description="Of this version.")
    suite_id: int | None = strawberry.field(default=None, description="On this suite.")
    claimed_after: datetime | None = strawberry.field(default=None, description="Claimed at or after (UTC).")
    claimed_before: datetime | None = strawberry.field(default=None, description="Claimed before (UTC).")

    def to_domain(self) -> RunFilter:
        return RunFilter(
            statuses=tuple(s.value for s in self.status) if self.status is not None else None,
            validator_hotkey=self.validator_hotkey,
            agent_version_id=self.agent_version_id,
            suite_id=self.suite_id,
            claimed_after=self.claimed_after,
            claimed_before=self.claimed_before,
        )


@strawberry.enum(description="What evaluation runs can be sorted by (ties broken by id).")
class EvaluationRunOrderField(Enum):
    CLAIMED_AT = strawberry.enum_value("claimed_at", description="Claim time.")
    LEASE_EXPIRES_AT = strawberry.enum_value("lease_expires_at", description="Lease expiry.")


@strawberry.input(description="Sort order of evaluation runs.")
class EvaluationRunOrder:
    field: EvaluationRunOrderField = strawberry.field(description="The sort key.")
    direction: OrderDirection = strawberry.field(description="ASC or DESC.")


DEFAULT_RUN_ORDER = EvaluationRunOrder(field=EvaluationRunOrderField.CLAIMED_AT, direction=OrderDirection.ASC)


async def runs_connection(
    info: Info,
    run_filter: RunFilter,
    order: EvaluationRunOrder,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[EvaluationRun]:
    db, loaders = info.context.runtime.db, info.context.loaders
    name = f"run.{order.field.value}.{order.direction.value.lower()}"
    page = await db.run(
        pages.runs_page,
        run_filter=run_filter,
        order_by=order.field.value,
        descending=order.direction == OrderDirection.DESC,
        window=make_window(name, first, after, last, before),
    )
    loaders.prime_runs(page.rows)

    async def total() -> int:
        return await db.run(pages.runs_count, run_filter=run_filter)

    return to_connection(page, name, EvaluationRun.from_row, total)


@strawberry.type
class EvaluationQuery:
    @strawberry.field(description="One run by its UUID or global id; null if there is none.")
    async def evaluation_run(self, info: Info, id: NodeRef) -> EvaluationRun | None:
        key = parse_node_id(str(id), "EvaluationRun", uuid_id)
        row = await info.context.loaders.run_by_id.load(key) if key else None
        return EvaluationRun.from_row(row) if row else None

    @strawberry.field(
        description="Evaluation runs, filtered and sorted; keyset-paged, so deep pages are cheap."
    )
    async def evaluation_runs(
        self,
        info: Info,
        filter: Annotated[EvaluationRunFilter | None, strawberry.argument(description="Which runs.")] = None,
        order_by: Annotated[
            EvaluationRunOrder | None,
            strawberry.argument(description="Sort order; by claim time, oldest first, by default."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[EvaluationRun]:
        run_filter = filter.to_domain() if filter else RunFilter()
        return await runs_connection(
            info, run_filter, order_by or DEFAULT_RUN_ORDER, first, after, last, before
        )

    @strawberry.field(description="Runs holding a lease now (CLAIMED or RUNNING), oldest claim first.")
    async def running_evaluations(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[EvaluationRun]:
        return await runs_connection(info, pages.ACTIVE_RUNS, DEFAULT_RUN_ORDER, first, after, last, before)

    @strawberry.field(description="Open work items (versions still needing successful runs), oldest first.")
    async def pending_evaluations(
        self,
        info: Info,
        suite_id: Annotated[int | None, strawberry.argument(description="Only this suite's.")] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[WorkItem]:
        db = info.context.runtime.db
        window = make_window("work.created_at", first, after, last, before)
        page = await db.run(pages.pending_page, suite_id=suite_id, window=window)

        async def total() -> int:
            return await db.run(pages.pending_count, suite_id=suite_id)

        return to_connection(page, "work.created_at", WorkItem.from_row, total)


# Mutations ---------------------------------------------------------------------------------------


@strawberry.input(description="What a validator reports about its machine.")
class MetricsInput:
    service_versions: JSON | None = strawberry.field(default=None, description="Versions of its services.")
    cpu_pct: float | None = strawberry.field(default=None, description="CPU use in percent.")
    ram_pct: float | None = strawberry.field(default=None, description="Memory use in percent.")
    disk_pct: float | None = strawberry.field(default=None, description="Disk use in percent.")
    docker_container_count: int | None = strawberry.field(default=None, description="Running containers.")

    def to_domain(self) -> evaluations.Metrics:
        return evaluations.Metrics(
            service_versions=self.service_versions,
            cpu_pct=self.cpu_pct,
            ram_pct=self.ram_pct,
            disk_pct=self.disk_pct,
            docker_container_count=self.docker_container_count,
        )


def _metrics(value: MetricsInput | None) -> evaluations.Metrics | None:
    return value.to_domain() if value else None


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
    _run: strawberry.Private[models.EvaluationRun]

    @strawberry.field(description="The new run.")
    def run(self) -> EvaluationRun:
        return EvaluationRun.from_row(self._run)

    @strawberry.field(description="When the lease ends without a heartbeat (UTC).")
    def lease_expires_at(self) -> datetime:
        return self._run.lease_expires_at


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
    _run: strawberry.Private[models.EvaluationRun]

    @strawberry.field(description="The run, now RUNNING.")
    def run(self) -> EvaluationRun:
        return EvaluationRun.from_row(self._run)

    @strawberry.field(description="The new end of the lease (UTC).")
    def lease_expires_at(self) -> datetime:
        return self._run.lease_expires_at


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

    def to_domain(self) -> evaluations.ProblemUpdate:
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
    _rows: strawberry.Private[list[models.ProblemResult]]

    @strawberry.field(description="The results as stored.")
    def results(self) -> list[ProblemResult]:
        return [ProblemResult.from_row(row) for row in self._rows]

    @strawberry.field(description="The run.")
    async def run(self, info: Info) -> EvaluationRun | None:
        row = await info.context.loaders.run_by_id.load(self._run_id)
        return EvaluationRun.from_row(row) if row else None


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
    _run: strawberry.Private[models.EvaluationRun]
    _work: strawberry.Private[models.WorkItem]

    @strawberry.field(description="The finished run.")
    def run(self) -> EvaluationRun:
        return EvaluationRun.from_row(self._run)

    @strawberry.field(description="The version's work item after this completion.")
    def work_item(self) -> WorkItem:
        return WorkItem.from_row(self._work)


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
        hotkey = await info.context.require(Role.VALIDATOR, write="claim")
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
            _run=got.claim.run,
        )

    @strawberry.mutation(
        description="Extend the lease of a run and report the machine's metrics." + SIGNED_VALIDATOR
    )
    async def heartbeat(self, info: Info, run_id: RunId, metrics: Metrics = None) -> HeartbeatResult:
        hotkey = await info.context.require(Role.VALIDATOR, write="heartbeat")
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
        return HeartbeatSuccess(_run=run)

    @strawberry.mutation(
        description=f"Record per-problem results (at most {evaluations.MAX_PROBLEMS_PER_UPDATE}, all or nothing)."
        + SIGNED_VALIDATOR
    )
    async def report_progress(
        self,
        info: Info,
        run_id: RunId,
        problems: Annotated[
            list[ProblemProgressInput], strawberry.argument(description="Results to record.")
        ],
    ) -> ReportProgressResult:
        hotkey = await info.context.require(Role.VALIDATOR, write="progress")
        rows = await info.context.runtime.db.run(
            evaluations.update_progress,
            run_id=run_id,
            validator_hotkey=hotkey,
            problems=[p.to_domain() for p in problems],
        )
        info.context.loaders.forget_run(run_id)
        info.context.held_runs.add(run_id)
        return ReportProgressSuccess(_run_id=run_id, _rows=rows)

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
        hotkey = await info.context.require(Role.VALIDATOR, write="complete")
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
            _run=done.run,
            _work=done.work_item,
        )

    @strawberry.mutation(
        description="A short-lived URL to upload one problem's logs of a run." + SIGNED_VALIDATOR
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
        hotkey = await info.context.require(Role.VALIDATOR, write="presign")
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
