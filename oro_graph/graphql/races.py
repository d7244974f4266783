"""Races: the competition that decides who the validators pay, its qualifiers, draw, weights and pins.

Every rule (the embargo on results, the past as it stood, the weights, who may pin) is in
``services.races``; the types here hold a race row as it stood at the asked instant and reach
everything else through the request's loaders.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from oro_graph import models
from oro_graph.errors import ValidationFailed
from oro_graph.graphql import errors as e
from oro_graph.graphql.agents import AgentVersion, Miner, shown_version
from oro_graph.graphql.context import Info
from oro_graph.graphql.evaluations import EvaluationRun
from oro_graph.graphql.filters import enum_key
from oro_graph.graphql.loaders import Loaders
from oro_graph.graphql.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    PageArgumentError,
    make_window,
    to_connection,
)
from oro_graph.graphql.suites import NodeRef, Problem, Suite, load_by_uuid, parse_node_id, uuid_id
from oro_graph.models import Role
from oro_graph.services import events, races
from oro_graph.services.pages import Page

if TYPE_CHECKING:
    from oro_graph.graphql.validators import Validator

RaceStatus = strawberry.enum(
    models.RaceStatus,
    description="A race's stage: QUALIFYING_OPEN (the field can still change), RACE_RUNNING (the field is "
    "frozen, the drawn problems are being run), RACE_COMPLETE (scores, ranks and the winner are published) "
    "or CANCELLED (nobody qualified, or an operator cancelled it; nobody won).",
)
RaceQualificationType = strawberry.enum(
    models.QualificationType,
    name="RaceQualificationType",
    description="How a version entered a race: SCORED (its qualifying score reached the race's threshold) or "
    "INCUMBENT (the reigning winner, entered automatically).",
)
RaceChangeKind = strawberry.enum(
    events.RaceEvent,
    name="RaceChangeKind",
    description="What happened to a race. QUALIFIER_DID_NOT_FINISH events are announced when the race "
    "completes, since who did not finish is embargoed with the scores; TOP_CHANGED: the race's winner "
    "became the suite's top agent.",
)

AsOf = Annotated[
    datetime | None,
    strawberry.argument(
        description="Answer as the race stood at this instant (UTC), from its timestamps: its status then, "
        "no draw before qualifying closed, no results, winner or revealed secret before it ended. The field "
        "then is today's less the entries made since (a version that left the field during qualifying is "
        "not remembered). Omit for now."
    ),
]
SuiteArg = Annotated[
    int | None, strawberry.argument(description="Only this suite's races; all suites if omitted.")
]
FIELD_ORDER = "race.field"


@strawberry.type(
    description="A race on one suite: qualifying, then X-of-Y race runs by distinct validators on problems "
    "drawn from a committed secret, then scores, ranks, a winner and the weights the validators set."
)
class Race(relay.Node):
    id: relay.NodeID[str]
    race_id: uuid.UUID = strawberry.field(description="The race's id (the REST `race_id`).")
    race_number: int = strawberry.field(description="1 for the first race on this server, then 2, 3, ...")
    suite_id: int = strawberry.field(description="The suite it runs on (fixed when it opens).")
    status: RaceStatus = strawberry.field(description="Its stage (at `asOf` when one was given).")
    qualifying_threshold: float = strawberry.field(
        description="The qualifying score a challenger needed: the reigning winner's race score plus the "
        "challenge threshold, decaying with the time since that race (0 before a suite's first race)."
    )
    max_qualifiers: int = strawberry.field(description="The most versions that may race.")
    problem_count: int = strawberry.field(description="Problems drawn for the race.")
    required_successes: int = strawberry.field(
        description="Successful race runs (by distinct validators) a qualifier needs to finish: X of X-of-Y."
    )
    max_attempts: int = strawberry.field(description="Race runs a qualifier may use at most: Y of X-of-Y.")
    created_at: datetime = strawberry.field(description="When qualifying opened (UTC).")
    qualifying_closes_at: datetime = strawberry.field(description="When qualifying closes (UTC).")
    race_started_at: datetime | None = strawberry.field(
        description="When qualifying closed and race work was handed out (UTC)."
    )
    race_deadline_at: datetime | None = strawberry.field(
        description="When the race completes at the latest; unfinished qualifiers then did not finish (UTC)."
    )
    race_completed_at: datetime | None = strawberry.field(description="When it completed (UTC).")
    cancelled_at: datetime | None = strawberry.field(description="When it was cancelled (UTC).")
    seed_commitment: str = strawberry.field(
        description="SHA-256 (hex) of the race's secret, published when it opens: the revealed secret must "
        "hash to it."
    )
    revealed_secret: str | None = strawberry.field(
        description="The secret, revealed once the race is over (null before): with the qualifiers it "
        "reproduces `drawSeed` = sha256(`secret:` + the qualifiers' version ids sorted and comma-joined) and "
        "the draw (the problems of the suite whose sha256(`drawSeed:problemId`) is smallest, in that order)."
    )
    draw_seed: str | None = strawberry.field(
        description="The seed of the draw, fixed when qualifying closes (null before)."
    )
    drawn_problem_ids: list[uuid.UUID] | None = strawberry.field(
        description="The drawn problems in draw order; null before qualifying closes."
    )
    scored_count: int | None = strawberry.field(
        description="Qualifiers with a race score (finishers), once complete."
    )
    winner_score: float | None = strawberry.field(description="The winner's race score, once complete.")
    _race: strawberry.Private[models.Race]
    _as_of: strawberry.Private[datetime | None]

    @classmethod
    def from_row(cls, row: models.Race, as_of: datetime | None = None) -> Race:
        """A race as it stood at ``as_of`` (``services.races.as_it_stood``)."""
        race = races.as_it_stood(row, as_of)
        return cls(
            id=str(race.id),
            race_id=race.id,
            race_number=race.race_number,
            suite_id=race.suite_id,
            status=models.RaceStatus(race.status),
            qualifying_threshold=race.qualifying_threshold,
            max_qualifiers=race.max_qualifiers,
            problem_count=race.problem_count,
            required_successes=race.required_successes,
            max_attempts=race.max_attempts,
            created_at=race.created_at,
            qualifying_closes_at=race.qualifying_closes_at,
            race_started_at=race.race_started_at,
            race_deadline_at=race.race_deadline_at,
            race_completed_at=race.race_completed_at,
            cancelled_at=race.cancelled_at,
            seed_commitment=race.seed_commitment,
            revealed_secret=races.revealed_secret(race),
            draw_seed=race.draw_seed,
            drawn_problem_ids=[uuid.UUID(p) for p in race.problem_ids]
            if race.problem_ids is not None
            else None,
            scored_count=race.scored_count,
            winner_score=race.winner_score,
            _race=race,
            _as_of=as_of,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Race | None]:
        rows = await load_by_uuid(info.context.loaders.race_by_id, node_ids)
        return [cls.from_row(r) if r else None for r in rows]

    async def _qualifiers(self, info: Info) -> list[races.QualifierView]:
        views = await info.context.loaders.qualifiers_by_race_id.load(self.race_id)
        return races.qualifiers_as_of(views, self._as_of)

    @strawberry.field(description="The suite it runs on.")
    async def suite(self, info: Info) -> Suite:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        assert row is not None  # a foreign key
        return Suite.from_row(row)

    @strawberry.field(
        description="When it ends at the latest: its deadline once running, else qualifying close plus the "
        "race's length (ORO_RACE_MAX_HOURS); when it ended, once over."
    )
    def projected_completion_at(self, info: Info) -> datetime | None:
        return races.projected_completion(self._race, info.context.runtime.settings)

    @strawberry.field(description="The drawn problems in draw order; null before qualifying closes.")
    async def drawn_problems(self, info: Info) -> list[Problem] | None:
        if self.drawn_problem_ids is None:
            return None
        rows = await info.context.loaders.problem_by_id.load_many(self.drawn_problem_ids)
        return [Problem.from_row(r) for r in rows if r is not None]

    @strawberry.field(description="Versions in the field (while qualifying, the field as it stands now).")
    async def qualifier_count(self, info: Info) -> int:
        return len(await self._qualifiers(info))

    @strawberry.field(description="The winner (rank 1), once complete; null before and when nobody finished.")
    async def winner(self, info: Info) -> RaceQualifier | None:
        if self._race.winner_agent_version_id is None:
            return None
        for q in await self._qualifiers(info):
            if q.row.agent_version_id == self._race.winner_agent_version_id:
                return RaceQualifier.of(q, self._race, self._as_of)
        return None

    @strawberry.field(
        description="The field. Once complete: finishers by race rank, then the others by qualifying score; "
        "before: by qualifying score, best first (ties by version id)."
    )
    async def qualifiers(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[RaceQualifier]:
        views = await self._qualifiers(info)
        return _sliced(
            views,
            lambda q: (q.row.agent_version_id,),
            lambda q: RaceQualifier.of(q, self._race, self._as_of),
            first,
            after,
            last,
            before,
        )

    @strawberry.field(
        description="The weight vector the public validator sets from this race (empty until RACE_COMPLETE): "
        "K = floor(finishers / 2); K = 0 burns everything; otherwise ranks 2..K get K + 1 - rank u16 units, "
        "the burn slot (uid 0) 65535 and the winner round(t_top * (65535 + tail) / t_burn) "
        "(ORO_WEIGHT_TOP_SHARE, ORO_WEIGHT_BURN_SHARE). The burn slot first, then the winner, then "
        "ranks 2..K."
    )
    async def weights(self, info: Info) -> list[RaceWeight]:
        return [RaceWeight.of(w) for w in await _weights(info, self._race, await self._qualifiers(info))]

    @strawberry.field(
        description="How far validators scoring the same qualifier in this race lie apart (the REST "
        "validator-variance), and each validator's bias."
    )
    async def validator_variance(self, info: Info) -> RaceVariance:
        variance = await info.context.loaders.race_variance_by_race_id.load(self.race_id)
        assert variance is not None  # the race exists
        return RaceVariance.of(races.variance_as_published(variance, self._race))  # at asOf


async def _weights(
    info: Info, race: models.Race, qualifiers: list[races.QualifierView]
) -> list[races.Weight]:
    return races.weights_of(races.view_of(race, qualifiers), info.context.runtime.settings)


def _sliced(
    rows: Sequence[Any],
    key: Callable[[Any], tuple[Any, ...]],
    convert: Callable[[Any], Any],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[Any]:
    """A connection over a short list already in order (a race's field): cursors name rows by key."""
    window = make_window(FIELD_ORDER, first, after, last, before)
    keys = [key(row) for row in rows]

    def position(cursor: tuple[Any, ...]) -> int:
        if cursor not in keys:
            raise PageArgumentError("the cursor points at a qualifier that is no longer in the field")
        return keys.index(cursor)

    start = position(window.after) + 1 if window.after is not None else 0
    stop = position(window.before) if window.before is not None else len(rows)
    if window.backward:
        lo = max(start, stop - window.size)
        page = Page(
            list(rows[lo:stop]), keys[lo:stop], has_next=window.before is not None, has_previous=lo > start
        )
    else:
        hi = min(stop, start + window.size)
        page = Page(
            list(rows[start:hi]), keys[start:hi], has_next=hi < stop, has_previous=window.after is not None
        )

    async def total() -> int:
        return len(rows)

    return to_connection(page, FIELD_ORDER, convert, total)


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
    _race: strawberry.Private[models.Race]
    _as_of: strawberry.Private[datetime | None]

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
            _race=race,
            _as_of=as_of,
        )

    @strawberry.field(description="The race.")
    def race(self) -> Race:
        return Race.from_row(self._race, self._as_of)

    @strawberry.field(
        description="The racing version; null until its code is released (`agentVersionId`, `agentName` and "
        "`versionNumber` are public before)."
    )
    async def agent_version(self, info: Info) -> AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return shown_version(info, row)

    @strawberry.field(description="Its miner.")
    async def miner(self, info: Info) -> Miner:
        row = await info.context.loaders.miner_by_hotkey.load(self.miner_hotkey)
        assert row is not None  # a miner's row is written with its first submission
        return Miner.from_row(row)

    @strawberry.field(
        description="Its race runs, oldest claim first (empty before qualifying closes); their scores are "
        "null until the race is RACE_COMPLETE (at `asOf` when one was given)."
    )
    async def runs(self, info: Info) -> list[EvaluationRun]:
        key = (self._race.id, self.agent_version_id)
        rows = await info.context.loaders.race_runs_by_race_and_version.load(key)
        # At asOf, as the race stood then; now, as scores_disclosed decides (the lease holder sees its own).
        hidden = self._as_of is not None and not races.results_published(self._race)
        return [
            EvaluationRun.from_row(r, hidden=hidden)
            for r in rows
            if self._as_of is None or r.claimed_at <= self._as_of
        ]

    @strawberry.field(description="Its entry in the race's weight vector; null when it gets none.")
    async def weight(self, info: Info) -> RaceWeight | None:
        views = await info.context.loaders.qualifiers_by_race_id.load(self._race.id)
        for w in await _weights(info, self._race, races.qualifiers_as_of(views, self._as_of)):
            if w.agent_version_id == self.agent_version_id:
                return RaceWeight.of(w)
        return None


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
    async def validator(
        self, info: Info
    ) -> Annotated[Validator, strawberry.lazy("oro_graph.graphql.validators")] | None:
        from oro_graph.graphql.validators import Validator

        view = await info.context.loaders.validator_by_hotkey.load(self.validator_hotkey)
        return Validator.from_view(view) if view else None


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


