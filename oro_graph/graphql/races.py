"""Races: the competition that decides who the validators pay, its qualifiers, draw, weights and pins.

Every rule (the embargo on results, the past as it stood, the weights, who may pin) is in
``services.races``; the types here hold a race row as it stood at the asked instant and reach
everything else through the request's loaders.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry import relay

from oro_graph import models
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.filters import enum_key
from oro_graph.graphql.ids import NodeRef, load_by_uuid, parse_node_id, uuid_id
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
from oro_graph.services import races
from oro_graph.services.pages import Page

RaceStatus = models.RaceStatus
strawberry.enum(
    RaceStatus,
    description="A race's stage: QUALIFYING_OPEN (the field can still change), RACE_RUNNING (the field is "
    "frozen, the drawn problems are being run), RACE_COMPLETE (scores, ranks and the winner are published) "
    "or CANCELLED (nobody qualified, or an operator cancelled it; nobody won).",
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
    _as_of: strawberry.Private[datetime | None]

    @classmethod
    def of(cls, row: models.Race, as_of: datetime | None = None) -> Race:
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
            _as_of=as_of,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Race | None]:
        rows = await load_by_uuid(info.context.loaders.race_by_id, node_ids)
        return [cls.of(r) if r else None for r in rows]

    async def _stood(self, info: Info) -> models.Race:
        return await race_as_it_stood(info, self.race_id, self._as_of)

    async def _qualifiers(self, info: Info) -> list[races.QualifierView]:
        views = await info.context.loaders.qualifiers_by_race_id.load(self.race_id)
        return races.qualifiers_as_of(views, self._as_of)

    @strawberry.field(description="The suite it runs on.")
    async def suite(self, info: Info) -> refs.Suite:
        row = await info.context.loaders.suite_by_id.load(self.suite_id)
        assert row is not None  # a foreign key
        return refs.Suite.of(row)

    @strawberry.field(
        description="When it ends at the latest: its deadline once running, else qualifying close plus the "
        "race's length (ORO_RACE_MAX_HOURS); when it ended, once over."
    )
    async def projected_completion_at(self, info: Info) -> datetime | None:
        return races.projected_completion(await self._stood(info), info.context.runtime.settings)

    @strawberry.field(description="The drawn problems in draw order; null before qualifying closes.")
    async def drawn_problems(self, info: Info) -> list[refs.Problem] | None:
        if self.drawn_problem_ids is None:
            return None
        rows = await info.context.loaders.problem_by_id.load_many(self.drawn_problem_ids)
        return [refs.Problem.of(r) for r in rows if r is not None]

    @strawberry.field(description="Versions in the field (while qualifying, the field as it stands now).")
    async def qualifier_count(self, info: Info) -> int:
        return len(await self._qualifiers(info))

    @strawberry.field(description="The winner (rank 1), once complete; null before and when nobody finished.")
    async def winner(self, info: Info) -> refs.RaceQualifier | None:
        race = await self._stood(info)
        if race.winner_agent_version_id is None:
            return None
        for q in await self._qualifiers(info):
            if q.row.agent_version_id == race.winner_agent_version_id:
                return refs.RaceQualifier.of(q, race, self._as_of)
        return None

    @strawberry.field(
        description="The field. Once complete: finishers by race rank, then the others by qualifying score; "
        "before: by qualifying score, best first (ties by version id)."
    )
    async def qualifiers(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[refs.RaceQualifier]:
        race, views = await self._stood(info), await self._qualifiers(info)
        return _sliced(
            views,
            lambda q: (q.row.agent_version_id,),
            lambda q: refs.RaceQualifier.of(q, race, self._as_of),
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
    async def weights(self, info: Info) -> list[refs.RaceWeight]:
        return [
            refs.RaceWeight.of(w)
            for w in await refs.race_weights(info, await self._stood(info), await self._qualifiers(info))
        ]

    @strawberry.field(
        description="How far validators scoring the same qualifier in this race lie apart (the REST "
        "validator-variance), and each validator's bias."
    )
    async def validator_variance(self, info: Info) -> refs.RaceVariance:
        variance = await info.context.loaders.race_variance_by_race_id.load(self.race_id)
        assert variance is not None  # the race exists
        return refs.RaceVariance.of(races.variance_as_published(variance, await self._stood(info)))  # at asOf


async def race_as_it_stood(info: Info, race_id: uuid.UUID, as_of: datetime | None) -> models.Race:
    """The race as it stood at ``as_of`` (``services.races.as_it_stood``), read through the request's
    loader: a ``Race`` or ``RaceQualifier`` holds its key, and whoever builds one primes the loader."""
    row = await info.context.loaders.race_by_id.load(race_id)
    if row is None:
        raise LookupError(f"race {race_id} vanished")  # races are never deleted
    return races.as_it_stood(row, as_of)


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


@strawberry.type
class RaceQuery:
    @strawberry.field(
        description="The current race: the live one (qualifying or running), else the last one to end; with "
        "`asOf`, the race as it stood then. Null when there has been none."
    )
    async def current_race(self, info: Info, suite_id: SuiteArg = None, as_of: AsOf = None) -> Race | None:
        row = await info.context.runtime.db.run(races.race_at, suite_id=suite_id, as_of=as_of)
        if row is None:
            return None
        info.context.loaders.race_by_id.prime(row.id, row)  # what its fields read the race from
        return Race.of(row, as_of)

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

        return to_connection(page, "race.number", lambda row: Race.of(row, as_of), total)

    @strawberry.field(description="One race by its UUID or global id; null if there is none.")
    async def race(self, info: Info, id: NodeRef) -> Race | None:
        key = parse_node_id(str(id), "Race", uuid_id)
        row = await info.context.loaders.race_by_id.load(key) if key else None
        return Race.of(row) if row else None
