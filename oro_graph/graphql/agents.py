"""Miners, their agents and agent versions, work items; submitting and artifact downloads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay
from strawberry.file_uploads import Upload

from oro_graph import models
from oro_graph.graphql import errors as e
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import AgentVersionState, ArtifactType, ReleaseState
from oro_graph.graphql.pagination import After, Before, Connection, First, Last, edge_connection
from oro_graph.graphql.reliability import ScoreInterval
from oro_graph.graphql.suites import NodeRef, Problem, Suite, load_by_uuid, parse_node_id, uuid_id
from oro_graph.models import Role
from oro_graph.services import agents, artifacts, credentials, validators

if TYPE_CHECKING:
    from oro_graph.graphql.evaluations import EvaluationRun, ProblemResult
    from oro_graph.graphql.leaderboard import LeaderboardEntry
    from oro_graph.graphql.races import RaceQualifier, RaceSelection

AsOf = Annotated[
    datetime | None,
    strawberry.argument(description="Answer as the board stood at this instant (UTC); omit for now."),
]


@strawberry.type(description="A hotkey that has submitted at least one agent.")
class Miner(relay.Node):
    id: relay.NodeID[str]
    hotkey: str = strawberry.field(description="The miner's SS58 hotkey.")
    created_at: datetime = strawberry.field(description="When it first submitted (UTC).")
    last_submitted_at: datetime | None = strawberry.field(description="Its latest submission (UTC).")

    @classmethod
    def from_row(cls, row: models.Miner) -> Miner:
        return cls(
            id=row.hotkey,
            hotkey=row.hotkey,
            created_at=row.created_at,
            last_submitted_at=row.last_submitted_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Miner | None]:
        rows = await info.context.loaders.miner_by_hotkey.load_many(list(node_ids))
        return [cls.from_row(r) if r else None for r in rows]

    @strawberry.field(description="The miner's agents, oldest first.")
    async def agents(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[Agent]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.agent_page_by_miner_hotkey,
            loaders.agent_count_by_miner_hotkey,
            self.hotkey,
            "agent.created_at",
            Agent.from_row,
            first,
            after,
            last,
            before,
        )

    @strawberry.field(
        description="The version it pinned to race (null without a pin: its best qualifying version races)."
    )
    async def race_selection(
        self, info: Info
    ) -> Annotated[RaceSelection, strawberry.lazy("oro_graph.graphql.races")] | None:
        from oro_graph.graphql.races import RaceSelection

        view = await info.context.loaders.race_selection_by_hotkey.load(self.hotkey)
        return RaceSelection.of(view) if view else None


@strawberry.type(description="A miner's named agent; each submission under the name is a new version.")
class Agent(relay.Node):
    id: relay.NodeID[str]
    agent_id: uuid.UUID = strawberry.field(description="The agent's id (the REST `agent_id`).")
    name: str = strawberry.field(description="Unique per miner (the REST `agent_name`).")
    miner_hotkey: str = strawberry.field(description="The owner's hotkey.")
    created_at: datetime = strawberry.field(description="When its first version was submitted (UTC).")

    @classmethod
    def from_row(cls, row: models.Agent) -> Agent:
        return cls(
            id=str(row.id),
            agent_id=row.id,
            name=row.name,
            miner_hotkey=row.miner_hotkey,
            created_at=row.created_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Agent | None]:
        rows = await load_by_uuid(info.context.loaders.agent_by_id, node_ids)
        return [cls.from_row(r) if r else None for r in rows]

    @strawberry.field(description="The miner that owns the agent.")
    async def miner(self, info: Info) -> Miner | None:
        row = await info.context.loaders.miner_by_hotkey.load(self.miner_hotkey)
        return Miner.from_row(row) if row else None

    @strawberry.field(description="The agent's released versions, first submitted first.")
    async def versions(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[AgentVersion]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.version_page_by_agent_id,
            loaders.version_count_by_agent_id,
            self.agent_id,
            "version.number",
            AgentVersion.from_row,
            first,
            after,
            last,
            before,
        )

    @strawberry.field(description="The most recent version, once released (null before).")
    async def latest_version(self, info: Info) -> AgentVersion | None:
        row = await info.context.loaders.latest_version_by_agent_id.load(self.agent_id)
        return shown_version(info, row)


@strawberry.type(
    description="One submitted file of an agent, evaluated by validators and ranked once eligible."
)
class AgentVersion(relay.Node):
    id: relay.NodeID[str]
    agent_version_id: uuid.UUID = strawberry.field(
        description="The version's id (the REST `agent_version_id`)."
    )
    agent_id: uuid.UUID = strawberry.field(description="The agent it belongs to.")
    version_number: int = strawberry.field(description="1 for the agent's first submission, then 2, 3, ...")
    suite_id: int = strawberry.field(description="The suite it is evaluated on.")
    state: AgentVersionState = strawberry.field(description="Where it is in its life.")
    submitted_at: datetime = strawberry.field(description="When it was submitted (UTC).")
    eligible_at: datetime | None = strawberry.field(description="When it became eligible (UTC).")
    discarded_at: datetime | None = strawberry.field(description="When it was discarded (UTC).")
    final_score: float | None = strawberry.field(
        description="Mean of the included runs' scores, once eligible."
    )
    code_sha256: str = strawberry.field(description="SHA-256 of the submitted file.")
    code_size: int = strawberry.field(description="Size of the submitted file in bytes.")
    _row: strawberry.Private[models.AgentVersion]

    @classmethod
    def from_row(cls, row: models.AgentVersion) -> AgentVersion:
        return cls(
            id=str(row.id),
            agent_version_id=row.id,
            agent_id=row.agent_id,
            version_number=row.version_number,
            suite_id=row.suite_id,
            state=models.AgentVersionState(row.state),
            submitted_at=row.submitted_at,
            eligible_at=row.eligible_at,
            discarded_at=row.discarded_at,
            final_score=row.final_score,
            code_sha256=row.code_sha256,
            code_size=row.code_size,
            _row=row,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[AgentVersion | None]:
        rows = await load_by_uuid(info.context.loaders.agent_version_by_id, node_ids)
        return [shown_version(info, r) for r in rows]

    @strawberry.field(
        description="Bootstrap interval of its score over the problems of its included runs (the notebooks' "
        "computation); null before any included run reported results."
    )
    async def score_interval(self, info: Info) -> ScoreInterval | None:
        found = await info.context.loaders.score_interval_by_version_id.load(self.agent_version_id)
        return ScoreInterval.of(found) if found is not None else None

    @strawberry.field(description="When the code becomes public: eligibility plus the release delay (UTC).")
    def code_available_at(self, info: Info) -> datetime | None:
        return agents.code_available_at(self._row, info.context.runtime.settings)

    @strawberry.field(description="Whether the code and logs are public now.")
    def release_state(self, info: Info) -> ReleaseState:
        released = agents.is_released(self._row, info.context.runtime.settings)
        return ReleaseState.RELEASED if released else ReleaseState.HIDDEN

    @strawberry.field(description="The agent this is a version of.")
    async def agent(self, info: Info) -> Agent | None:
        row = await info.context.loaders.agent_by_id.load(self.agent_id)
        return Agent.from_row(row) if row else None

    @strawberry.field(description="The suite it is evaluated on.")
    async def suite(self, info: Info) -> Suite | None:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        return Suite.from_row(row) if row else None

    @strawberry.field(description="Its work item: how many successful runs it needs and has.")
    async def work_item(self, info: Info) -> WorkItem | None:
        row = await info.context.loaders.work_item_by_version_id.load(self.agent_version_id)
        return WorkItem.from_row(row) if row else None

    @strawberry.field(description="Its evaluation runs, oldest claim first.")
    async def runs(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[Annotated[EvaluationRun, strawberry.lazy("oro_graph.graphql.evaluations")]]:
        from oro_graph.graphql.evaluations import EvaluationRun

        loaders = info.context.loaders
        return await edge_connection(
            loaders.run_page_by_version_id,
            loaders.run_count_by_version_id,
            self.agent_version_id,
            "run.claimed_at",
            EvaluationRun.from_row,
            first,
            after,
            last,
            before,
        )

    @strawberry.field(
        description="Per problem of its suite, what each run reported (the REST problems matrix)."
    )
    async def problem_matrix(self, info: Info) -> list[ProblemProgress]:
        loaders = info.context.loaders
        problems = await loaders.problems_by_suite_id.load(self.suite_id)
        runs = await loaders.runs_by_version_id.load(self.agent_version_id)
        results = await loaders.results_by_run_id.load_many([run.id for run in runs])
        by_problem: dict[uuid.UUID, list[models.ProblemResult]] = {}
        for rows in results:
            for row in rows:
                by_problem.setdefault(row.problem_id, []).append(row)
        return [
            ProblemProgress(
                problem_id=p.id, category=p.category, _problem=p, _results=by_problem.get(p.id, [])
            )
            for p in problems
        ]

    @strawberry.field(
        description="Its board position (1 = best) at `asOf`, or null when it is not on the board."
    )
    async def rank(self, info: Info, as_of: AsOf = None) -> int | None:
        row = await info.context.loaders.board_row_by_version_id.load((self.agent_version_id, as_of))
        return row.rank if row else None

    @strawberry.field(
        description="Its entries in races, newest race first (results embargoed while one runs)."
    )
    async def race_entries(
        self, info: Info
    ) -> list[Annotated[RaceQualifier, strawberry.lazy("oro_graph.graphql.races")]]:
        from oro_graph.graphql.races import RaceQualifier

        entries = await info.context.loaders.race_entries_by_version_id.load(self.agent_version_id)
        return [RaceQualifier.of(entry.qualifier, entry.race, None) for entry in entries]

    @strawberry.field(description="Its leaderboard entry at `asOf`, or null when it is not on the board.")
    async def leaderboard_entry(
        self, info: Info, as_of: AsOf = None
    ) -> Annotated[LeaderboardEntry, strawberry.lazy("oro_graph.graphql.leaderboard")] | None:
        from oro_graph.graphql.leaderboard import LeaderboardEntry

        row = await info.context.loaders.board_row_by_version_id.load((self.agent_version_id, as_of))
        return LeaderboardEntry.from_row(row) if row else None


@strawberry.type(description="One problem of a version's suite with every run's result for it.")
class ProblemProgress:
    problem_id: uuid.UUID = strawberry.field(description="The problem's id.")
    category: str | None = strawberry.field(description="The problem's category.")
    _problem: strawberry.Private[models.Problem]
    _results: strawberry.Private[list[models.ProblemResult]]

    @strawberry.field(description="The problem.")
    def problem(self) -> Problem:
        return Problem.from_row(self._problem)

    @strawberry.field(
        description="Each run's result for this problem (runs that reported nothing are absent)."
    )
    def validator_results(
        self,
    ) -> list[Annotated[ProblemResult, strawberry.lazy("oro_graph.graphql.evaluations")]]:
        from oro_graph.graphql.evaluations import ProblemResult

        return [ProblemResult.from_row(row) for row in self._results]


@strawberry.type(
    description="The evaluation job of one version: it closes after the required successful runs."
)
class WorkItem(relay.Node):
    id: relay.NodeID[str]
    work_item_id: uuid.UUID = strawberry.field(description="The work item's id.")
    agent_version_id: uuid.UUID = strawberry.field(description="The version it evaluates.")
    suite_id: int = strawberry.field(description="The suite it is evaluated on.")
    required_successes: int = strawberry.field(description="Successful runs needed to close it.")
    included_successes: int = strawberry.field(description="Successful runs counted so far.")
    active_runs: int = strawberry.field(description="Runs holding a lease now.")
    is_closed: bool = strawberry.field(description="Whether it has all the successes it needs.")
    created_at: datetime = strawberry.field(description="When it was queued (UTC).")
    closed_at: datetime | None = strawberry.field(description="When it closed (UTC).")
    remaining: int = strawberry.field(description="Successful runs still needed.")

    @classmethod
    def from_row(cls, row: models.WorkItem) -> WorkItem:
        return cls(
            id=str(row.id),
            work_item_id=row.id,
            agent_version_id=row.agent_version_id,
            suite_id=row.suite_id,
            required_successes=row.required_successes,
            included_successes=row.included_successes,
            active_runs=row.active_runs,
            is_closed=row.is_closed,
            created_at=row.created_at,
            closed_at=row.closed_at,
            remaining=validators.successes_remaining(row),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WorkItem | None]:
        rows = await load_by_uuid(info.context.loaders.work_item_by_id, node_ids)
        return [cls.from_row(r) if r else None for r in rows]

    @strawberry.field(description="The version it evaluates, once released (null before).")
    async def agent_version(self, info: Info) -> AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return shown_version(info, row)

    @strawberry.field(
        description="The agent whose version it evaluates: public before the version's release, unlike "
        "`agentVersion`."
    )
    async def agent(self, info: Info) -> Agent | None:
        return await agent_of_version(info, self.agent_version_id)


async def agent_of_version(info: Info, version_id: uuid.UUID) -> Agent | None:
    """The agent of a version, released or not: its name and owner are evaluation status, public
    like REST's status, pending and running paths (``services.agents.discloses``)."""
    loaders = info.context.loaders
    version = await loaders.agent_version_by_id.load(version_id)
    row = await loaders.agent_by_id.load(version.agent_id) if version else None
    return Agent.from_row(row) if row else None