@strawberry.type(
    description="The version a miner pinned to race; without a pin its best qualifying version races."
)
class RaceSelection:
    agent_version_id: uuid.UUID = strawberry.field(description="The pinned version.")
    updated_at: datetime = strawberry.field(description="When it was pinned (UTC).")
    locked: bool = strawberry.field(
        description="Whether a race is running: the pin cannot change (or be cleared) until it ends."
    )

    @classmethod
    def of(cls, view: races.SelectionView) -> RaceSelection:
        return cls(
            agent_version_id=view.row.agent_version_id, updated_at=view.row.updated_at, locked=view.locked
        )

    @strawberry.field(
        description="The pinned version; null until its code is released (except to its miner)."
    )
    async def agent_version(self, info: Info) -> AgentVersion | None:
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return shown_version(info, row)


@strawberry.type(
    description="The caller's race selection was cleared: its best qualifying version races again."
)
class UnpinRaceSelectionSuccess:
    miner_hotkey: str = strawberry.field(description="The caller.")


PinRaceSelectionResult = Annotated[
    RaceSelection | e.RaceLockedError | e.NotVersionOwnerError | e.ValidationError,
    strawberry.union(
        "PinRaceSelectionResult",
        description="The pin, or why not: RACE_LOCKED (a race is running), NOT_VERSION_OWNER (another "
        "miner's version, or none), VALIDATION_ERROR (the version cannot race: not ELIGIBLE, or eliminated).",
    ),
]
UnpinRaceSelectionResult = Annotated[
    UnpinRaceSelectionSuccess | e.NoSelectionError | e.RaceLockedError,
    strawberry.union(
        "UnpinRaceSelectionResult",
        description="Cleared, or why not: NO_SELECTION (nothing pinned), RACE_LOCKED (a race is running).",
    ),
]


