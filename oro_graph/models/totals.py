"""The running totals of ``oro_graph.models.cells``, kept by triggers: the one place they are defined.

Why triggers and not a call from each writing service: problem results are written by the
validator's progress calls, by the demo's bulk COPY and by test fixtures; a trigger sees every one
of them, in the writer's own transaction, so the totals are never behind the rows they sum.

Every change is a signed *delta* of problem results (+1 for a row that now counts, -1 for one that
no longer does) with the run's suite, race, inclusion and version. Each trigger turns its delta
into three grouped upserts (``ON CONFLICT ... DO UPDATE`` adds), then deletes the totals that fell
to zero (a partial index finds them). PostgreSQL: statement triggers with transition tables for
problem results (one COPY of millions of rows is one grouped upsert), a row trigger for a run whose
inclusion, race, suite or version changes. SQLite: row triggers.

On PostgreSQL every writer of the totals takes one advisory lock (``LOCK``) until its commit, so the
triggers do not add a delta where it arises: they stage it in ``totalsdelta`` (an unlogged table;
its rows never outlive their transaction) and mark the transaction in ``totalsflush``, whose
deferred constraint trigger adds the transaction's staged deltas at its commit. The lock is then
held for that one step and the commit, not for the rest of the writer's transaction (a validator's
progress report: its events, its nonce and the round trips between them), during which every other
validator's report waited.

``rebuild`` recomputes everything from the rows (the migration's backfill; a bulk loader that
bypassed the triggers calls it).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import text

FINISHED = "('SUCCESS', 'FAILED', 'TIMED_OUT', 'SKIPPED')"
TABLES = frozenset({"problemcell", "problemscore", "problemscorebucket", "problemtotal", "versioncategory"})
LOCK = 0x6F726F63  # the advisory lock writers of the totals take on PostgreSQL ("oroc")
STAGING = ("totalsdelta", "totalsflush")  # PostgreSQL: a transaction's deltas until its commit (not models)
# What a write to these (table or table.column) changes in the totals: the response caches'
# dependencies (oro_graph.dependencies) bump the totals with them.
SOURCES = frozenset(
    {
        "problemresult",
        "evaluationrun.is_included",
        "evaluationrun.race_id",
        "evaluationrun.suite_id",
        "evaluationrun.agent_version_id",
    }
)
_RUN_COLUMNS = ("is_included", "race_id", "suite_id", "agent_version_id")

_AS = ("suite_id", "race_id", "included", "version_id", "problem_id", "status", "score", "duration", "sign")


def _select(values: tuple[str, ...], rest: str) -> str:
    return "SELECT " + ", ".join(f"{v} AS {a}" for v, a in zip(values, _AS, strict=True)) + " " + rest


def _results_delta(rows: str, sign: int, rest: str) -> str:
    """Delta rows of problem results ``rows`` (alias x) with their run (alias r, joined by ``rest``)."""
    run = ("r.suite_id", "r.race_id", "r.is_included", "r.agent_version_id")
    result = ("x.problem_id", "x.status", "x.score", "x.execution_time", str(sign))
    return _select(run + result, f"FROM {rows} {rest}")


def _run_delta(run: str, sign: int) -> str:
    """Delta rows of every problem result of one run, with that run's columns from ``run`` (OLD/NEW)."""
    columns = tuple(f"{run}.{c}" for c in ("suite_id", "race_id", "is_included", "agent_version_id"))
    result = ("x.problem_id", "x.status", "x.score", "x.execution_time", str(sign))
    return _select(columns + result, f"FROM problemresult x WHERE x.run_id = {run}.id")


def _row_delta(row: str, sign: int) -> str:
    """SQLite: the delta of one problem result ``row`` (old/new) with its run."""
    run = ("r.suite_id", "r.race_id", "r.is_included", "r.agent_version_id")
    result = tuple(f"{row}.{c}" for c in ("problem_id", "status", "score", "execution_time")) + (str(sign),)
    return _select(run + result, f"FROM evaluationrun r WHERE r.id = {row}.run_id")


