"""The running totals (models.totals) against the rows they sum, on random worlds (both databases):
problem statistics from the totals equal the raw aggregates, and the category means the raw means,
after inserts, rescoring, status changes, inclusion flips, race moves and deletes, by any writer."""

from __future__ import annotations

import math
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlmodel import Session, col

from oro_graph.models import (
    EvaluationRun,
    Problem,
    ProblemCell,
    ProblemResult,
    ProblemScore,
    ProblemScoreBucket,
    ProblemTotal,
    Race,
    VersionCategory,
)
from oro_graph.models import totals as cells
from oro_graph.runtime import Runtime
from oro_graph.services import problemstats, suites
from tests.factories import make_world
from tests.graphql.test_problemstats import BASE, _seed

SCOPES = [problemstats.Scope(), problemstats.Scope(included_only=True)]
FIGURES = ("attempts", "passes", "timeouts", "versions", "mean_score", "median_score", "mean_duration")


def _close(a: float | None, b: float | None, tolerance: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def _assert_same_stats(session: Session, suite_id: int) -> None:
    for scope in SCOPES:
        fast = problemstats.totals_stats(session, suite_id, scope)
        raw = problemstats.raw_stats(session, suite_id, scope)
        assert set(fast) == set(raw), scope
        for key, want in raw.items():
            got = fast[key]
            for name in FIGURES:
                assert _close(getattr(got, name), getattr(want, name)), (scope, name, got, want)
            # correlation near a zero variance is where summation order shows: 1e-6
            assert _close(got.discrimination, want.discrimination, 1e-6), (scope, got, want)


def _raw_category_means(session: Session) -> dict[tuple[Any, str], float]:
    """The leaderboard's category mean as defined before the totals: over each version's included
    runs (race runs too), every result in the category, a missing score counting 0."""
    stmt = (
        select(
            col(EvaluationRun.agent_version_id),
            col(Problem.category),
            func.avg(func.coalesce(col(ProblemResult.score), 0.0)),
        )
        .join(ProblemResult, col(ProblemResult.run_id) == EvaluationRun.id)
        .join(Problem, col(Problem.id) == ProblemResult.problem_id)
        .where(col(EvaluationRun.is_included).is_(True), col(Problem.category).is_not(None))
        .group_by(col(EvaluationRun.agent_version_id), col(Problem.category))
    )
    return {(v, c): float(m) for v, c, m in session.execute(stmt)}


def _assert_same_categories(session: Session) -> None:
    want = _raw_category_means(session)
    got = {(r.agent_version_id, r.category): r for r in session.exec(select(VersionCategory)).scalars()}
    assert set(got) == set(want)
    for key, mean in want.items():
        assert got[key].mean is not None and _close(got[key].mean, mean), key


def _snapshot(session: Session) -> dict[str, list[dict[str, Any]]]:
    def rows(model: Any) -> list[dict[str, Any]]:
        found = session.exec(select(model)).scalars().all()
        return sorted(
            (r.model_dump() for r in found),
            key=lambda r: (
                sorted((k, str(v)) for k, v in r.items() if not isinstance(v, float)),
                r.get("score"),
            ),
        )

    tables = (ProblemCell, ProblemScore, ProblemScoreBucket, ProblemTotal, VersionCategory)
    return {model.__name__: rows(model) for model in tables}


def _same(a: dict[str, list[dict[str, Any]]], b: dict[str, list[dict[str, Any]]]) -> bool:
    """Equal totals: counts exactly, sums to 1e-9 (added in another order)."""
    if {k: len(v) for k, v in a.items()} != {k: len(v) for k, v in b.items()}:
        return False
    for table, rows in a.items():
        for x, y in zip(rows, b[table], strict=True):
            for name, value in x.items():
                other = y[name]
                if isinstance(value, float) or isinstance(other, float):
                    if not _close(value, other):
                        return False
                elif value != other:
                    return False
    return True


def _mutate(session: Session, rng: random.Random, race_id: uuid.UUID) -> None:
    """Random writes of every kind the triggers must follow, through the ORM and through Core."""
    results = session.exec(select(ProblemResult)).scalars().all()
    for row in rng.sample(results, len(results) // 5):  # rescoring and status changes (ORM UPDATEs)
        row.status = rng.choice(["SUCCESS", "FAILED", "TIMED_OUT", "SKIPPED", "PENDING", "RUNNING"])
        row.score = rng.choice([None, round(rng.random(), 2), rng.randrange(0, 1025) / 1024])  # bucket edges
        row.execution_time = None if rng.random() < 0.3 else rng.uniform(1, 9)
        session.add(row)
    session.flush()
    runs = session.exec(select(EvaluationRun)).scalars().all()
    for run in rng.sample(runs, len(runs) // 4):  # inclusion flips
        run.is_included = not run.is_included
        session.add(run)
    session.flush()
    moved = rng.choice(runs)  # a run becomes race work, and another stops being one (Core UPDATEs)
    session.execute(update(EvaluationRun).where(col(EvaluationRun.id) == moved.id).values(race_id=race_id))
    gone = rng.sample(results, len(results) // 10)  # deletes (one Core DELETE)
    session.execute(delete(ProblemResult).where(col(ProblemResult.id).in_([r.id for r in gone])))
    session.flush()


@pytest.mark.parametrize("seed", [1, 2])
def test_totals_follow_every_write_and_equal_the_raw_aggregates(runtime: Runtime, seed: int) -> None:
    # given a random world: 9 versions x 3 runs x 6 problems, then runs of a race next to them
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    runtime.db.call(
        _seed, suite_id=world.suite.id, problems=problems, validators=world.validators, start=seed * 10, n=9
    )
    race = Race(
        race_number=1, suite_id=world.suite.id, max_qualifiers=4, problem_count=3, required_successes=1,
        max_attempts=2, qualifying_closes_at=BASE, seed_commitment="0" * 64, secret="1" * 64,
    )  # fmt: skip
    runtime.db.call(lambda s: (s.add(race), s.flush()))
    runtime.db.call(
        _seed, suite_id=world.suite.id, problems=problems[:3], validators=world.validators[:1], start=90, n=3,
        race_id=race.id,
    )  # fmt: skip

    # then the totals written by the inserts' triggers give the raw figures
    runtime.db.call(_assert_same_stats, world.suite.id)
    runtime.db.call(_assert_same_categories)

    # when every kind of write follows, twice
    rng = random.Random(seed)
    for _ in range(2):
        before = runtime.db.call(_snapshot)
        runtime.db.call(_mutate, rng, race.id)
        assert not _same(runtime.db.call(_snapshot), before)  # the writes moved the totals

        # then the totals still give the raw figures, and equal a rebuild from the rows
        runtime.db.call(_assert_same_stats, world.suite.id)
        runtime.db.call(_assert_same_categories)
        kept = runtime.db.call(_snapshot)
        runtime.db.call(lambda s: cells.rebuild(s.connection()))
        assert _same(runtime.db.call(_snapshot), kept)


def test_race_runs_stay_out_of_the_suite_totals(runtime: Runtime) -> None:
    # given only race runs
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    race = Race(
        race_number=1, suite_id=world.suite.id, max_qualifiers=4, problem_count=3, required_successes=1,
        max_attempts=2, qualifying_closes_at=BASE, seed_commitment="0" * 64, secret="1" * 64,
    )  # fmt: skip
    runtime.db.call(lambda s: (s.add(race), s.flush()))
    runtime.db.call(
        _seed, suite_id=world.suite.id, problems=problems, validators=world.validators, start=0, n=4,
        race_id=race.id,
    )  # fmt: skip

    # when
    stats = runtime.db.call(problemstats.totals_stats, world.suite.id, problemstats.Scope())
    cell_count = runtime.db.call(
        lambda s: s.execute(select(func.count()).select_from(ProblemCell)).scalar_one()
    )

    # then the suite's statistics see none of them (a race's own scope reads its runs' rows)
    assert stats == {} and cell_count == 0


def test_a_demo_world_loads_without_the_triggers_and_leaves_them_in_place(runtime: Runtime) -> None:
    # given a demo world (its bulk load drops the triggers and rebuilds the totals once at the end)
    from oro_graph import demo

    demo.generate(runtime.db, runtime.settings, seed=5, miners=12, validators=4, runs=120)
    suite_id = runtime.db.call(lambda s: s.exec(select(EvaluationRun.suite_id)).scalars().first())

    # then its totals give the raw figures
    runtime.db.call(_assert_same_stats, suite_id)
    runtime.db.call(_assert_same_categories)

    # and the triggers are back: later writes still move the totals, which still equal a rebuild
    before = runtime.db.call(_snapshot)
    race = Race(
        race_number=99, suite_id=suite_id, max_qualifiers=4, problem_count=3, required_successes=1,
        max_attempts=2, qualifying_closes_at=BASE, seed_commitment="0" * 64, secret="1" * 64,
    )  # fmt: skip
    runtime.db.call(lambda s: (s.add(race), s.flush()))
    runtime.db.call(_mutate, random.Random(5), race.id)
    assert not _same(runtime.db.call(_snapshot), before)
    runtime.db.call(_assert_same_stats, suite_id)
    kept = runtime.db.call(_snapshot)
    runtime.db.call(lambda s: cells.rebuild(s.connection()))
    assert _same(runtime.db.call(_snapshot), kept)


def _holds_totals_lock(session: Session) -> bool:
    return bool(
        session.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND ((classid::bigint << 32) | objid::bigint) = :lock"
            ),
            {"lock": cells.LOCK},
        ).scalar_one()
    )


def _staged(session: Session) -> bool:
    """Whether this transaction has a delta staged for its commit (``totals._flush``)."""
    return bool(
        session.execute(text("SELECT count(*) FROM totalsflush WHERE txid = txid_current()")).scalar_one()
    )


def _rewrite(session: Session, *, rescore: bool) -> tuple[bool, bool]:
    """Upsert every result of one run again (as a validator re-sending its progress does), unchanged
    or with one score moved; whether the transaction then holds the totals' lock, and has a delta staged
    for its commit."""
    run_id = session.execute(select(ProblemResult.run_id).limit(1)).scalar_one()
    rows = session.execute(select(ProblemResult).where(col(ProblemResult.run_id) == run_id)).scalars().all()
    for i, row in enumerate(rows):
        score = (row.score or 0.0) / 2 if rescore and i == 0 else row.score
        session.execute(
            update(ProblemResult)
            .where(col(ProblemResult.id) == row.id)
            .values(status=row.status, score=score)
        )
    return _holds_totals_lock(session), _staged(session)


def _postgres_world_with_totals(runtime: Runtime, *, start: int, n: int) -> Any:
    if runtime.db.engine.dialect.name != "postgresql":
        pytest.skip("the totals' advisory lock exists on PostgreSQL only")
    world = make_world(runtime)
    problems = runtime.db.call(suites.problems_for_suite, world.suite.id)
    runtime.db.call(
        _seed, suite_id=world.suite.id, problems=problems, validators=world.validators, start=start, n=n
    )
    return world


def test_an_unchanged_result_sent_again_leaves_the_totals_and_their_lock_alone(runtime: Runtime) -> None:
    # given a world with totals
    world = _postgres_world_with_totals(runtime, start=3, n=3)
    kept = runtime.db.call(_snapshot)

    # when a run's results are written again unchanged: nothing is staged, the totals' lock never taken
    assert runtime.db.call(_rewrite, rescore=False) == (False, False)
    assert _same(runtime.db.call(_snapshot), kept)

    # while a real change is staged, without the lock until its commit (which moves the totals, and
    # they still equal a rebuild)
    assert runtime.db.call(_rewrite, rescore=True) == (False, True)
    moved = runtime.db.call(_snapshot)
    assert not _same(moved, kept)
    runtime.db.call(lambda s: cells.rebuild(s.connection()))
    assert _same(runtime.db.call(_snapshot), moved)
    runtime.db.call(_assert_same_stats, world.suite.id)
    assert runtime.db.call(lambda s: s.execute(text("SELECT count(*) FROM totalsdelta")).scalar_one()) == 0


def test_writers_of_the_totals_wait_for_each_other_only_at_commit(runtime: Runtime) -> None:
    # given a world with totals, and two runs' results
    world = _postgres_world_with_totals(runtime, start=5, n=2)
    runs = runtime.db.call(
        lambda s: s.execute(select(ProblemResult.run_id).distinct().limit(2)).scalars().all()
    )
    rescore = text("UPDATE problemresult SET score = coalesce(score, 0) / 2 + 0.125 WHERE run_id = :run")

    # when one writer has changed a run's results and not yet committed
    with runtime.db.engine.connect() as first, runtime.db.engine.connect() as second:
        first.execute(rescore, {"run": runs[0]})
        # then another changes another run's results and commits without waiting for it (its totals
        # are added at its commit; before, the first writer held the totals' lock until its commit)
        second.execute(text("SET LOCAL lock_timeout = '5s'"))
        second.execute(rescore, {"run": runs[1]})
        second.commit()
        first.commit()

    # and both changes are in the totals, which equal a rebuild and the raw figures
    kept = runtime.db.call(_snapshot)
    runtime.db.call(lambda s: cells.rebuild(s.connection()))
    assert _same(runtime.db.call(_snapshot), kept)
    runtime.db.call(_assert_same_stats, world.suite.id)