@strawberry.type(
    description="Something happened to a race; `race` and `qualifier` are as they are when delivered."
)
class RaceChange:
    cursor: str = strawberry.field(description="Pass as `after` to resume after this change.")
    kind: RaceChangeKind = strawberry.field(description="What happened.")
    at: datetime = strawberry.field(description="When it happened (UTC).")
    race: Race = strawberry.field(
        description="The race, as it is now (results still embargoed while it runs)."
    )
    qualifier: RaceQualifier | None = strawberry.field(
        description="The qualifier concerned (entered, finished, did not finish, the winner of a completed "
        "race, the new top agent); null for the race's own changes and for a version no longer in the field."
    )


async def race_changes(info: Info, rows: Sequence[models.Event]) -> list[RaceChange]:
    """The log's race events as RaceChanges, reading races and qualifiers as they are now: fresh
    loaders per batch, since a subscription's context lives as long as the stream."""
    info.context.loaders = Loaders(info.context.runtime.db)
    loaders = info.context.loaders
    ids = [events.race_payload(row).race_id for row in rows]
    found = await loaders.race_by_id.load_many(ids)
    fields = await loaders.qualifiers_by_race_id.load_many(ids)
    out = []
    for row, race, field in zip(rows, found, fields, strict=True):
        assert race is not None  # races are never deleted
        qualifier = next((q for q in field if q.row.agent_version_id == row.agent_version_id), None)
        out.append(
            RaceChange(
                cursor=str(row.id),
                kind=events.RaceEvent(row.kind),
                at=row.created_at,
                race=Race.from_row(race),
                qualifier=RaceQualifier.of(qualifier, race, None) if qualifier else None,
            )
        )
    return out