def _counters(prefix: str, included: str) -> list[tuple[str, str]]:
    fin = f"d.status IN {FINISHED}{included}"
    timed = f"{fin} AND d.duration IS NOT NULL"
    return [
        (f"{prefix}attempts", f"CASE WHEN {fin} THEN d.sign ELSE 0 END"),
        (f"{prefix}passes", f"CASE WHEN d.status = 'SUCCESS'{included} THEN d.sign ELSE 0 END"),
        (f"{prefix}timeouts", f"CASE WHEN d.status = 'TIMED_OUT'{included} THEN d.sign ELSE 0 END"),
        (f"{prefix}score_sum", f"CASE WHEN {fin} THEN d.sign * COALESCE(d.score, 0.0) ELSE 0.0 END"),
        (f"{prefix}duration_sum", f"CASE WHEN {timed} THEN d.sign * d.duration ELSE 0.0 END"),
        (f"{prefix}durations", f"CASE WHEN {timed} THEN d.sign ELSE 0 END"),
    ]


BUCKETS = 1024  # score buckets of ProblemScoreBucket: floor(score * 1024), exact in binary floating point
_TOTAL_COUNTS = ("attempts", "passes", "timeouts", "score_sum", "duration_sum", "durations")
_TOTAL_SUMS = ("versions", "n", "sx", "sy", "sxx", "syy", "sxy")
_TOTAL_COLUMNS = [f"{p}{c}" for p in ("", "inc_") for c in _TOTAL_COUNTS + _TOTAL_SUMS]


def bucket_sql(score: str, *, postgres: bool) -> str:
    """The bucket of ``score`` (in [0, 1]; SQLite truncates, which is the floor there)."""
    return f"FLOOR({score} * {BUCKETS})::integer" if postgres else f"CAST({score} * {BUCKETS} AS INTEGER)"


def bucket_of(score: float, *, postgres: bool) -> int:
    """``bucket_sql`` in Python."""
    scaled = score * BUCKETS
    return math.floor(scaled) if postgres else int(scaled)


def _upsert_total(values: dict[str, str], rest: str) -> str:
    """Add ``values`` (column -> aggregate, the others 0) to ProblemTotal rows; ``rest`` has the FROM
    and groups by the problem (``pid``), in problem order: concurrent writers lock rows in one order."""
    exprs = ", ".join(values.get(c, "0") for c in _TOTAL_COLUMNS)
    return (
        f"INSERT INTO problemtotal (problem_id, suite_id, {', '.join(_TOTAL_COLUMNS)}) "
        f"SELECT pid, MAX(sid), {exprs} {rest} ORDER BY pid "
        "ON CONFLICT (problem_id) DO UPDATE SET suite_id = excluded.suite_id, "
        + ", ".join(f"{c} = problemtotal.{c} + excluded.{c}" for c in _TOTAL_COLUMNS)
    )


def _terms(sign: str, versions: str) -> str:
    """Add (``sign`` 1) or take away (-1) the correlation terms of every cell of ``versions``."""
    values = {}
    for p in ("", "inc_"):
        x, y = f"c.{p}x", f"c.{p}y"
        paired = f"CASE WHEN {y} IS NOT NULL THEN {x} END"
        values.update(
            {
                f"{p}versions": f"{sign} * COUNT({x})",
                f"{p}n": f"{sign} * COUNT({y})",
                f"{p}sx": f"{sign} * COALESCE(SUM({paired}), 0.0)",
                f"{p}sy": f"{sign} * COALESCE(SUM({y}), 0.0)",
                f"{p}sxx": f"{sign} * COALESCE(SUM({paired} * {x}), 0.0)",
                f"{p}syy": f"{sign} * COALESCE(SUM({y} * {y}), 0.0)",
                f"{p}sxy": f"{sign} * COALESCE(SUM({x} * {y}), 0.0)",
            }
        )
    rest = (
        "FROM (SELECT problem_id AS pid, suite_id AS sid, x, y, inc_x, inc_y FROM problemcell "
        f"WHERE agent_version_id IN ({versions})) AS c GROUP BY pid"
    )
    return _upsert_total(values, rest)