def shown_version(info: Info, row: models.AgentVersion | None) -> AgentVersion | None:
    """The version as this caller may see it, or null (``services.agents.discloses``): before its
    release, only its owner's submission and the validator holding its run get it."""
    if row is None:
        return None
    context = info.context
    if not agents.discloses(
        row,
        context.runtime.settings,
        owner=row.id in context.own_versions,
        holds_run=row.id in context.held_versions,
    ):
        return None
    return AgentVersion.from_row(row)


@strawberry.type
class AgentQuery:
    @strawberry.field(
        description="The calling miner's inference credentials (never their secrets) and whether its "
        "versions are offered to validators or wait, and why. Signed (X-Hotkey, X-Timestamp, X-Nonce, X-Signature), "
        "miners only."
    )
    async def my_inference_auth(self, info: Info) -> MinerInferenceAuth:
        hotkey = await info.context.require(Role.MINER)
        runtime = info.context.runtime
        view = await runtime.db.run(credentials.miner_inference, hotkey=hotkey, settings=runtime.settings)
        return MinerInferenceAuth(
            readiness=view.readiness,
            detail=view.detail,
            default_provider=view.default_provider,
            credentials=[InferenceCredentialStatus.of(c) for c in view.credentials],
        )

    @strawberry.field(
        description="One agent version by its UUID or global id; null if there is none or it is not released "
        "yet (as REST's public record answers 404 ARTIFACT_NOT_RELEASED)."
    )
    async def agent_version(self, info: Info, id: NodeRef) -> AgentVersion | None:
        key = parse_node_id(str(id), "AgentVersion", uuid_id)
        row = await info.context.loaders.agent_version_by_id.load(key) if key else None
        return shown_version(info, row)

    @strawberry.field(description="One agent by its UUID or global id; null if there is none.")
    async def agent(self, info: Info, id: NodeRef) -> Agent | None:
        key = parse_node_id(str(id), "Agent", uuid_id)
        row = await info.context.loaders.agent_by_id.load(key) if key else None
        return Agent.from_row(row) if row else None

    @strawberry.field(description="A miner by hotkey; null if it never submitted.")
    async def miner(
        self, info: Info, hotkey: Annotated[str, strawberry.argument(description="The miner's SS58 hotkey.")]
    ) -> Miner | None:
        row = await info.context.loaders.miner_by_hotkey.load(hotkey)
        return Miner.from_row(row) if row else None


