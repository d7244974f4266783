"""Races and the emissions story: /v1/public/races/..., top history, the top miner's payout, the list
of suites, and a miner's race selection (/v1/miner/race-selection, signed)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from oro_graph.errors import ErrorCode as E
from oro_graph.services import leaderboard, races, suites
from rest_compat import schemas
from rest_compat.deps import MinerHotkey, RuntimeDep
from rest_compat.errors import documented

router = APIRouter(prefix="/v1/public", tags=["public"], responses=documented({429: [E.RATE_LIMIT_EXCEEDED]}))
miner_router = APIRouter(
    prefix="/v1/miner",
    tags=["miner"],
    responses=documented({401: [E.UNAUTHENTICATED], 429: [E.RATE_LIMIT_EXCEEDED]}),
)

RACE_NOT_FOUND = documented({404: [E.RACE_NOT_FOUND]})


@router.get("/races/current")
async def get_current_race(runtime: RuntimeDep) -> schemas.RaceCurrentResponse:
    """The race in qualifying or running; when none is, the last one. Race scores are embargoed
    (null) until a race is complete."""
    return schemas.RaceCurrentResponse.of(await runtime.db.run(races.current_race), runtime.settings)


@router.get("/races/history")
async def get_race_history(
    runtime: RuntimeDep,
    suite_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> schemas.RaceHistoryResponse:
    """Completed and cancelled races, newest first."""
    history = await runtime.db.run(races.race_history, suite_id=suite_id, limit=limit, offset=offset)
    return schemas.RaceHistoryResponse.of(history, runtime.settings)


@router.get("/races/{race_id}", responses=RACE_NOT_FOUND)
async def get_race_detail(race_id: uuid.UUID, runtime: RuntimeDep) -> schemas.RaceDetailResponse:
    """A race and its qualifiers (race scores and ranks once it is complete)."""
    return schemas.RaceDetailResponse.of(await runtime.db.run(races.race_view, race_id), runtime.settings)


@router.get("/races/{race_id}/validator-variance", responses=RACE_NOT_FOUND)
async def get_race_validator_variance(
    race_id: uuid.UUID, runtime: RuntimeDep
) -> schemas.RaceValidatorVarianceResponse:
    """How far validators scoring the same qualifier lie apart, and each validator's bias."""
    return schemas.RaceValidatorVarianceResponse.of(await runtime.db.run(races.validator_variance, race_id))


@router.get("/top/history", responses=documented({422: [E.SUITE_NOT_FOUND]}))
async def get_top_history(runtime: RuntimeDep, suite_id: int | None = None) -> schemas.TopHistoryResponse:
    """Every reign of the suite's top agents (the active suite by default), newest first."""
    found = await runtime.db.run(leaderboard.top_reigns, suite_id=suite_id)
    return schemas.TopHistoryResponse(
        suite_id=found.suite.id or 0, entries=[schemas.TopHistoryEntry.of(r) for r in found.reigns]
    )


@router.get("/top-miner-payout")
async def get_top_miner_payout(runtime: RuntimeDep) -> schemas.TopMinerPayoutResponse:
    """The top miner's estimated TAO a day (ORO_TAO_PER_DAY_TOP) and USD (with ORO_TAO_PRICE_USD);
    null where not configured, never invented."""
    payout = await runtime.db.run(races.top_miner_payout, settings=runtime.settings)
    return schemas.TopMinerPayoutResponse(
        as_of=payout.as_of,
        miner_hotkey=payout.miner_hotkey,
        agent_name=payout.agent_name,
        tao_per_day=payout.tao_per_day,
        usd_per_day=payout.usd_per_day,
        tao_price_usd=payout.tao_price_usd,
    )


@router.get("/suites")
async def list_suites(runtime: RuntimeDep) -> list[schemas.SuitePublic]:
    """Every imported suite."""
    return [schemas.SuitePublic.of(s) for s in await runtime.db.run(suites.list_suites)]


@miner_router.put(
    "/race-selection",
    status_code=204,
    responses=documented(
        {400: [E.VALIDATION_ERROR], 403: [E.NOT_VERSION_OWNER, E.FORBIDDEN], 409: [E.RACE_LOCKED]}
    ),
)
async def set_race_selection(
    body: schemas.MinerRaceSelectionRequest, hotkey: MinerHotkey, runtime: RuntimeDep
) -> Response:
    """Pin the version that races for the caller (refused once qualifying has closed)."""
    await runtime.db.run(
        races.pin_selection, hotkey=hotkey, agent_version_id=body.agent_version_id, settings=runtime.settings
    )
    return Response(status_code=204)


@miner_router.delete(
    "/race-selection",
    status_code=204,
    responses=documented({403: [E.FORBIDDEN], 404: [E.NO_SELECTION], 409: [E.RACE_LOCKED]}),
)
async def clear_race_selection(hotkey: MinerHotkey, runtime: RuntimeDep) -> Response:
    """Unpin: the caller's best qualifying version races again."""
    await runtime.db.run(races.unpin_selection, hotkey=hotkey)
    return Response(status_code=204)
