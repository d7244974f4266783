"""A race's field and what it decided: qualifiers (results embargoed until the race completes), the
weight vector the validators set, and how far the validators scoring it lie apart."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.services import races

RaceQualificationType = models.QualificationType
strawberry.enum(
    RaceQualificationType,
    name="RaceQualificationType",
    description="How a version entered a race: SCORED (its qualifying score reached the race's threshold) or "
    "INCUMBENT (the reigning winner, entered automatically).",
)


@strawberry.type(
    description="A version in a race's field. Its results (race score, rank, whether it finished) are "
    "embargoed until the race completes: null, null and false before."
)
class RaceQualifier:
    agent_version_id: uuid.UUID = strawberry.field(description="The racing version.")
    miner_hotkey: str = strawberry.field(description="Its miner's hotkey (one entry per miner).")
    agent_name: str = strawberry.field(description="Its agent's name.")
    version_number: int = strawberry.field(description="Its version number.")
    qualification_type: RaceQualificationType = strawberry.field(description="How it entered.")
    qualifying_score: float | None = strawberry.field(
        description="Its final score on the suite when it entered (or when qualifying closed)."
    )
    entered_at: datetime = strawberry.field(description="When it entered the field (UTC).")
    race_score: float | None = strawberry.field(
        description="Mean score of its included race runs; null while the race runs (embargo) and for a "
        "qualifier that did not finish."
    )
    race_rank: int | None = strawberry.field(
        description="1 = winner: race score descending, ties by version id; null before completion and for "
        "non-finishers."
    )
    finished_at: datetime | None = strawberry.field(
        description="When it finished or was found not to finish (UTC); null until the race completes."
    )
    did_not_finish: bool = strawberry.field(
        description="No race score by the end (out of attempts, or the deadline passed); false until the "
        "race completes."
    )
    eliminated_at: datetime | None = strawberry.field(
        description="When the version was barred from future races (e.g. its miner was banned)."
    )
    _race_id: strawberry.Private[uuid.UUID]
    _as_of: strawberry.Private[datetime | None]
    _runs_hidden: strawberry.Private[bool]  # at asOf, its runs' scores as the race stood then

    @classmethod
    def of(cls, view: races.QualifierView, race: models.Race, as_of: datetime | None) -> RaceQualifier:
        row, standing = view.row, races.standing_of(view.row, race)
        return cls(
            agent_version_id=row.agent_version_id,
            miner_hotkey=row.miner_hotkey,
            agent_name=view.agent_name,
            version_number=view.version_number,
            qualification_type=models.QualificationType(row.qualification_type),
            qualifying_score=row.qualifying_score,
            entered_at=row.entered_at,
            race_score=standing.race_score,
            race_rank=standing.race_rank,
            finished_at=standing.finished_at,
            did_not_finish=standing.did_not_finish,
            eliminated_at=row.eliminated_at,
            _race_id=race.id,
            _as_of=as_of,
            _runs_hidden=as_of is not None and not races.results_published(race),
        )

    @strawberry.field(description="The race.")
    async def race(self, info: Info) -> refs.Race:
        row = await info.context.loaders.race_by_id.load(self._race_id)
        if row is None:
            raise LookupError(f"race {self._race_id} vanished")  # races are never deleted
        return refs.Race.of(row, self._as_of)

    @strawberry.field(
        description="The racing version; null until its code is released (`agentVersionId`, `agentName` and "
        "`versionNumber` are public before)."
    )
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return refs.shown_version(info, row)

    @strawberry.field(description="Its miner.")
    async def miner(self, info: Info) -> refs.Miner:
        row = await info.context.loaders.miner_by_hotkey.load(self.miner_hotkey)
        assert row is not None  # a miner's row is written with its first submission
        return refs.Miner.of(row)

    @strawberry.field(
        description="Its race runs, oldest claim first (empty before qualifying closes); their scores are "
        "null until the race is RACE_COMPLETE (at `asOf` when one was given)."
    )
    async def runs(self, info: Info) -> list[refs.EvaluationRun]:
        key = (self._race_id, self.agent_version_id)
        rows = await info.context.loaders.race_runs_by_race_and_version.load(key)
        # At asOf, as the race stood then; now, as scores_disclosed decides (the lease holder sees its own).
        return [
            refs.EvaluationRun.of(r, hidden=self._runs_hidden)
            for r in rows
            if self._as_of is None or r.claimed_at <= self._as_of
        ]

    @strawberry.field(description="Its entry in the race's weight vector; null when it gets none.")
    async def weight(self, info: Info) -> RaceWeight | None:
        race = await refs.race_as_it_stood(info, self._race_id, self._as_of)
        views = await info.context.loaders.qualifiers_by_race_id.load(self._race_id)
        for w in await race_weights(info, race, races.qualifiers_as_of(views, self._as_of)):
            if w.agent_version_id == self.agent_version_id:
                return RaceWeight.of(w)
        return None


async def race_weights(
    info: Info, race: models.Race, qualifiers: list[races.QualifierView]
) -> list[races.Weight]:
    """The race's weight vector (``services.races.weights_of``) over its field as given."""
    return races.weights_of(races.view_of(race, qualifiers), info.context.runtime.settings)