def _recompute_terms(versions: str) -> str:
    """Each cell's x and y from the version's cells as they are now."""
    sets = []
    inner = []
    for p in ("", "inc_"):
        mean = f"{p}score_sum / {p}attempts"
        sets += [
            f"{p}x = CASE WHEN {p}attempts > 0 THEN {mean} END",
            f"{p}y = CASE WHEN {p}attempts > 0 AND t.{p}k > 1 THEN (t.{p}t - {mean}) / (t.{p}k - 1) END",
        ]
        inner += [
            f"SUM(CASE WHEN {p}attempts > 0 THEN {mean} ELSE 0.0 END) AS {p}t",
            f"SUM(CASE WHEN {p}attempts > 0 THEN 1 ELSE 0 END) AS {p}k",
        ]
    return (
        f"UPDATE problemcell SET {', '.join(sets)} "
        f"FROM (SELECT agent_version_id AS v, {', '.join(inner)} FROM problemcell "
        f"WHERE agent_version_id IN ({versions}) GROUP BY agent_version_id) AS t "
        "WHERE problemcell.agent_version_id = t.v"
    )


def _apply(delta: str, *, postgres: bool) -> list[str]:
    """The statements that add ``delta`` (a SELECT of the columns _AS names) to the totals."""
    d = f"({delta}) AS d"
    suite_rows = f"d.race_id IS NULL AND d.status IN {FINISHED}"
    versions = f"SELECT DISTINCT d.version_id FROM {d} WHERE {suite_rows}"
    cell = _counters("", "") + _counters("inc_", " AND d.included")
    cells = (
        f"INSERT INTO problemcell (agent_version_id, problem_id, suite_id, {', '.join(n for n, _ in cell)}) "
        f"SELECT d.version_id, d.problem_id, MAX(d.suite_id), {', '.join(f'SUM({e})' for _, e in cell)} "
        f"FROM {d} WHERE {suite_rows} GROUP BY d.version_id, d.problem_id "
        "ORDER BY d.version_id, d.problem_id "
        "ON CONFLICT (agent_version_id, problem_id) DO UPDATE SET suite_id = excluded.suite_id, "
        + ", ".join(f"{n} = problemcell.{n} + excluded.{n}" for n, _ in cell)
    )
    counts = _upsert_total(
        {n: f"SUM({e})" for n, e in cell},
        f"FROM (SELECT d.*, d.problem_id AS pid, d.suite_id AS sid FROM {d} WHERE {suite_rows}) AS d "
        "GROUP BY pid",
    )
    score = "COALESCE(d.score, 0.0)"
    scores = (
        "INSERT INTO problemscore (problem_id, score, suite_id, attempts, inc_attempts) "
        f"SELECT d.problem_id, {score}, MAX(d.suite_id), SUM(d.sign), "
        "SUM(CASE WHEN d.included THEN d.sign ELSE 0 END) "
        f"FROM {d} WHERE {suite_rows} GROUP BY d.problem_id, {score} ORDER BY d.problem_id, {score} "
        "ON CONFLICT (problem_id, score) DO UPDATE SET suite_id = excluded.suite_id, "
        "attempts = problemscore.attempts + excluded.attempts, "
        "inc_attempts = problemscore.inc_attempts + excluded.inc_attempts"
    )
    bucket = bucket_sql(score, postgres=postgres)
    buckets = (
        "INSERT INTO problemscorebucket (problem_id, bucket, suite_id, attempts, inc_attempts) "
        f"SELECT d.problem_id, {bucket}, MAX(d.suite_id), SUM(d.sign), "
        "SUM(CASE WHEN d.included THEN d.sign ELSE 0 END) "
        f"FROM {d} WHERE {suite_rows} GROUP BY d.problem_id, {bucket} ORDER BY d.problem_id, {bucket} "
        "ON CONFLICT (problem_id, bucket) DO UPDATE SET suite_id = excluded.suite_id, "
        "attempts = problemscorebucket.attempts + excluded.attempts, "
        "inc_attempts = problemscorebucket.inc_attempts + excluded.inc_attempts"
    )
    categories = (
        "INSERT INTO versioncategory (agent_version_id, category, results, score_sum, mean) "
        "SELECT d.version_id, p.category, SUM(d.sign), SUM(d.sign * COALESCE(d.score, 0.0)), "
        "SUM(d.sign * COALESCE(d.score, 0.0)) / NULLIF(SUM(d.sign), 0) "
        f"FROM {d} JOIN problem p ON p.id = d.problem_id WHERE d.included AND p.category IS NOT NULL "
        "GROUP BY d.version_id, p.category ORDER BY d.version_id, p.category "
        "ON CONFLICT (agent_version_id, category) DO UPDATE SET "
        "results = versioncategory.results + excluded.results, "
        "score_sum = versioncategory.score_sum + excluded.score_sum, "
        "mean = (versioncategory.score_sum + excluded.score_sum) "
        "/ NULLIF(versioncategory.results + excluded.results, 0)"
    )
    return [
        _terms("-1", versions),  # the touched versions' terms leave their problems' sums ...
        cells,
        _recompute_terms(versions),
        _terms("1", versions),  # ... and come back as they are now
        counts,
        scores,
        buckets,
        categories,
        "DELETE FROM problemcell WHERE attempts <= 0",
        "DELETE FROM problemscore WHERE attempts <= 0",
        "DELETE FROM problemscorebucket WHERE attempts <= 0",
        "DELETE FROM versioncategory WHERE results <= 0",
    ]


