"""Fixtures: every database test runs on SQLite and on PostgreSQL, isolated per test.

PostgreSQL: one throwaway database per test session (created on the server named by
ORO_TEST_POSTGRES_URL, migrated once with Alembic), emptied after each test. SQLite: a file
migrated once per session, copied for each test.
Without a reachable server the PostgreSQL cases skip with one line saying how to enable them;
under CI (CI=true) an unreachable PostgreSQL or Redis is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from oro_graph import storage as storage_module
from oro_graph.db import Database
from oro_graph.migrations import upgrade
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings

# oauth_server, token_runtime: a local OAuth token server and a runtime minting from it.
pytest_plugins = ["tests.support.inference"]

PG_URL = os.environ.get("ORO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ORO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ENABLE_HINT = (
    "start PostgreSQL or set ORO_TEST_POSTGRES_URL=postgresql+psycopg://USER@HOST:PORT/DB to run them"
)


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session; dropped at the end."""
    problem = _pg_reachable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL tests skipped ({problem}); {ENABLE_HINT}")
    name = f"oro_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # A throwaway database need not wait for the disk at each commit: nothing here must survive
        # a crash of the server.
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit TO off'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_all(db: Database) -> None:
    """Empty every table and restart every sequence, as ``TRUNCATE ... RESTART IDENTITY`` would.

    DELETE rather than TRUNCATE: a test writes a few rows, and TRUNCATE's cost is per table (a new
    file for each of them), about ten times that of deleting a few rows. Foreign-key triggers are off
    for the statement (``session_replication_role``), so the order of the tables does not matter.
    """
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))
        for (sequence,) in conn.execute(
            text("SELECT quote_ident(sequence_name) FROM information_schema.sequences")
        ):
            conn.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per test session; each test starts from a copy of it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "oro.db"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # fold the WAL into the file, so the file alone is the copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "oro.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("pg_database"))


def base_settings(database_url: str, data_dir: Path) -> Settings:
    """The settings every database test starts from (``settings``, ``module_runtime``)."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        secret_key="test-secret-key",
        public_base_url="http://testserver",
        submission_cooldown_seconds=3600,
        required_successes=2,
        max_active_runs_per_validator=1,
        lease_seconds=300,
        race_scheduler=False,  # tests drive races themselves; the scheduler's own tests turn it on
        # Most tests are about other rules; the inference tests (tests/support/inference.py) turn it on.
        require_inference_credential=False,
        # A loaded machine (CI's two cores, two workers) must not turn a slow execution into a budget
        # refusal; the budget's own tests (tests/graphql/test_time_budget.py) set theirs.
        graphql_time_budget_seconds=300,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return base_settings(database_url, tmp_path / "state")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """One runtime per module and database, for a module whose tests only read one world built once
    (a demo world costs seconds; built per test it was most of such a module's time).

    Every test of a module using it must use it alone (not ``runtime``): on PostgreSQL it is the
    session's database, which ``runtime`` empties after each test; it is emptied here at the end.
    """
    tmp = tmp_path_factory.mktemp("module-runtime")
    if request.param == "sqlite":
        path = tmp / "oro.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = str(request.getfixturevalue("pg_database"))
    yield from _runtime_emptied_after(base_settings(url, tmp / "state"))


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    yield from _runtime_emptied_after(settings)


@pytest.fixture
def pg_runtime(pg_database: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on PostgreSQL alone, for a test of what only PostgreSQL does or reports (the rows a
    statement returned, the benchmark's raw SQL): no SQLite run to skip. Mark such tests ``postgres``."""
    yield from _runtime_emptied_after(base_settings(pg_database, tmp_path / "state"))


def _runtime_emptied_after(settings: Settings) -> Iterator[Runtime]:
    """A runtime; afterwards a PostgreSQL database (shared by the session) is emptied and it is closed,
    with every runtime a test built over its database (``_derived_runtimes_close_with_their_base``)."""
    rt = Runtime.build(settings)
    try:
        yield rt
    finally:
        for derived in _DERIVED.pop(id(rt.db), []):
            derived.close()
        if not rt.db.is_sqlite:
            _truncate_all(rt.db)
        rt.close()


# Runtimes built over another runtime's database (``Runtime.build(settings, db=runtime.db)``: the same
# world with a setting changed), by id of that database; closed with the fixture's runtime.
_DERIVED: dict[int, list[Runtime]] = {}


@pytest.fixture(autouse=True, scope="session")
def _derived_runtimes_close_with_their_base() -> Iterator[None]:
    """A test that changes a setting builds a second runtime over the fixture's database and hands its
    app to a TestClient without a lifespan, so nothing closed it, and its agent-file parser processes
    lived as long as the test session (14 idle ones after a run). They are closed with the fixture's
    runtime instead, whichever test or fixture built them."""
    build = Runtime.build.__func__  # type: ignore[attr-defined]

    def recording(cls: type[Runtime], settings: Settings, *, db: Database | None = None) -> Runtime:
        built: Runtime = build(cls, settings, db=db)
        if db is not None:
            _DERIVED.setdefault(id(db), []).append(built)
        return built

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Runtime, "build", classmethod(recording))
        yield