@strawberry.type
class RaceQuery:
    @strawberry.field(
        description="The current race: the live one (qualifying or running), else the last one to end; with "
        "`asOf`, the race as it stood then. Null when there has been none."
    )
    async def current_race(self, info: Info, suite_id: SuiteArg = None, as_of: AsOf = None) -> Race | None:
        row = await info.context.runtime.db.run(races.race_at, suite_id=suite_id, as_of=as_of)
        return Race.from_row(row, as_of) if row else None

    @strawberry.field(description="Races, newest first (race number descending); keyset-paged.")
    async def races(
        self,
        info: Info,
        suite_id: SuiteArg = None,
        status: Annotated[
            list[RaceStatus] | None,
            strawberry.argument(description="Only races in one of these stages (at `asOf` when given)."),
        ] = None,
        as_of: AsOf = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Race]:
        db = info.context.runtime.db
        statuses = [enum_key(s) for s in status] if status is not None else None
        query: dict[str, Any] = {"suite_id": suite_id, "statuses": statuses, "as_of": as_of}
        window = make_window("race.number", first, after, last, before)
        page = await db.run(races.races_page, **query, window=window)
        info.context.loaders.race_by_id.prime_many({r.id: r for r in page.rows})

        async def total() -> int:
            return await db.run(races.races_count, **query)

        return to_connection(page, "race.number", lambda row: Race.from_row(row, as_of), total)

    @strawberry.field(description="One race by its UUID or global id; null if there is none.")
    async def race(self, info: Info, id: NodeRef) -> Race | None:
        key = parse_node_id(str(id), "Race", uuid_id)
        row = await info.context.loaders.race_by_id.load(key) if key else None
        return Race.from_row(row) if row else None


