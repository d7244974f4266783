"""What a statement reads and writes, at the grain the response caches key on (table rows, columns)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, literal_column, text
from sqlalchemy.orm import aliased
from sqlmodel import Session, SQLModel, col, select

from oro_graph import dependencies
from oro_graph.dataversion import ANY
from oro_graph.models import AgentVersion, EvaluationRun, Hotkey

TOTALS = {"problemcell", "problemscore", "problemscorebucket", "problemtotal", "versioncategory"}


@pytest.mark.parametrize(
    ("statement", "changes"),
    [
        (
            "UPDATE evaluationrun SET status=?, lease_expires_at=? WHERE evaluationrun.id = ?",
            {"evaluationrun.status", "evaluationrun.lease_expires_at"},
        ),
        (
            'UPDATE "validatorstate" SET last_seen_at=%(a)s::TIMESTAMP, '
            "metrics=(SELECT x, y FROM t WHERE a = 1) WHERE validatorstate.hotkey = %(b)s",
            {"validatorstate.last_seen_at", "validatorstate.metrics"},
        ),
        (
            "UPDATE agentversion SET final_score = final_score + 1 FROM agent WHERE 1 = 1",
            {"agentversion.final_score"},
        ),
        ("UPDATE agentversion SET (a, b) = (1, 2)", {"agentversion"}),  # not the plain shape: every column
        ("INSERT INTO event (topic, kind) VALUES (?, ?)", {"event"}),
        ("DELETE FROM agent WHERE agent.id = ?", {"agent"}),
        # problem results and a run's inclusion feed the running totals their triggers keep
        ("COPY problemresult (id, run_id) FROM STDIN", {"problemresult", *TOTALS}),
        (
            "UPDATE evaluationrun SET is_included=? WHERE evaluationrun.id = ?",
            {"evaluationrun.is_included", *TOTALS},
        ),
        ('TRUNCATE "agent", "event" RESTART IDENTITY', {"agent", "event"}),
        ("TRUNCATE mystery, other", {ANY}),
        ("DELETE FROM usednonce WHERE expires_at < ?", set()),  # bookkeeping no answer shows
    ],
)
def test_what_a_write_changes(statement: str, changes: set[str]) -> None:
    assert dependencies.written(statement) == changes


def _reads(statement: Any) -> set[str]:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    seen: set[str] = set()

    def note(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        seen.update(dependencies.read(context, sql))

    event.listen(engine, "before_cursor_execute", note)
    with Session(engine) as session:
        session.exec(statement) if not isinstance(statement, str) else session.execute(text(statement))
    return seen


def test_an_entity_read_depends_on_its_rows_and_every_column_it_loads() -> None:
    reads = _reads(select(EvaluationRun).where(EvaluationRun.status == "RUNNING"))
    assert {"evaluationrun", "evaluationrun.status", "evaluationrun.lease_expires_at"} <= reads


def test_a_column_read_depends_on_the_columns_it_names_only() -> None:
    version = aliased(AgentVersion)
    reads = _reads(
        select(Hotkey.name, func.count(col(version.id)))
        .join(version, col(version.suite_id) == 1)
        .where(col(Hotkey.ss58).in_(select(EvaluationRun.validator_hotkey)))
        .group_by(Hotkey.name)
    )
    assert reads == {
        "hotkey", "hotkey.name", "hotkey.ss58",
        "agentversion", "agentversion.id", "agentversion.suite_id",
        "evaluationrun", "evaluationrun.validator_hotkey",
    }  # fmt: skip


def test_text_depends_on_every_column_of_every_table_it_names() -> None:
    reads = _reads("SELECT count(*) FROM evaluationrun")
    assert {"evaluationrun", "evaluationrun.lease_expires_at", "evaluationrun.status"} <= reads
    assert not any(name.startswith("hotkey") for name in reads)


def test_a_fragment_of_text_makes_a_statement_depend_on_every_column_it_may_name() -> None:
    reads = _reads(select(Hotkey.name).where(literal_column("hotkey.banned") == 0))
    assert {"hotkey.name", "hotkey.banned", "hotkey.uid"} <= reads