# Mutations ---------------------------------------------------------------------------------------


@strawberry.type(description="The answer to a submission: ACCEPTED creates a version, REJECTED says why not.")
class SubmitAgentSuccess:
    admission_status: str = strawberry.field(description="ACCEPTED or REJECTED.")
    admission_reason: str | None = strawberry.field(
        description="Why a submission was REJECTED: NOT_REGISTERED_ONCHAIN or BANNED."
    )
    hotkey: str = strawberry.field(description="The submitting hotkey.")
    agent_id: uuid.UUID | None = strawberry.field(description="The agent, when accepted.")
    agent_version_id: uuid.UUID | None = strawberry.field(description="The new version, when accepted.")
    next_allowed_at: datetime | None = strawberry.field(
        description="When this hotkey may submit again (UTC)."
    )
    message: str = strawberry.field(description="A sentence for people.")

    @strawberry.field(description="The new version, when accepted.")
    async def agent_version(self, info: Info) -> AgentVersion | None:
        if self.agent_version_id is None:
            return None
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return shown_version(info, row)


SubmitAgentResult = Annotated[
    SubmitAgentSuccess
    | e.CooldownActiveError
    | e.FileTooLargeError
    | e.InvalidAgentNameError
    | e.InvalidFileError
    | e.NoActiveSuiteError
    | e.RateLimitExceededError
    | e.ServiceUnavailableError,
    strawberry.union("SubmitAgentResult", description="A submission's admission or why it was refused."),
]


