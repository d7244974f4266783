"""Races, their qualifiers and the top agent's history, as oro-sdk 7.0.2 reads them."""

from __future__ import annotations

import statistics
import uuid
from datetime import datetime

from oro_graph.models import Race
from oro_graph.services.leaderboard import TopReign
from oro_graph.services.races import (
    QualifierView,
    RaceHistory,
    RaceView,
    Variance,
    projected_completion,
    standing_of,
)
from oro_graph.settings import Settings
from rest_compat.schemas.base import Schema


class RacePublic(Schema):
    race_id: uuid.UUID
    suite_id: int
    status: str
    race_number: int | None = None
    qualifying_closes_at: datetime | None = None
    race_started_at: datetime | None = None
    race_completed_at: datetime | None = None
    winner_agent_version_id: uuid.UUID | None = None
    winner_score: float | None = None
    qualifying_threshold: float | None = None
    winner_agent_name: str | None = None
    qualifier_count: int = 0
    scored_count: int | None = None
    top50_mean: float | None = None
    top50_std: float | None = None
    created_at: datetime | None = None
    projected_completion_at: datetime | None = None
    # Beyond the client's model (it keeps unknown fields): the draw anyone can check once it is over.
    seed_commitment: str | None = None
    revealed_secret: str | None = None
    problem_ids: list[uuid.UUID] | None = None

    @classmethod
    def of(cls, view: RaceView, settings: Settings) -> RacePublic:
        race = view.race
        top = _top_half([q.row.race_score for q in view.qualifiers if q.row.race_score is not None])
        published = not view.embargoed
        return cls(
            race_id=race.id,
            suite_id=race.suite_id,
            status=race.status,
            race_number=race.race_number,
            qualifying_closes_at=race.qualifying_closes_at,
            race_started_at=race.race_started_at,
            race_completed_at=race.race_completed_at or race.cancelled_at,
            winner_agent_version_id=race.winner_agent_version_id,
            winner_score=race.winner_score,
            qualifying_threshold=race.qualifying_threshold,
            winner_agent_name=view.winner_agent_name,
            qualifier_count=len(view.qualifiers),
            scored_count=race.scored_count,
            top50_mean=statistics.fmean(top) if published and top else None,
            top50_std=statistics.pstdev(top) if published and len(top) > 1 else None,
            created_at=race.created_at,
            projected_completion_at=projected_completion(race, settings),
            seed_commitment=race.seed_commitment,
            revealed_secret=view.revealed_secret,
            problem_ids=[uuid.UUID(p) for p in race.problem_ids] if race.problem_ids else None,
        )