@strawberry.type(description="One entry of a race's weight vector, as the public validator sets it.")
class RaceWeight:
    miner_hotkey: str | None = strawberry.field(description="The miner paid; null for the burn slot (uid 0).")
    agent_version_id: uuid.UUID | None = strawberry.field(
        description="Its racing version; null for the burn slot."
    )
    race_rank: int | None = strawberry.field(description="Its race rank; null for the burn slot.")
    units: int = strawberry.field(description="The u16 units set on chain.")
    share: float = strawberry.field(
        description="units / the sum of the vector's units, 0 to 1: what the chain's normalisation gives it."
    )

    @classmethod
    def of(cls, weight: races.Weight) -> RaceWeight:
        return cls(
            miner_hotkey=weight.miner_hotkey,
            agent_version_id=weight.agent_version_id,
            race_rank=weight.race_rank,
            units=weight.units,
            share=weight.share,
        )


@strawberry.type(
    description="Pairs of a race's runs on one qualifier whose scores lie more than a threshold apart."
)
class RaceSpreadBucket:
    threshold_points: float = strawberry.field(description="The threshold in score points (0-100 scale).")
    pairs_above: int = strawberry.field(description="Pairs whose spread is above it.")
    share: float = strawberry.field(description="pairsAbove / pairCount, 0 to 1 (0 without pairs).")


@strawberry.type(
    description="One validator's bias in a race: how its scores compare with its peers' on the same "
    "qualifiers."
)
class RaceValidatorBias:
    validator_hotkey: str = strawberry.field(description="The validator's hotkey.")
    pairs_evaluated: int = strawberry.field(
        description="Pairs of its run and a peer's run on the same qualifier."
    )
    mean_delta_vs_peers: float = strawberry.field(
        description="Mean of (its score - the peer's) in score points; positive: it scores higher."
    )
    std_dev: float = strawberry.field(description="Standard deviation of those deltas, in points.")
    mean_score: float = strawberry.field(description="Mean of its successful race runs' scores, 0 to 1.")

    @strawberry.field(description="The validator; null if it left the registry.")
    async def validator(self, info: Info) -> refs.Validator | None:
        view = await info.context.loaders.validator_by_hotkey.load(self.validator_hotkey)
        return refs.Validator.of(view) if view else None


@strawberry.type(
    description="How far validators lie apart on a race: every pair of successful race runs on the same "
    "qualifier by two validators, its spread |a - b| in score points. Empty (no pairs, no validators) until "
    "the race is RACE_COMPLETE: the spreads and biases would give its runs' embargoed scores away."
)
class RaceVariance:
    pair_count: int = strawberry.field(description="Pairs compared.")
    mean_spread: float | None = strawberry.field(description="Mean spread in points; null without pairs.")
    median_spread: float | None = strawberry.field(description="Median spread in points; null without pairs.")
    max_spread: float | None = strawberry.field(description="Largest spread in points; null without pairs.")
    buckets: list[RaceSpreadBucket] = strawberry.field(description="Pairs above 5, 10 and 20 points.")
    validators: list[RaceValidatorBias] = strawberry.field(description="Per validator, by hotkey.")

    @classmethod
    def of(cls, v: races.Variance) -> RaceVariance:
        return cls(
            pair_count=v.n_pairs,
            mean_spread=v.mean_spread,
            median_spread=v.median_spread,
            max_spread=v.max_spread,
            buckets=[
                RaceSpreadBucket(threshold_points=t, pairs_above=n, share=p / 100) for t, n, p in v.buckets
            ],
            validators=[
                RaceValidatorBias(
                    validator_hotkey=b.validator_hotkey,
                    pairs_evaluated=b.pairs_evaluated,
                    mean_delta_vs_peers=b.mean_delta_vs_peers,
                    std_dev=b.std_dev,
                    mean_score=b.mean_score,
                )
                for b in v.validators
            ],
        )