@strawberry.type(description="The caller's inference credential is stored (encrypted; it is never returned).")
class StoreInferenceCredentialSuccess:
    connected: bool = strawberry.field(description="Always true after a store.")
    updated_at: datetime | None = strawberry.field(description="When it was stored (UTC).")
    provider: str = strawberry.field(description="The provider it is for: chutes or openrouter.")
    is_default: bool = strawberry.field(description="Whether claims mint from this provider first.")


InferenceReadiness = strawberry.enum(
    credentials.Readiness,
    name="InferenceReadiness",
    description="Whether validators can get an inference token for a miner's versions, and if not, why. "
    "NO_CREDENTIAL, REFRESH_REFUSED and PROVIDER_NOT_CONFIGURED make its open versions wait (they are not "
    "offered to validators); PROVIDER_UNAVAILABLE means the last refresh failed on the provider's side and "
    "claims keep trying.",
)


@strawberry.type(description="One provider's credential as its miner sees it; the secret is never returned.")
class InferenceCredentialStatus:
    provider: str = strawberry.field(
        description="chutes (an OAuth refresh token) or openrouter (an API key)."
    )
    connected: bool = strawberry.field(description="Whether a credential is stored for this provider.")
    updated_at: datetime | None = strawberry.field(description="When it was last stored (UTC).")
    is_default: bool = strawberry.field(description="Whether claims mint from this provider first.")
    usable: bool = strawberry.field(
        description="Whether claims can mint from it: stored, not refused by the provider, and the "
        "provider is configured here."
    )
    last_refreshed_at: datetime | None = strawberry.field(
        description="The last successful token refresh (UTC)."
    )
    last_refresh_error_code: InferenceReadiness | None = strawberry.field(
        description="REFRESH_REFUSED or PROVIDER_UNAVAILABLE when the last refresh failed; null otherwise."
    )
    last_refresh_error: str | None = strawberry.field(description="Why the last refresh failed, for people.")
    last_refresh_error_at: datetime | None = strawberry.field(
        description="When the last refresh failed (UTC)."
    )

    @classmethod
    def of(cls, status: credentials.CredentialStatus) -> InferenceCredentialStatus:
        return cls(
            provider=status.provider,
            connected=status.connected,
            updated_at=status.updated_at,
            is_default=status.is_default,
            usable=status.usable,
            last_refreshed_at=status.last_refreshed_at,
            last_refresh_error_code=credentials.Readiness(status.error_code) if status.error_code else None,
            last_refresh_error=status.error_detail,
            last_refresh_error_at=status.error_at,
        )