def _top_half(scores: list[float]) -> list[float]:
    ranked = sorted(scores, reverse=True)
    return ranked[: max(1, (len(ranked) + 1) // 2)] if ranked else []


class RaceQualifierPublic(Schema):
    agent_version_id: uuid.UUID
    qualification_type: str
    agent_name: str | None = None
    miner_hotkey: str | None = None
    version_number: int = 0
    qualifying_score: float | None = None
    race_score: float | None = None  # embargoed (null) until the race is complete
    eliminated_at: datetime | None = None
    race_rank: int | None = None
    is_discarded: bool = False
    weighted_score: float | None = None
    did_not_finish: bool = False

    @classmethod
    def of(cls, q: QualifierView, race: Race) -> RaceQualifierPublic:
        row, standing = q.row, standing_of(q.row, race)  # the embargo: nothing before completion
        return cls(
            agent_version_id=row.agent_version_id,
            qualification_type=row.qualification_type,
            agent_name=q.agent_name,
            miner_hotkey=row.miner_hotkey,
            version_number=q.version_number,
            qualifying_score=row.qualifying_score,
            race_score=standing.race_score,
            eliminated_at=row.eliminated_at,
            race_rank=standing.race_rank,
            did_not_finish=standing.did_not_finish,
        )


def qualifiers_of(view: RaceView) -> list[RaceQualifierPublic]:
    return [RaceQualifierPublic.of(q, view.race) for q in view.qualifiers]


class RaceDetailResponse(Schema):
    race: RacePublic
    qualifiers: list[RaceQualifierPublic]

    @classmethod
    def of(cls, view: RaceView, settings: Settings) -> RaceDetailResponse:
        return cls(race=RacePublic.of(view, settings), qualifiers=qualifiers_of(view))


class RaceCurrentResponse(Schema):
    race: RacePublic | None = None
    qualifiers: list[RaceQualifierPublic] = []

    @classmethod
    def of(cls, view: RaceView | None, settings: Settings) -> RaceCurrentResponse:
        if view is None:
            return cls()
        return cls(race=RacePublic.of(view, settings), qualifiers=qualifiers_of(view))


class RaceHistoryResponse(Schema):
    total: int
    limit: int
    offset: int
    races: list[RacePublic]

    @classmethod
    def of(cls, history: RaceHistory, settings: Settings) -> RaceHistoryResponse:
        return cls(
            total=history.total,
            limit=history.limit,
            offset=history.offset,
            races=[RacePublic.of(view, settings) for view in history.races],
        )


class SpreadBucket(Schema):
    threshold_pp: float
    count: int
    pct: float


class ValidatorVarianceEntry(Schema):
    validator_hotkey: str
    pairs_evaluated: int
    mean_delta_vs_peers: float
    std_dev: float
    mean_score: float
    validator_name: str | None = None


class RaceValidatorVarianceResponse(Schema):
    race_id: uuid.UUID
    n_pairs: int
    race_number: int | None = None
    mean_spread: float | None = None
    median_spread: float | None = None
    max_spread: float | None = None
    spread_buckets: list[SpreadBucket] = []
    validators: list[ValidatorVarianceEntry] = []

    @classmethod
    def of(cls, variance: Variance) -> RaceValidatorVarianceResponse:
        return cls(
            race_id=variance.race.id,
            race_number=variance.race.race_number,
            n_pairs=variance.n_pairs,
            mean_spread=variance.mean_spread,
            median_spread=variance.median_spread,
            max_spread=variance.max_spread,
            spread_buckets=[SpreadBucket(threshold_pp=t, count=n, pct=p) for t, n, p in variance.buckets],
            validators=[
                ValidatorVarianceEntry(
                    validator_hotkey=v.validator_hotkey,
                    validator_name=v.validator_name,
                    pairs_evaluated=v.pairs_evaluated,
                    mean_delta_vs_peers=v.mean_delta_vs_peers,
                    std_dev=v.std_dev,
                    mean_score=v.mean_score,
                )
                for v in variance.validators
            ],
        )


class MinerRaceSelectionRequest(Schema):
    agent_version_id: uuid.UUID


class TopHistoryEntry(Schema):
    agent_version_id: uuid.UUID
    agent_name: str
    miner_hotkey: str
    version_number: int
    final_score: float
    top_at: datetime
    is_current_top: bool
    was_top: bool
    suite_id: int
    replaced_at: datetime | None = None

    @classmethod
    def of(cls, reign: TopReign) -> TopHistoryEntry:
        return cls(
            agent_version_id=reign.reign.agent_version_id,
            agent_name=reign.agent.name,
            miner_hotkey=reign.agent.miner_hotkey,
            version_number=reign.version.version_number,
            final_score=reign.reign.score,
            top_at=reign.reign.top_at,
            is_current_top=reign.reign.replaced_at is None,
            was_top=True,
            suite_id=reign.reign.suite_id,
            replaced_at=reign.reign.replaced_at,
        )


class TopHistoryResponse(Schema):
    suite_id: int
    entries: list[TopHistoryEntry]


class TopMinerPayoutResponse(Schema):
    as_of: datetime
    miner_hotkey: str | None = None
    agent_name: str | None = None
    tao_per_day: float | None = None
    usd_per_day: float | None = None
    tao_price_usd: float | None = None
