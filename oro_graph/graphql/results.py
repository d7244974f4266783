"""Problem results: what one run reported for one problem (scores embargoed with the run's)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import ProblemStatus
from oro_graph.graphql.ids import load_by_uuid


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
            self._disclosed = run is None or await refs.scores_disclosed(info, run.id, run.race_id)
        return self._disclosed

    @classmethod
    def of(cls, row: models.ProblemResult, disclosed: bool | None = None) -> ProblemResult:
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
        return [cls.of(r) if r else None for r in rows]

    @strawberry.field(description="The problem.")
    async def problem(self, info: Info) -> refs.Problem | None:
        row = await info.context.loaders.problem_by_id.load(self.problem_id)
        return refs.Problem.of(row) if row else None

    @strawberry.field(description="The run that reported it.")
    async def run(self, info: Info) -> refs.EvaluationRun | None:
        row = await info.context.loaders.run_by_id.load(self.run_id)
        return refs.EvaluationRun.of(row) if row else None
