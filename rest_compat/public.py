"""GET /v1/public/...: what anyone may read, and download URLs for released artifacts. No signature."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from oro_graph.errors import ErrorCode as E
from oro_graph.services import agents, artifacts, evaluations, leaderboard, races, suites, validators
from rest_compat import schemas
from rest_compat.deps import RuntimeDep
from rest_compat.errors import documented

MAX_OFFSET = 2**63 - 1  # the widest integer a database compares; above it is the query's mistake (422)

router = APIRouter(prefix="/v1/public", tags=["public"], responses=documented({429: [E.RATE_LIMIT_EXCEEDED]}))

VERSION_NOT_FOUND = documented({404: [E.AGENT_VERSION_NOT_FOUND]})


@router.get("/suites/current", responses=documented({404: [E.SUITE_NOT_FOUND]}))
async def get_current_suite(runtime: RuntimeDep) -> schemas.SuitePublic:
    """The active problem suite."""
    return schemas.SuitePublic.of(await runtime.db.run(suites.resolve_suite, None))


@router.get("/suites/{suite_id}/problems", responses=documented({404: [E.SUITE_NOT_FOUND]}))
async def get_suite_problems(
    suite_id: int,
    runtime: RuntimeDep,
    include_embeddings: Annotated[
        bool, Query(description="accepted for compatibility; none are kept")
    ] = False,
) -> schemas.SuiteWithProblemsResponse:
    """A suite and its problems, in suite order."""
    return schemas.SuiteWithProblemsResponse.of(await runtime.db.run(suites.suite_with_problems, suite_id))


# The clients declare 200 and 422 only on the leaderboard and the pending queue: an unknown suite_id (or
# no active suite) is a 422 on suite_id there, in FastAPI's shape, with the code SUITE_NOT_FOUND.
SUITE_ID_INVALID = documented({422: [E.SUITE_NOT_FOUND]})


@router.get("/leaderboard", responses=SUITE_ID_INVALID)
async def get_leaderboard(
    runtime: RuntimeDep,
    suite_id: int | None = None,
    score_type: Annotated[
        Literal["qualifying", "race"],
        Query(
            description="qualifying: final scores; race: the latest completed race's finishers by race rank"
        ),
    ] = "qualifying",
    limit: Annotated[int, Query(ge=1, le=leaderboard.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    q: Annotated[
        str | None, Query(max_length=100, description="part of an agent name or miner hotkey")
    ] = None,
) -> schemas.LeaderboardResponse:
    """Eligible versions of a suite (the active one by default), best final score first."""
    if score_type == "race":
        page = await runtime.db.run(races.race_board, suite_id=suite_id, limit=limit, offset=offset)
    else:
        page = await runtime.db.run(
            leaderboard.leaderboard_page, suite_id=suite_id, limit=limit, offset=offset, q=q
        )
    return schemas.LeaderboardResponse.of(page, runtime.settings)


@router.get("/top")
async def get_top_agent(runtime: RuntimeDep) -> schemas.TopAgentResponse:
    """The reigning top agent of the active suite (its fields are null while there is none, and
    ``suite_id`` is 0 while no suite is active)."""
    top = await runtime.db.run(leaderboard.current_top_agent, settings=runtime.settings)
    return schemas.TopAgentResponse.of(top)


@router.get(
    "/agent-versions/{agent_version_id}",
    # ARTIFACT_NOT_RELEASED is a 404 here (the client parses it there): an unreleased version is not public.
    responses=documented({404: [E.AGENT_VERSION_NOT_FOUND, E.ARTIFACT_NOT_RELEASED]}),
)
async def get_agent_version(agent_version_id: uuid.UUID, runtime: RuntimeDep) -> schemas.AgentVersionPublic:
    """A released agent version; before its code is released it is ARTIFACT_NOT_RELEASED."""
    view = await runtime.db.run(agents.released_version, agent_version_id, settings=runtime.settings)
    return schemas.AgentVersionPublic.of(view, runtime.settings)


@router.get("/agent-versions/{agent_version_id}/status", responses=VERSION_NOT_FOUND)
async def get_agent_version_status(
    agent_version_id: uuid.UUID, runtime: RuntimeDep
) -> schemas.AgentVersionStatus:
    """Where a version is in its evaluation: state, successes so far, release."""
    view = await runtime.db.run(agents.version_view, agent_version_id)
    return schemas.AgentVersionStatus.of(view, runtime.settings)


@router.get("/agent-versions/{agent_version_id}/runs", responses=VERSION_NOT_FOUND)
async def get_agent_version_runs(
    agent_version_id: uuid.UUID, runtime: RuntimeDep
) -> list[schemas.EvaluationRunPublic]:
    """Every evaluation run of a version, oldest claim first; a race run's scores are null until its race
    is complete."""
    found = await runtime.db.run(evaluations.version_runs, agent_version_id)
    return [schemas.EvaluationRunPublic.of(run, embargoed=run.id in found.embargoed) for run in found.runs]


@router.get("/agent-versions/{agent_version_id}/problems", responses=VERSION_NOT_FOUND)
async def get_agent_version_problems(
    agent_version_id: uuid.UUID,
    runtime: RuntimeDep,
    phase: Annotated[
        str | None, Query(description="accepted for compatibility; there are no race phases")
    ] = None,
    race_id: Annotated[
        uuid.UUID | None, Query(description="accepted for compatibility; there are no races")
    ] = None,
) -> schemas.AgentVersionProblemsResponse:
    """Per problem of the version's suite, each validator's result for it."""
    return schemas.AgentVersionProblemsResponse.of(
        await runtime.db.run(evaluations.problem_matrix, agent_version_id)
    )


@router.get("/evaluation-runs/{eval_run_id}", responses=documented({404: [E.EVAL_RUN_NOT_FOUND]}))
async def get_evaluation_run(eval_run_id: uuid.UUID, runtime: RuntimeDep) -> schemas.EvaluationRunDetail:
    """One evaluation run with the agent it evaluated."""
    return schemas.EvaluationRunDetail.of(await runtime.db.run(evaluations.run_view, eval_run_id))


@router.get("/validators")
async def get_validators(runtime: RuntimeDep) -> list[schemas.ValidatorPublic]:
    """Every validator, whether it is evaluating now, and what its machine last reported."""
    return [schemas.ValidatorPublic.of(view) for view in await runtime.db.run(validators.list_validators)]


@router.get("/evaluations/running")
async def get_running_evaluations(runtime: RuntimeDep) -> list[schemas.RunningEvaluation]:
    """Runs holding a lease now, with the share of problems finished."""
    return [
        schemas.RunningEvaluation.of(view) for view in await runtime.db.run(validators.running_evaluations)
    ]


@router.get("/evaluations/pending", responses=SUITE_ID_INVALID)
async def get_pending_evaluations(
    runtime: RuntimeDep,
    suite_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> schemas.PendingEvaluationsResponse:
    """Versions still needing successful runs, oldest first, with totals over all of them."""
    page = await runtime.db.run(validators.pending_evaluations, suite_id=suite_id, limit=limit, offset=offset)
    return schemas.PendingEvaluationsResponse.of(page)


@router.post(
    "/artifacts/download-url",
    responses=documented(
        {
            400: [E.MISSING_PARAMETER, E.INVALID_ARTIFACT_TYPE],
            # ARTIFACT_NOT_RELEASED is a 404 here: the client's 403 model is RACE_IN_FLIGHT only.
            404: [
                E.AGENT_VERSION_NOT_FOUND,
                E.ARTIFACT_NOT_RELEASED,
                E.ARTIFACT_NOT_FOUND,
                E.EVAL_RUN_NOT_FOUND,
            ],
        }
    ),
)
async def get_artifact_download_url(
    body: schemas.ArtifactDownloadRequest, runtime: RuntimeDep
) -> schemas.ArtifactDownloadResponse:
    """A short-lived URL for a released version's code or its evaluation logs."""
    url = await runtime.db.run(
        artifacts.download_url,
        artifact_type=body.artifact_type,
        agent_version_id=body.agent_version_id,
        eval_run_id=body.eval_run_id,
        problem_id=body.problem_id,
        settings=runtime.settings,
        storage=runtime.storage,
    )
    return schemas.ArtifactDownloadResponse.of(url)