@strawberry.type(
    description="The calling miner's inference credentials and whether its versions are offered."
)
class MinerInferenceAuth:
    readiness: InferenceReadiness = strawberry.field(
        description="READY, or why validators cannot get a token for this miner "
        "(its open versions then wait)."
    )
    detail: str = strawberry.field(description="The readiness in a sentence, saying what to do about it.")
    default_provider: str | None = strawberry.field(description="The provider claims mint from first.")
    credentials: list[InferenceCredentialStatus] = strawberry.field(
        description="One entry per known provider, connected or not."
    )


StoreInferenceCredentialResult = Annotated[
    StoreInferenceCredentialSuccess | e.ValidationError | e.RateLimitExceededError,
    strawberry.union(
        "StoreInferenceCredentialResult", description="The stored credential's status or why not."
    ),
]


@strawberry.type(description="A short-lived URL to download an artifact.")
class ArtifactDownloadSuccess:
    download_url: str = strawberry.field(description="GET this URL before it expires.")
    expires_at: datetime = strawberry.field(description="When the URL stops working (UTC).")


RequestArtifactDownloadResult = Annotated[
    ArtifactDownloadSuccess
    | e.AgentVersionNotFoundError
    | e.ArtifactNotFoundError
    | e.ArtifactNotReleasedError
    | e.EvalRunNotFoundError
    | e.InvalidArtifactTypeError
    | e.MissingParameterError,
    strawberry.union("RequestArtifactDownloadResult", description="A download URL or why there is none."),
]


