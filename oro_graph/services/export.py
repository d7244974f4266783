"""The graph's main tables as plain rows, for ``oro-graph export`` (which writes them with pyarrow).

One call reads every table in one transaction (on PostgreSQL a repeatable-read snapshot, so the tables
agree with each other). Problem results, the one table with an update stamp, can be read incrementally:
only rows stamped at or after ``results_since``. The other tables are read whole. Storage keys, JSON
blobs and anything secret are not exported; every column here is one the graph serves, as the public
sees it: the scores of a race's runs stay null until the race completes (``races.disclosed_sql``; an
incremental export of problem results takes them again only with a full export after the race).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlmodel import Session, col, select

from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Problem,
    ProblemResult,
    Race,
    Role,
    ValidatorState,
)
from oro_graph.services import races

Kind = Literal["uuid", "str", "int", "float", "bool", "time"]
BATCH = 5_000


@dataclass(frozen=True)
class Table:
    name: str
    key: str  # the column that identifies a row (incremental exports replace rows by it)
    columns: tuple[tuple[str, Kind], ...]
    select: Callable[[], Any]
    order: Callable[[], Sequence[Any]]
    stamp: Any | None = None  # the update-stamp column, where the table has one

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


TABLES: tuple[Table, ...] = (
    Table(
        "versions",
        "agent_version_id",
        (
            ("agent_version_id", "uuid"),
            ("agent_id", "uuid"),
            ("agent_name", "str"),
            ("miner_hotkey", "str"),
            ("suite_id", "int"),
            ("version_number", "int"),
            ("state", "str"),
            ("submitted_at", "time"),
            ("eligible_at", "time"),
            ("discarded_at", "time"),
            ("final_score", "float"),
            ("code_sha256", "str"),
            ("code_size", "int"),
        ),
        lambda: select(
            AgentVersion.id,
            AgentVersion.agent_id,
            Agent.name,
            Agent.miner_hotkey,
            AgentVersion.suite_id,
            AgentVersion.version_number,
            AgentVersion.state,
            AgentVersion.submitted_at,
            AgentVersion.eligible_at,
            AgentVersion.discarded_at,
            AgentVersion.final_score,
            AgentVersion.code_sha256,
            AgentVersion.code_size,
        ).join(Agent, col(Agent.id) == AgentVersion.agent_id),
        lambda: (col(AgentVersion.submitted_at), col(AgentVersion.id)),
    ),
    Table(
        "runs",
        "run_id",
        (
            ("run_id", "uuid"),
            ("work_item_id", "uuid"),
            ("agent_version_id", "uuid"),
            ("validator_hotkey", "str"),
            ("suite_id", "int"),
            ("status", "str"),
            ("claimed_at", "time"),
            ("lease_expires_at", "time"),
            ("last_heartbeat_at", "time"),
            ("completed_at", "time"),
            ("validator_score", "float"),
            ("race_id", "uuid"),
            ("is_included", "bool"),
            ("failure_reason", "str"),
            ("inference_failure_count", "int"),
            ("inference_total", "int"),
        ),
        lambda: select(
            EvaluationRun.id,
            EvaluationRun.work_item_id,
            EvaluationRun.agent_version_id,
            EvaluationRun.validator_hotkey,
            EvaluationRun.suite_id,
            EvaluationRun.status,
            EvaluationRun.claimed_at,
            EvaluationRun.lease_expires_at,
            EvaluationRun.last_heartbeat_at,
            EvaluationRun.completed_at,
            races.disclosed_sql(EvaluationRun.validator_score, EvaluationRun.race_id),
            EvaluationRun.race_id,
            EvaluationRun.is_included,
            EvaluationRun.failure_reason,
            EvaluationRun.inference_failure_count,
            EvaluationRun.inference_total,
        ),
        lambda: (col(EvaluationRun.claimed_at), col(EvaluationRun.id)),
    ),
    Table(
        "problem_results",
        "result_id",
        (
            ("result_id", "uuid"),
            ("run_id", "uuid"),
            ("problem_id", "uuid"),
            ("status", "str"),
            ("score", "float"),
            ("reasoning_score", "float"),
            ("execution_time", "float"),
            ("inference_failure_count", "int"),
            ("inference_total", "int"),
            ("updated_at", "time"),
        ),
        lambda: select(
            ProblemResult.id,
            ProblemResult.run_id,
            ProblemResult.problem_id,
            ProblemResult.status,
            races.disclosed_sql(ProblemResult.score, EvaluationRun.race_id),
            races.disclosed_sql(ProblemResult.reasoning_score, EvaluationRun.race_id),
            ProblemResult.execution_time,
            ProblemResult.inference_failure_count,
            ProblemResult.inference_total,
            ProblemResult.updated_at,
        ).join(EvaluationRun, col(EvaluationRun.id) == ProblemResult.run_id),
        lambda: (col(ProblemResult.updated_at), col(ProblemResult.id)),
        stamp=ProblemResult.updated_at,
    ),
    Table(
        "validators",
        "hotkey",
        (
            ("hotkey", "str"),
            ("name", "str"),
            ("uid", "int"),
            ("validator_permit", "bool"),
            ("banned", "bool"),
            ("registered_at", "time"),
            ("last_claim_at", "time"),
            ("last_seen_at", "time"),
            ("cpu_pct", "float"),
            ("ram_pct", "float"),
            ("disk_pct", "float"),
            ("docker_container_count", "int"),
            ("metrics_reported_at", "time"),
        ),
        lambda: (
            select(
                Hotkey.ss58,
                Hotkey.name,
                Hotkey.uid,
                Hotkey.validator_permit,
                Hotkey.banned,
                Hotkey.registered_at,
                ValidatorState.last_claim_at,
                ValidatorState.last_seen_at,
                ValidatorState.cpu_pct,
                ValidatorState.ram_pct,
                ValidatorState.disk_pct,
                ValidatorState.docker_container_count,
                ValidatorState.metrics_reported_at,
            )
            .outerjoin(ValidatorState, col(ValidatorState.hotkey) == Hotkey.ss58)
            .where(Hotkey.role == Role.VALIDATOR.value)
        ),
        lambda: (col(Hotkey.ss58),),
    ),
    Table(
        "problems",
        "problem_id",
        (
            ("problem_id", "uuid"),
            ("suite_id", "int"),
            ("position", "int"),
            ("title", "str"),
            ("category", "str"),
            ("difficulty", "str"),
        ),
        lambda: select(
            Problem.id,
            Problem.suite_id,
            Problem.position,
            Problem.title,
            Problem.category,
            Problem.difficulty,
        ),
        lambda: (col(Problem.suite_id), col(Problem.position)),
    ),
    Table(
        "races",
        "race_id",
        (
            ("race_id", "uuid"),
            ("race_number", "int"),
            ("suite_id", "int"),
            ("status", "str"),
            ("qualifying_threshold", "float"),
            ("created_at", "time"),
            ("qualifying_closes_at", "time"),
            ("race_started_at", "time"),
            ("race_completed_at", "time"),
            ("winner_agent_version_id", "uuid"),
            ("winner_score", "float"),
            ("qualifier_count", "int"),
            ("scored_count", "int"),
            ("seed_commitment", "str"),
        ),
        lambda: select(
            Race.id,
            Race.race_number,
            Race.suite_id,
            Race.status,
            Race.qualifying_threshold,
            Race.created_at,
            Race.qualifying_closes_at,
            Race.race_started_at,
            Race.race_completed_at,
            Race.winner_agent_version_id,
            Race.winner_score,
            Race.qualifier_count,
            Race.scored_count,
            Race.seed_commitment,
        ),
        lambda: (col(Race.race_number),),
    ),
)
BY_NAME = {t.name: t for t in TABLES}

Sink = Callable[[Table, list[tuple[Any, ...]]], None]


def snapshot(session: Session, sink: Sink, *, since: dict[str, datetime] | None = None) -> dict[str, int]:
    """Hand every table's rows to ``sink`` in batches (tables in TABLES order, rows in a stable order).

    ``since`` maps a table with an update stamp to the earliest stamp to read; tables not named there
    are read whole. Returns the rows read per table.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    read: dict[str, int] = {}
    for table in TABLES:
        read[table.name] = 0
        for rows in _batches(session, table, (since or {}).get(table.name)):
            sink(table, rows)
            read[table.name] += len(rows)
    return read


def _batches(session: Session, table: Table, since: datetime | None) -> Iterator[list[tuple[Any, ...]]]:
    stmt = table.select()
    if since is not None and table.stamp is not None:
        stmt = stmt.where(col(table.stamp) >= since)
    result = session.execute(stmt.order_by(*table.order()).execution_options(yield_per=BATCH))
    for partition in result.partitions(BATCH):
        yield [tuple(row) for row in partition]


def counts(session: Session) -> dict[str, int]:
    """Rows per exported table (what a full export writes)."""
    from sqlalchemy import func

    out = {}
    for table in TABLES:
        out[table.name] = int(
            session.execute(select(func.count()).select_from(table.select().subquery())).one()[0]
        )
    return out
