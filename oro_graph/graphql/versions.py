"""Agent versions, what their runs reported per problem, and who may see a version before its release."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import AgentVersionState, ReleaseState
from oro_graph.graphql.ids import AsOf, load_by_uuid
from oro_graph.graphql.pagination import After, Before, Connection, First, Last, edge_connection
from oro_graph.graphql.reliability_types import ScoreInterval
from oro_graph.services import agents


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

    @classmethod
    def of(cls, row: models.AgentVersion) -> AgentVersion:
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
        return agents.code_available_at(self, info.context.runtime.settings)

    @strawberry.field(description="Whether the code and logs are public now.")
    def release_state(self, info: Info) -> ReleaseState:
        released = agents.is_released(self, info.context.runtime.settings)
        return ReleaseState.RELEASED if released else ReleaseState.HIDDEN

    @strawberry.field(description="The agent this is a version of.")
    async def agent(self, info: Info) -> refs.Agent | None:
        row = await info.context.loaders.agent_by_id.load(self.agent_id)
        return refs.Agent.of(row) if row else None

    @strawberry.field(description="The suite it is evaluated on.")
    async def suite(self, info: Info) -> refs.Suite | None:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        return refs.Suite.of(row) if row else None

    @strawberry.field(description="Its work item: how many successful runs it needs and has.")
    async def work_item(self, info: Info) -> refs.WorkItem | None:
        row = await info.context.loaders.work_item_by_version_id.load(self.agent_version_id)
        return refs.WorkItem.of(row) if row else None

    @strawberry.field(description="Its evaluation runs, oldest claim first.")
    async def runs(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[refs.EvaluationRun]:
        loaders = info.context.loaders
        return await edge_connection(
            loaders.run_page_by_version_id,
            loaders.run_count_by_version_id,
            self.agent_version_id,
            "run.claimed_at",
            refs.EvaluationRun.of,
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
                problem_id=p.id,
                category=p.category,
                _problem=refs.Problem.of(p),
                _results=[refs.ProblemResult.of(row) for row in by_problem.get(p.id, [])],
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
    async def race_entries(self, info: Info) -> list[refs.RaceQualifier]:
        entries = await info.context.loaders.race_entries_by_version_id.load(self.agent_version_id)
        info.context.loaders.race_by_id.prime_many({entry.race.id: entry.race for entry in entries})
        return [refs.RaceQualifier.of(entry.qualifier, entry.race, None) for entry in entries]

    @strawberry.field(description="Its leaderboard entry at `asOf`, or null when it is not on the board.")
    async def leaderboard_entry(self, info: Info, as_of: AsOf = None) -> refs.LeaderboardEntry | None:
        row = await info.context.loaders.board_row_by_version_id.load((self.agent_version_id, as_of))
        return refs.LeaderboardEntry.of(row) if row else None


@strawberry.type(description="One problem of a version's suite with every run's result for it.")
class ProblemProgress:
    problem_id: uuid.UUID = strawberry.field(description="The problem's id.")
    category: str | None = strawberry.field(description="The problem's category.")
    _problem: strawberry.Private[refs.Problem]
    _results: strawberry.Private[list[refs.ProblemResult]]

    @strawberry.field(description="The problem.")
    def problem(self) -> refs.Problem:
        return self._problem

    @strawberry.field(
        description="Each run's result for this problem (runs that reported nothing are absent)."
    )
    def validator_results(self) -> list[refs.ProblemResult]:
        return self._results


async def agent_of_version(info: Info, version_id: uuid.UUID) -> refs.Agent | None:
    """The agent of a version, released or not: its name and owner are evaluation status, public
    like REST's status, pending and running paths (``services.agents.discloses``)."""
    loaders = info.context.loaders
    version = await loaders.agent_version_by_id.load(version_id)
    row = await loaders.agent_by_id.load(version.agent_id) if version else None
    return refs.Agent.of(row) if row else None


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
    return AgentVersion.of(row)
