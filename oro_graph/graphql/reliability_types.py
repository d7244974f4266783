"""Reliability in the graph: per-validator outcome and agreement figures, per-suite scoring
variance and per-version score intervals, all computed by services.reliability (SQL aggregates,
and the notebooks' bootstrap for intervals)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.dataloader import DataLoader

from oro_graph.db import Database
from oro_graph.services import reliability


@strawberry.input(description="A time range over runs' claim times; open ends when omitted.")
class TimeWindow:
    since: datetime | None = strawberry.field(
        default=None, description="Runs claimed at or after this (UTC)."
    )
    until: datetime | None = strawberry.field(default=None, description="Runs claimed before this (UTC).")

    def to_service(self) -> reliability.Window:
        return reliability.Window(since=self.since, until=self.until)


@strawberry.type(description="How many runs ended in one status.")
class StatusCount:
    status: str = strawberry.field(description="The run status.")
    count: int = strawberry.field(description="Runs in that status.")


@strawberry.type(
    description="A validator's record over a window: outcomes, lease health, durations and agreement "
    "with peers. Deltas follow ORO's validator-variance definition (successful included runs, versions "
    "scored by 2+ validators)."
)
class ValidatorReliability:
    runs: int = strawberry.field(description="Runs claimed in the window.")
    statuses: list[StatusCount] = strawberry.field(description="Runs per status.")
    success_rate: float | None = strawberry.field(description="SUCCESS / runs.")
    failed_rate: float | None = strawberry.field(description="FAILED / runs.")
    timed_out_rate: float | None = strawberry.field(description="TIMED_OUT / runs.")
    stale_rate: float | None = strawberry.field(description="STALE (lease lapsed) / runs.")
    duration_p50_seconds: float | None = strawberry.field(
        description="Median claim-to-completion time of finished runs."
    )
    duration_p95_seconds: float | None = strawberry.field(
        description="95th percentile (nearest rank) of the same."
    )
    mean_delta_vs_peers: float | None = strawberry.field(
        description="Mean of (its score - mean of other validators' scores) over shared versions."
    )
    delta_sd: float | None = strawberry.field(description="Sample standard deviation of those deltas.")
    versions_compared: int = strawberry.field(description="Versions it shares with at least one peer.")
    pairs_evaluated: int = strawberry.field(description="(version, peer) pairs behind the deltas.")
    last_activity_at: datetime | None = strawberry.field(
        description="Its latest claim, heartbeat or completion."
    )

    @classmethod
    def of(cls, r: reliability.Reliability) -> ValidatorReliability:
        return cls(
            runs=r.runs,
            statuses=[StatusCount(status=k, count=v) for k, v in sorted(r.counts.items())],
            success_rate=r.rate("SUCCESS"),
            failed_rate=r.rate("FAILED"),
            timed_out_rate=r.rate("TIMED_OUT"),
            stale_rate=r.stale_rate,
            duration_p50_seconds=r.duration_p50,
            duration_p95_seconds=r.duration_p95,
            mean_delta_vs_peers=r.mean_delta,
            delta_sd=r.delta_sd,
            versions_compared=r.versions_compared,
            pairs_evaluated=r.pairs_evaluated,
            last_activity_at=r.last_activity_at,
        )


@strawberry.type(description="Versions whose validator spread falls in one bucket.")
class SpreadBucket:
    label: str = strawberry.field(description='The bucket, e.g. "0.02-0.05" (left-closed).')
    versions: int = strawberry.field(description="Versions in it.")


@strawberry.type(description="One validator's deltas vs its peers within the suite.")
class ValidatorDelta:
    hotkey: str = strawberry.field(description="The validator.")
    mean_delta: float | None = strawberry.field(description="Mean delta vs peers.")
    delta_sd: float | None = strawberry.field(description="Its sample standard deviation.")
    versions_compared: int = strawberry.field(description="Shared versions.")
    pairs_evaluated: int = strawberry.field(description="(version, peer) pairs.")


@strawberry.type(
    description="ORO's validator-variance view of a suite: spreads per version and deltas per validator."
)
class ValidatorVariance:
    versions: int = strawberry.field(description="Versions scored by 2+ validators.")
    mean_spread: float | None = strawberry.field(description="Mean of max - min per version.")
    max_spread: float | None = strawberry.field(description="Largest spread.")
    buckets: list[SpreadBucket] = strawberry.field(description="Versions per spread bucket.")
    validators: list[ValidatorDelta] = strawberry.field(description="Validators, largest |mean delta| first.")

    @classmethod
    def of(cls, v: reliability.VarianceSummary) -> ValidatorVariance:
        return cls(
            versions=v.versions,
            mean_spread=v.mean_spread,
            max_spread=v.max_spread,
            buckets=[SpreadBucket(label=k, versions=n) for k, n in v.buckets.items()],
            validators=[
                ValidatorDelta(
                    hotkey=r.hotkey,
                    mean_delta=r.mean_delta,
                    delta_sd=r.delta_sd,
                    versions_compared=r.versions_compared,
                    pairs_evaluated=r.pairs_evaluated,
                )
                for r in v.deltas
            ],
        )


@strawberry.type(
    description="A paired problem bootstrap of a version's score (2000 draws, seed 0, missing scores as 0): "
    "the interval the notebooks compute."
)
class ScoreInterval:
    mean: float = strawberry.field(description="Mean over problems of the per-problem mean score.")
    lower: float = strawberry.field(description="Lower bound of the 95% percentile interval.")
    upper: float = strawberry.field(description="Upper bound.")
    problems: int = strawberry.field(description="Problems with a result.")
    draws: int = strawberry.field(description="Bootstrap replicates.")

    @classmethod
    def of(cls, s: reliability.ScoreInterval) -> ScoreInterval:
        return cls(mean=s.mean, lower=s.lower, upper=s.upper, problems=s.n_problems, draws=s.n_boot)


WindowKey = tuple[str, datetime | None, datetime | None]


def reliability_loader(db: Database) -> DataLoader[WindowKey, reliability.Reliability]:
    """(hotkey, since, until) -> figures; one SQL pass per distinct window."""

    async def load(keys: list[WindowKey]) -> list[reliability.Reliability]:
        groups: dict[tuple[datetime | None, datetime | None], list[str]] = {}
        for hotkey, since, until in keys:
            groups.setdefault((since, until), []).append(hotkey)
        found: dict[WindowKey, reliability.Reliability] = {}
        for (since, until), hotkeys in groups.items():
            stats = await db.run(reliability.validator_reliability, hotkeys, reliability.Window(since, until))
            found.update({(h, since, until): r for h, r in stats.items()})
        return [found[key] for key in keys]

    return DataLoader(load_fn=load, max_batch_size=1000)


def score_interval_loader(db: Database) -> DataLoader[uuid.UUID, reliability.ScoreInterval | None]:
    async def load(keys: list[uuid.UUID]) -> list[reliability.ScoreInterval | None]:
        found = await db.run(reliability.score_intervals_by_version_ids, keys)
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load, max_batch_size=1000)