def _postgres_triggers() -> list[str]:
    run_join = "JOIN evaluationrun r ON r.id = x.run_id"
    bodies = {
        "insert": _results_delta("new_rows x", 1, run_join),
        "delete": _results_delta("old_rows x", -1, run_join),
        "update": _results_delta("old_rows x", -1, run_join)
        + " UNION ALL "
        + _results_delta("new_rows x", 1, run_join),
    }
    out = _flush()
    for event, delta in bodies.items():
        name = f"oro_cells_result_{event}"
        out.append(_plpgsql(name, delta))
        tables = {
            "insert": "NEW TABLE AS new_rows",
            "delete": "OLD TABLE AS old_rows",
            "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        }[event]
        out.append(
            f"CREATE TRIGGER {name} AFTER {event.upper()} ON problemresult REFERENCING {tables} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    out.append(_plpgsql("oro_cells_run_update", _run_delta("OLD", -1) + " UNION ALL " + _run_delta("NEW", 1)))
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _RUN_COLUMNS)
    out.append(
        f"CREATE TRIGGER oro_cells_run_update AFTER UPDATE OF {', '.join(_RUN_COLUMNS)} ON evaluationrun "
        f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION oro_cells_run_update()"
    )
    return out


def _changes(delta: str) -> str:
    """Whether ``delta`` changes any total: some group of identical rows (every column but the sign)
    does not cancel out. A validator re-sending a result it already reported (an upsert that leaves
    status, score and duration as they were) is -1 and +1 of the same row: no change."""
    columns = ", ".join(f"d.{c}" for c in _AS if c != "sign")
    return f"EXISTS (SELECT 1 FROM ({delta}) AS d GROUP BY {columns} HAVING SUM(d.sign) <> 0)"


def _plpgsql(name: str, delta: str) -> str:
    # The delta is staged for the commit (``_flush``); a delta that cancels out changes nothing and is
    # not staged, so a writer re-sending unchanged results takes no part in the totals' lock at all.
    columns = ", ".join(_AS)
    body = ";\n  ".join(
        [
            f"INSERT INTO totalsdelta (txid, {columns}) SELECT txid_current(), {columns} FROM ({delta}) AS d",
            "INSERT INTO totalsflush (txid) VALUES (txid_current()) ON CONFLICT DO NOTHING",
        ]
    )
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n  IF NOT {_changes(delta)} THEN\n    RETURN NULL;\n  END IF;\n"
        f"  {body};\n  RETURN NULL;\nEND\n$$"
    )


