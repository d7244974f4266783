"""The transaction wrapper: a connection lost mid-transaction is the client's 503, never a 500."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from oro_graph import db as db_module
from oro_graph.db import Database
from oro_graph.errors import ServiceUnavailable


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_connection_lost_mid_transaction_is_service_unavailable(db: Database) -> None:
    with pytest.raises(ServiceUnavailable, match="database is unavailable"):
        with db.session(write=True) as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with db.engine.connect() as other:  # the server drops this session's connection
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            session.execute(text("SELECT 1"))
    # and the pool hands out working connections afterwards
    with db.session() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_connection_is_pinged_only_after_idling(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []
    real = db.engine.dialect.do_ping

    def ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", ping)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.2)
    for _ in range(3):  # used just now: no round trip before the statement
        with db.session() as session:
            session.execute(text("SELECT 1"))
    assert pings == []
    time.sleep(0.3)
    with db.session() as session:
        session.execute(text("SELECT 1"))
    assert len(pings) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_connection_dropped_while_idle_is_replaced_before_use(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart of the server (here: every pooled connection terminated) costs no request an error."""
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.2)
    with db.session() as first, db.session() as second:  # two pooled connections
        pids = [s.execute(text("SELECT pg_backend_pid()")).scalar_one() for s in (first, second)]
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as other:  # not the pool's
        for pid in pids:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.3)
    for _ in range(3):
        with db.session() as session:
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() not in pids


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_deadlock_victim_is_run_again(db: Database) -> None:
    # given (PostgreSQL: real row locks) two rows, and two calls that update them in opposite orders,
    # each holding its first row until the other has taken its own
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE deadlocked (id integer PRIMARY KEY, v integer NOT NULL)"))
        conn.execute(text("INSERT INTO deadlocked VALUES (1, 0), (2, 0)"))
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts: list[int] = []

    def update(session: Any, first: int, second: int) -> None:
        attempts.append(first)
        session.execute(text("UPDATE deadlocked SET v = v + 1 WHERE id = :id"), {"id": first})
        if attempts.count(first) == 1:  # the first attempt waits for the other's first lock: a deadlock
            both_hold_one.wait()
        session.execute(text("UPDATE deadlocked SET v = v + 1 WHERE id = :id"), {"id": second})

    # when both run at once
    try:
        with ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(db.call, update, 1, 2), pool.submit(db.call, update, 2, 1)]
            for call in calls:
                call.result(timeout=60)  # then neither fails: PostgreSQL's victim was run again

        # and each update happened exactly once per call that committed
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT v FROM deadlocked ORDER BY id")).scalars().all() == [2, 2]
        assert len(attempts) == 3
    finally:  # the database is the other tests' too (the migrations' check compares its tables)
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE deadlocked"))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_steady_concurrency_of_every_write_thread_reuses_its_connections(db: Database) -> None:
    """As many sessions at once as the write lane has threads, again and again: after the first round
    no connection is opened (before, the pool kept 10 and closed the rest after each use, so every
    round past the tenth session started a new PostgreSQL backend)."""
    from sqlalchemy import event

    opened: list[object] = []
    event.listen(db.engine, "connect", lambda conn, _record: opened.append(conn))
    threads = db.settings.capacity_write_threads + db.settings.capacity_read_slots
    together = threading.Barrier(threads)

    def hold() -> int:
        with db.session() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            together.wait(timeout=10)  # every session holds its connection at the same time
            return int(pid)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        first = set(pool.map(lambda _: hold(), range(threads)))
        after_first = len(opened)
        later = [set(pool.map(lambda _: hold(), range(threads))) for _ in range(3)]
    assert len(first) == threads
    assert len(opened) == after_first  # no connection opened after the first round
    assert all(pids == first for pids in later)  # the same backends served every round