@strawberry.type
class AgentMutation:
    @strawberry.mutation(
        description="Submit an agent file (multipart upload) as a new version of `agentName`. Signed by the "
        "miner (X-Hotkey, X-Timestamp, X-Nonce, X-Signature); the file must be UTF-8 Python named *.py "
        "under the size limit."
    )
    async def submit_agent(
        self,
        info: Info,
        agent_name: Annotated[
            str, strawberry.argument(description="Unique per miner; 1-64 of [A-Za-z0-9_.-].")
        ],
        file: Annotated[
            Upload,
            strawberry.argument(description="The agent's Python source file; its name must end in .py."),
        ],
    ) -> SubmitAgentResult:
        hotkey = await info.context.signer()
        runtime = info.context.runtime
        wait = await runtime.rate_limits.hit_submitter(hotkey) if runtime.rate_limits else None
        content = await file.read(runtime.settings.max_agent_bytes + 1)  # one byte over is enough to refuse
        admission = await agents.submit(
            runtime.db,
            runtime.parser,
            hotkey=hotkey,
            agent_name=agent_name,
            content=content,
            file_name=file.filename or "",
            settings=runtime.settings,
            storage=runtime.storage,
            over_limit=wait,
        )
        if admission.agent_version_id is not None:
            info.context.own_versions.add(admission.agent_version_id)  # the signed owner sees it
        return SubmitAgentSuccess(
            admission_status=admission.status,
            admission_reason=admission.reason,
            hotkey=admission.hotkey,
            agent_id=admission.agent_id,
            agent_version_id=admission.agent_version_id,
            next_allowed_at=admission.next_allowed_at,
            message=admission.message,
        )

    @strawberry.mutation(
        description="Store the calling miner's inference credential (encrypted at rest; it replaces the one "
        "stored for that provider and clears a refusal of it). The same store as the REST "
        "`/v1/miner/chutes-auth` and `/v1/miner/inference-auth/{provider}`. Signed, miners only."
    )
    async def store_inference_credential(
        self,
        info: Info,
        token: Annotated[
            str,
            strawberry.argument(
                description="A Chutes OAuth refresh token or an OpenRouter API key, 1-8192 characters."
            ),
        ],
        provider: Annotated[
            str, strawberry.argument(description="The inference provider: chutes or openrouter.")
        ] = "chutes",
    ) -> StoreInferenceCredentialResult:
        hotkey = await info.context.require(Role.MINER, write="credentials")
        runtime = info.context.runtime
        status = await runtime.db.run(
            credentials.store_credential,
            hotkey=hotkey,
            token=token,
            secret=runtime.settings.secret,
            provider=provider,
        )
        return StoreInferenceCredentialSuccess(
            connected=status.connected,
            updated_at=status.updated_at,
            provider=status.provider,
            is_default=status.is_default,
        )

    @strawberry.mutation(
        description="A short-lived download URL for a released version's code or its run logs. Public."
    )
    async def request_artifact_download(
        self,
        info: Info,
        artifact_type: Annotated[ArtifactType, strawberry.argument(description="What to download.")],
        agent_version_id: Annotated[uuid.UUID, strawberry.argument(description="The released version.")],
        eval_run_id: Annotated[
            uuid.UUID | None,
            strawberry.argument(description="Needed for EVAL_LOGS_BUNDLE and EVAL_PROBLEM_LOGS."),
        ] = None,
        problem_id: Annotated[
            uuid.UUID | None, strawberry.argument(description="Needed for EVAL_PROBLEM_LOGS.")
        ] = None,
    ) -> RequestArtifactDownloadResult:
        runtime = info.context.runtime
        url = await runtime.db.run(
            artifacts.download_url,
            artifact_type=artifact_type.value,
            agent_version_id=agent_version_id,
            eval_run_id=eval_run_id,
            problem_id=problem_id,
            settings=runtime.settings,
            storage=runtime.storage,
        )
        return ArtifactDownloadSuccess(download_url=url.url, expires_at=url.expires_at)