def _flush() -> list[str]:
    """The staging tables and the deferred trigger that adds a transaction's staged deltas at its commit.

    One writer of the totals at a time (until its commit): every writer updates the same few
    ProblemTotal rows, and in several statements; waiting here first cannot deadlock. A savepoint
    rolled back takes its staged rows and its pending flush with it."""
    columns = ", ".join(_AS)
    staged = f"SELECT {columns} FROM totalsdelta WHERE txid = NEW.txid"
    body = ";\n  ".join(
        [
            f"PERFORM pg_advisory_xact_lock({LOCK})",
            *_apply(staged, postgres=True),
            "DELETE FROM totalsdelta WHERE txid = NEW.txid",
            "DELETE FROM totalsflush WHERE txid = NEW.txid",
        ]
    )
    return [
        "CREATE UNLOGGED TABLE IF NOT EXISTS totalsdelta (txid bigint NOT NULL, suite_id integer, "
        "race_id uuid, included boolean, version_id uuid, problem_id uuid, status varchar(32), "
        "score double precision, duration double precision, sign integer NOT NULL)",
        "CREATE INDEX IF NOT EXISTS ix_totalsdelta_txid ON totalsdelta (txid)",
        "CREATE UNLOGGED TABLE IF NOT EXISTS totalsflush (txid bigint PRIMARY KEY)",
        "CREATE OR REPLACE FUNCTION oro_totals_flush() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n  {body};\n  RETURN NULL;\nEND\n$$",
        "CREATE CONSTRAINT TRIGGER oro_totals_flush AFTER INSERT ON totalsflush "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION oro_totals_flush()",
    ]


def _sqlite_triggers() -> list[str]:
    bodies = {
        "insert": ("AFTER INSERT ON problemresult", _row_delta("new", 1)),
        "delete": ("AFTER DELETE ON problemresult", _row_delta("old", -1)),
        "update": (
            "AFTER UPDATE OF run_id, problem_id, status, score, execution_time ON problemresult",
            _row_delta("old", -1) + " UNION ALL " + _row_delta("new", 1),
        ),
    }
    out = []
    for event, (when, delta) in bodies.items():
        out.append(_sqlite_trigger(f"oro_cells_result_{event}", when, delta))
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in _RUN_COLUMNS)
    out.append(
        _sqlite_trigger(
            "oro_cells_run_update",
            f"AFTER UPDATE OF {', '.join(_RUN_COLUMNS)} ON evaluationrun FOR EACH ROW WHEN {changed}",
            _run_delta("old", -1) + " UNION ALL " + _run_delta("new", 1),
        )
    )
    return out


def _sqlite_trigger(name: str, when: str, delta: str) -> str:
    # SQLite parses "INSERT ... SELECT ... ON CONFLICT" only with a WHERE or GROUP BY before ON: both have.
    body = ";\n  ".join(_apply(delta, postgres=False))
    return f"CREATE TRIGGER {name} {when} BEGIN\n  {body};\nEND"


def install(conn: Any) -> None:
    """Create the triggers (``conn``: a SQLAlchemy connection, e.g. Alembic's ``op.get_bind()``)."""
    postgres = conn.dialect.name == "postgresql"
    for statement in _postgres_triggers() if postgres else _sqlite_triggers():
        conn.execute(text(statement))


def uninstall(conn: Any) -> None:
    postgres = conn.dialect.name == "postgresql"
    for event in ("insert", "update", "delete"):
        name = f"oro_cells_result_{event}"
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name}" + (" ON problemresult" if postgres else "")))
        if postgres:
            conn.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
    conn.execute(
        text("DROP TRIGGER IF EXISTS oro_cells_run_update" + (" ON evaluationrun" if postgres else ""))
    )
    if postgres:
        conn.execute(text("DROP FUNCTION IF EXISTS oro_cells_run_update()"))
        for table in STAGING:  # with its deferred trigger (an open transaction's staged rows: none)
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(text("DROP FUNCTION IF EXISTS oro_totals_flush()"))


def reinstall(conn: Any) -> None:
    """The triggers (and on PostgreSQL their staging tables) made again from this code, the totals kept:
    the migrations that change only how the triggers work."""
    uninstall(conn)
    install(conn)


def rebuild(conn: Any) -> None:
    """Recompute every total from the rows (``conn``: a SQLAlchemy connection or session), in the
    caller's transaction: the migration's backfill, and the repair after a load without triggers."""
    for table in sorted(TABLES):
        conn.execute(text(f"DELETE FROM {table}"))
    every = _results_delta("problemresult x", 1, "JOIN evaluationrun r ON r.id = x.run_id")
    for statement in _apply(every, postgres=conn.dialect.name == "postgresql"):
        conn.execute(text(statement))