def _parse_workers() -> set[int]:
    """The agent-file parser processes (``oro_graph/_parse_worker.py``) this process runs now."""
    children: list[str] = []
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            children += (task / "children").read_text().split()
    found = set()
    for pid in children:
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            if "_parse_worker.py" in Path(f"/proc/{pid}/cmdline").read_text():
                found.add(int(pid))
    return found


@pytest.fixture(autouse=True, scope="module")
def _no_parse_worker_outlives_its_module() -> Iterator[None]:
    """Every runtime (and so every agent-file parser process) a module's tests and fixtures start is
    closed by the end of the module: a leaked one would idle for the rest of the session."""
    before = _parse_workers()
    yield
    leaked = _parse_workers() - before
    assert not leaked, f"parse workers left running after this module: {sorted(leaked)}"


@pytest.fixture
def db(runtime: Runtime) -> Database:
    return runtime.db


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable under CI: {exc}")
        pytest.skip(f"Redis tests skipped ({exc}); start Redis or set ORO_TEST_REDIS_URL")
    finally:
        client.close()
    return REDIS_URL


# Under pytest-xdist (`-n 2 --dist loadgroup`, the README's test command): a module's tests stay on
# one worker (module fixtures are built once), and the tests under tests/hardening that start server
# processes run on one worker, in order: those processes share Redis db 13 and flush it. The other
# hardening modules (in-thread servers, like the REST suite's; the fuzzers, the longest modules) are
# ordinary modules, so that one worker does not carry most of tests/hardening alone.
PROCESS_MODULES = (
    "test_faults.py",
    "test_floods.py",
    "test_load.py",
    "test_races.py",
    "test_redis_outage.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.as_posix()
        processes = item.path.name in PROCESS_MODULES or "process_redis" in getattr(item, "fixturenames", ())
        shared = "/tests/hardening/" in path and processes
        item.add_marker(pytest.mark.xdist_group("hardening" if shared else path))


@pytest.fixture(autouse=True, scope="session")
def _own_data_version_key() -> Iterator[None]:
    """Each test session (each xdist worker) bumps its own data-version key in Redis, so a write in
    one worker never turns another worker's expected cache hit into a miss."""
    from oro_graph import dataversion

    saved = dataversion.KEY
    dataversion.KEY = f"{saved}:test-{os.getpid()}"
    try:
        yield
    finally:
        dataversion.KEY = saved


class StorageClock:
    """``time`` as oro_graph.storage sees it, with a hand to move forward: a test of the signed
    URLs' expiry moves the clock past it instead of sleeping there (the same comparison runs)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def storage_clock(monkeypatch: pytest.MonkeyPatch) -> StorageClock:
    clock = StorageClock()
    monkeypatch.setattr(storage_module, "time", clock)
    return clock