SIGNED_MINER = " Signed (X-Hotkey, X-Timestamp, X-Nonce, X-Signature) by a registered miner."


@strawberry.type
class RaceMutation:
    @strawberry.mutation(
        description="Pin the caller's version that races (the same as REST PUT /v1/miner/race-selection): it "
        "must be ELIGIBLE and not eliminated; refused while a race runs. A qualifying race's field follows "
        "at once." + SIGNED_MINER
    )
    async def pin_race_selection(
        self,
        info: Info,
        agent_version_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="One of the caller's versions: its UUID or global id."),
        ],
    ) -> PinRaceSelectionResult:
        hotkey = await info.context.require(Role.MINER)
        runtime = info.context.runtime
        key = parse_node_id(str(agent_version_id), "AgentVersion", uuid_id)
        if key is None:
            raise ValidationFailed(
                f"{agent_version_id!r} is neither an agent version's UUID nor its global id"
            )
        row = await runtime.db.run(
            races.pin_selection, hotkey=hotkey, agent_version_id=key, settings=runtime.settings
        )
        info.context.own_versions.add(row.agent_version_id)  # its owner sees it before its release
        return RaceSelection(agent_version_id=row.agent_version_id, updated_at=row.updated_at, locked=False)

    @strawberry.mutation(
        description="Clear the caller's pin (REST DELETE /v1/miner/race-selection); refused while a race "
        "runs." + SIGNED_MINER
    )
    async def unpin_race_selection(self, info: Info) -> UnpinRaceSelectionResult:
        hotkey = await info.context.require(Role.MINER)
        await info.context.runtime.db.run(races.unpin_selection, hotkey=hotkey)
        return UnpinRaceSelectionSuccess(miner_hotkey=hotkey)


@strawberry.type
class RaceSubscription:
    @strawberry.subscription(
        description="Every race's changes (opened, qualifier entered, qualifying closed, qualifier finished "
        "or did not, completed, cancelled, top changed), in log order after `after`; without a cursor, only "
        "changes from now on."
    )
    async def race_changes(
        self,
        info: Info,
        after: Annotated[
            str | None,
            strawberry.argument(description="Resume after this cursor (replays what was missed)."),
        ] = None,
    ) -> AsyncGenerator[RaceChange, None]:
        from oro_graph.graphql.subscriptions import follow_log

        db = info.context.runtime.db

        async def read(cursor: int) -> Sequence[models.Event]:
            return await db.run(events.race_events, after=cursor)

        async def shape(rows: Sequence[models.Event]) -> list[Any]:
            return await race_changes(info, rows)

        async for item in follow_log(info, read, shape, after, keepalive=False):
            yield item
