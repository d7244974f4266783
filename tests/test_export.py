"""``oro-graph export``: typed files whose row counts equal the database's, incremental runs that end up
equal to a full export, and a failed export that leaves the previous one intact. Both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Problem,
    ProblemResult,
    ProblemStatus,
    Race,
    Role,
    utcnow,
)
from oro_graph.services import evaluations, suites
from oro_graph.services import export as tables
from tests.factories import claim, complete, make_world, submit

pa = pytest.importorskip("pyarrow")
exporting = pytest.importorskip("oro_graph.export")


def _report(rt, run_id, validator, problems, *, score: float, now) -> None:  # type: ignore[no-untyped-def]
    updates = [
        evaluations.ProblemUpdate(p.id, ProblemStatus.SUCCESS, score=score, execution_time=1.5 + i)
        for i, p in enumerate(problems)
    ]
    rt.db.call(
        evaluations.update_progress, run_id=run_id, validator_hotkey=validator, problems=updates, now=now
    )


def _world(rt, *, at):  # type: ignore[no-untyped-def]
    """One version run by two validators, the second run a day after the first."""
    world = make_world(rt)
    problems = rt.db.call(suites.problems_for_suite, world.suite.id)
    submit(rt, world.miners[0], "first", now=at - timedelta(days=1))
    for i, validator in enumerate(world.validators[:2]):
        when = at - timedelta(days=1 - i)
        c = claim(rt, validator, now=when)
        assert c is not None
        _report(rt, c.run.id, validator, problems, score=0.25 * (i + 1), now=when)
        complete(rt, c.run.id, validator, score=0.25 * (i + 1), now=when)
    return world, problems


def _database_counts(rt) -> dict[str, int]:  # type: ignore[no-untyped-def]
    def count(session, model, *where):  # type: ignore[no-untyped-def]
        return session.exec(select(func.count()).select_from(model).where(*where)).one()

    def run(session):  # type: ignore[no-untyped-def]
        return {
            "versions": count(session, AgentVersion),
            "runs": count(session, EvaluationRun),
            "problem_results": count(session, ProblemResult),
            "validators": count(session, Hotkey, Hotkey.role == Role.VALIDATOR.value),
            "problems": count(session, Problem),
            "races": count(session, Race),
        }

    return rt.db.call(run)


EXPECTED_TYPES = {
    "uuid": "string",
    "str": "string",
    "int": "int64",
    "float": "double",
    "bool": "bool",
    "time": "timestamp[us, tz=UTC]",
}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_files_are_typed_and_hold_every_row(runtime, tmp_path: Path, fmt: str) -> None:
    world, problems = _world(runtime, at=utcnow() - timedelta(hours=1))
    report = exporting.export(runtime.db, tmp_path, fmt)
    counts = _database_counts(runtime)
    assert counts["problem_results"] == 2 * len(problems) and counts["validators"] == 3
    assert report.rows == counts
    for table in tables.TABLES:
        path = tmp_path / f"{table.name}.{fmt}"
        data = exporting.read_table(path, table)
        assert data.num_rows == counts[table.name]
        assert {f.name: str(f.type) for f in data.schema} == {n: EXPECTED_TYPES[k] for n, k in table.columns}
    if fmt == "parquet":  # the file carries its own types: any reader sees them
        import pyarrow.parquet as pq

        assert (
            str(pq.read_schema(tmp_path / "runs.parquet").field("claimed_at").type) == "timestamp[us, tz=UTC]"
        )
    runs = exporting.read_table(tmp_path / f"runs.{fmt}", tables.BY_NAME["runs"]).to_pylist()
    row = runtime.db.call(lambda s: s.exec(select(EvaluationRun).order_by(EvaluationRun.claimed_at)).first())
    first = next(r for r in runs if r["run_id"] == str(row.id))
    assert first["validator_score"] == row.validator_score and first["claimed_at"] == row.claimed_at
    assert first["is_included"] is row.is_included and first["failure_reason"] is None
    versions = exporting.read_table(tmp_path / f"versions.{fmt}", tables.BY_NAME["versions"]).to_pylist()
    agent = runtime.db.call(lambda s: s.exec(select(Agent)).one())
    assert (
        versions[0]["agent_name"] == agent.name == "first" and versions[0]["miner_hotkey"] == world.miners[0]
    )
    uuid.UUID(versions[0]["agent_version_id"])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_second_export_reads_only_new_results_and_equals_a_full_one(
    runtime, tmp_path: Path, fmt: str
) -> None:
    world, problems = _world(runtime, at=utcnow() - timedelta(days=2))
    first = exporting.export(runtime.db, tmp_path / "inc", fmt)
    assert not first.incremental
    submit(runtime, world.miners[1], "second")
    c = claim(runtime, world.validators[2])
    assert c is not None
    _report(runtime, c.run.id, world.validators[2], problems[:3], score=0.9, now=utcnow())
    second = exporting.export(runtime.db, tmp_path / "inc", fmt)
    assert second.incremental
    # The first run's results (a day older than the newest) were not read again; the second run's are
    # within the overlap before the newest stamp, so they were, and merged by id.
    assert second.read["problem_results"] == len(problems) + 3
    assert second.rows == _database_counts(runtime)
    full = exporting.export(runtime.db, tmp_path / "full", fmt)
    assert not full.incremental
    for table in tables.TABLES:
        got = exporting.read_table(tmp_path / "inc" / f"{table.name}.{fmt}", table)
        want = exporting.read_table(tmp_path / "full" / f"{table.name}.{fmt}", table)
        order = [(table.key, "ascending")]
        assert got.sort_by(order).equals(want.sort_by(order)), table.name
    # --full re-reads everything even beside an earlier export
    assert exporting.export(runtime.db, tmp_path / "inc", fmt, full=True).read == _database_counts(runtime)


def test_a_failed_export_leaves_the_previous_one_intact(runtime, tmp_path: Path) -> None:
    _world(runtime, at=utcnow() - timedelta(hours=1))
    out = tmp_path / "out"
    exporting.export(runtime.db, out, "parquet")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / ".problems.parquet.tmp").mkdir()  # the last table cannot be staged
    submit(runtime, make_world_miner(runtime), "later")
    with pytest.raises(OSError):
        exporting.export(runtime.db, out, "parquet")
    (out / ".problems.parquet.tmp").rmdir()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new versions row, no stray file


def make_world_miner(rt) -> str:  # type: ignore[no-untyped-def]
    from tests.factories import register

    return register(rt, "Ferdie")


def test_unknown_format_is_refused(runtime, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parquet, csv"):
        exporting.export(runtime.db, tmp_path, "xlsx")
