"""Engine, sessions and ``run_db``: how every service reaches the database.

Services are plain sync functions that take a ``Session`` first. Adapters call them through
``Database.run`` (async, in a worker thread, one short-lived session and transaction per call) or
``Database.call`` (sync). A service that writes is marked with ``@writes``: on SQLite its
transaction starts with ``BEGIN IMMEDIATE`` so writers queue instead of failing half-way; on
PostgreSQL it relies on row locks taken inside the service.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, InvalidatePoolError, OperationalError
from sqlmodel import Session, create_engine

from oro_graph import dependencies
from oro_graph.errors import ServiceUnavailable, ValidationFailed
from oro_graph.settings import Settings
from oro_graph.threads import to_thread

P = ParamSpec("P")
T = TypeVar("T")

# A pooled connection used this recently is not pinged before its next use (``_ping_after_idle``).
PING_AFTER_IDLE_SECONDS = 1.0
# PostgreSQL rolled the transaction back to break a deadlock (40P01) or a serialization conflict
# (40001): nothing of it was written, so ``Database.call`` runs it again, up to this many times in all.
RETRIED_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 3

_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar("oro_sqlite_immediate", default=False)


@dataclass
class StatementCount:
    """SQL statements and their time, counted at the driver for one operation."""

    statements: int = 0
    seconds: float = 0.0


statement_counter: contextvars.ContextVar[StatementCount | None] = contextvars.ContextVar(
    "oro_statement_counter", default=None
)


# What the current request's statements read (oro_graph.dependencies), while a response cache
# computes an answer.
reads: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("oro_reads", default=None)


# Set on every PostgreSQL connection of the engine.
SESSION_SETTINGS = {
    # A compiled query (graphql/sqlcompile) is one statement whose estimated cost passes
    # jit_above_cost while it runs in tens of milliseconds: JIT compiling it cost more than running
    # it (the analyst runs page: 164 ms with JIT, 59 ms without).
    "jit": "off",
    # The data is in memory or on SSD, where a random page costs about what a sequential one does
    # (the default, 4, is a spinning disk's). With 4 the planner read a version's runs by bitmap
    # and sorted them, and joined hotkeys by scanning the table once per version; with 1.1 it walks
    # the indexes (benchmarks/pgcost.py; the validator's claim, heartbeat and progress plans are
    # the same either way).
    "random_page_cost": "1.1",
}


def writes(fn: Callable[P, T]) -> Callable[P, T]:
    """Mark a service as writing, so ``run_db`` opens a write transaction for it."""
    fn.__oro_writes__ = True  # type: ignore[attr-defined]
    return fn


def insert_if_absent(session: Session, model: type[Any], **values: Any) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: safe when several transactions create the same row at once."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing())


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """The engine for ``url``. On PostgreSQL its pool keeps ``pool_size`` connections open and opens
    up to 10 more in a burst, each closed when it comes back to a full pool. Connections beyond the
    kept ones are opened and closed under sustained load, each a new PostgreSQL backend: with 10 kept,
    32 validators' calls started 30-40 backends a second and lost a third of /health's throughput to
    it (``Database`` sizes the pool to the threads that can hold a connection at once)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite quirk)
            cursor = dbapi_conn.cursor()
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")

    else:
        engine = create_engine(
            url,
            pool_pre_ping=False,  # only after idling (_ping_after_idle)
            pool_size=pool_size,
            max_overflow=10,
            pool_timeout=10,
            connect_args={"connect_timeout": 5},
        )
        _ping_after_idle(engine)

        @event.listens_for(engine, "connect")
        def _session_settings(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cursor:
                for name, value in SESSION_SETTINGS.items():
                    cursor.execute(f"SET {name} = {value}")
            dbapi_conn.commit()

    @event.listens_for(engine, "before_cursor_execute")
    def _note_tables(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip()[:6].upper() in dependencies.WRITE_VERBS:
            written = dependencies.written(statement)
            if written:
                conn.info.setdefault("oro_wrote", set()).update(written)
        else:
            collector = reads.get()
            if collector is not None:
                collector.update(dependencies.read(context, statement))

    @event.listens_for(engine, "before_cursor_execute")
    def _count_start(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement_counter.get() is not None:
            conn.info.setdefault("oro_t0", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _count_end(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        counter = statement_counter.get()
        if counter is not None:
            counter.statements += 1
            starts = conn.info.get("oro_t0")
            if starts:
                counter.seconds += time.perf_counter() - starts.pop()

    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection before its use only when it sat idle ``PING_AFTER_IDLE_SECONDS``.

    ``pool_pre_ping`` pinged before every use: one more round trip to PostgreSQL per service call
    (per cache miss of the graph), for connections used a few milliseconds before. A connection
    the server dropped while it sat in the pool (a restart, an idle timeout) is still found before
    use: the ping fails, the pool drops every connection older than it (they are as dead) and hands
    out a fresh one, as ``pool_pre_ping`` did."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_since(dbapi_conn: Any, record: Any) -> None:
        if record is not None and dbapi_conn is not None:
            record.info["oro_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("oro_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # a fresh connection, or one used just now
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_conn, None):
                raise InvalidatePoolError() from exc  # the pool reconnects (and drops the older ones)
            raise


class Database:
    """The engine plus the two ways to run a service in a transaction."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        # A connection kept for every thread that can hold one at once (the write lane's threads, the
        # graph's execution slots and two more for the rest), so steady load reuses them all.
        kept = settings.capacity_write_threads + settings.capacity_read_slots + 2
        self.engine = engine or make_engine(settings.database_url, pool_size=kept)
        self.on_events: list[Callable[[], None]] = []  # called after a commit that recorded events
        # Called with what a committed transaction changed (tables, columns), once the commit is done.
        self.on_write: list[Callable[[set[str]], None]] = []

        # The commit event comes before the database commits: a reader that saw a new version then
        # could still read the old rows and keep them under it. So the tables wait on the
        # connection until it goes back to the pool, which is after the commit and before the
        # service that wrote returns.
        @event.listens_for(self.engine, "commit")
        def _committing(conn: Any) -> None:
            wrote = conn.info.pop("oro_wrote", None)
            if wrote:
                conn.info.setdefault("oro_committed", set()).update(wrote)

        @event.listens_for(self.engine, "checkin")
        def _committed(dbapi_conn: Any, record: Any) -> None:
            written = record.info.pop("oro_committed", None) if record is not None else None
            if written:
                for callback in self.on_write:
                    callback(written)

        @event.listens_for(self.engine, "rollback")
        def _discard(conn: Any) -> None:
            if not conn.invalidated:  # a lost connection's info cannot be read (it would reconnect)
                conn.info.pop("oro_wrote", None)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One session, one transaction: commit on success, roll back on any error."""
        token = _immediate.set(write)
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    # A lost connection cannot roll back (the server already has); the error that
                    # lost it is the one to report, or it becomes a 500 instead of a 503.
                    with contextlib.suppress(Exception):
                        session.rollback()
                    raise
                if session.info.pop("oro_events", False):
                    for callback in self.on_events:
                        callback()
        except OperationalError as exc:
            if _is_connection_error(exc):
                raise ServiceUnavailable("the database is unavailable; retry shortly") from exc
            raise
        except DataError as exc:
            # The database refused a value the client sent (a NUL byte in text, an integer wider than
            # its column): the request is wrong, not the server. Nothing was written (rolled back).
            reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
            raise ValidationFailed(f"a value in this request cannot be stored or compared: {reason}") from exc
        except OverflowError as exc:  # SQLite's driver refuses an int wider than 64 bits while binding it
            raise ValidationFailed(f"a value in this request cannot be stored or compared: {exc}") from exc
        finally:
            _immediate.reset(token)

    def call(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(session, ...)`` in one transaction; run again (after a short random pause) when PostgreSQL
        rolled it back as a deadlock's or a serialization conflict's victim (``RETRIED_SQLSTATES``): a
        claim racing other validators' claims must not become a 500 because the database chose it."""
        write = getattr(fn, "__oro_writes__", False)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.session(write=write) as session:
                    return fn(session, *args, **kwargs)
            except OperationalError as exc:
                if attempt == ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in RETRIED_SQLSTATES:
                    raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)  # the other transactions go on meanwhile
        raise AssertionError("unreachable")  # the last attempt returned or raised

    async def run(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a sync service in a worker thread so the event loop never blocks on SQL (a signed
        write's on a thread of its own, oro_graph/edge/capacity.py)."""
        return await to_thread(self.call, fn, *args, **kwargs)  # type: ignore[arg-type]

    def dispose(self) -> None:
        self.engine.dispose()


def _is_connection_error(exc: DBAPIError) -> bool:
    return bool(getattr(exc, "connection_invalidated", False)) or "connect" in str(exc.orig).lower()
