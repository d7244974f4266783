"""A PostgreSQL demo world for the compiled path, built once per module, and the spies that tell
which path answered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from oro_graph import demo
from oro_graph.app import create_app
from oro_graph.graphql.sqlcompile import executor
from oro_graph.models import AgentVersion
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.conftest import _truncate_all

WORLD = {"seed": 11, "miners": 25, "validators": 8, "runs": 500}


@dataclass
class Graph:
    """One app over the world; ``post`` answers the same request compiled or executed."""

    client: TestClient
    runtime: Runtime

    def post(self, document: str, variables: dict[str, Any] | None = None, *, compiled: bool) -> bytes:
        saved = executor.ENABLED
        executor.ENABLED = compiled
        try:
            response = self.client.post("/graphql", json={"query": document, "variables": variables or {}})
        finally:
            executor.ENABLED = saved
        assert response.status_code == 200, response.text
        return response.content


def settings_for(url: str, tmp: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=url,
        data_dir=tmp / "state",
        secret_key="test-secret-key",
        public_base_url="http://testserver",
        race_scheduler=False,
        require_inference_credential=False,
        response_cache=False,  # each request computes: the two paths are compared, not the cache
        rate_limit_per_minute=1_000_000,
        **overrides,
    )


def _edit_world(runtime: Runtime) -> None:
    """What the demo does not guarantee: a running race, score ties, integral floats, whole seconds."""
    with runtime.db.engine.begin() as conn:
        race = conn.execute(text("SELECT id FROM race ORDER BY race_number DESC LIMIT 1")).scalar_one()
        conn.execute(text("UPDATE race SET status = 'RACE_RUNNING' WHERE id = :id"), {"id": race})
        board = (
            conn.execute(
                text(
                    "SELECT v.id FROM agentversion v JOIN suite s ON s.id = v.suite_id AND s.is_active "
                    "WHERE v.state = 'ELIGIBLE' ORDER BY v.final_score DESC, v.eligible_at, v.id"
                )
            )
            .scalars()
            .all()
        )
        # ties on the score (eligibility breaks them), a perfect score, a zero score
        conn.execute(
            text("UPDATE agentversion SET final_score = 0.5 WHERE id = ANY(:ids)"), {"ids": board[3:6]}
        )
        conn.execute(text("UPDATE agentversion SET final_score = 1.0 WHERE id = :id"), {"id": board[0]})
        conn.execute(text("UPDATE agentversion SET final_score = 0 WHERE id = :id"), {"id": board[-1]})
        # runs claimed at the same instant (the id breaks the tie) and whole-second instants
        runs = conn.execute(
            text(
                "SELECT id, agent_version_id FROM evaluationrun "
                "WHERE agent_version_id = :v ORDER BY claimed_at"
            ),
            {"v": board[1]},
        ).all()
        if len(runs) >= 2:
            conn.execute(
                text(
                    "UPDATE evaluationrun SET claimed_at = date_trunc('second', now() - interval '3 days'), "
                    "validator_score = 1 WHERE id = ANY(:ids)"
                ),
                {"ids": [r.id for r in runs[:2]]},
            )


@contextmanager
def built_world(url: str, tmp: Path, **overrides: Any) -> Iterator[Graph]:
    """An app over the demo world in the migrated, empty database at ``url``; on PostgreSQL with
    ``_edit_world``'s cases (its SQL is PostgreSQL's, and only PostgreSQL compiles)."""
    builder = Runtime.build(settings_for(url, tmp, **overrides))
    try:
        demo.generate(builder.db, builder.settings, **WORLD)
        if not builder.db.is_sqlite:
            _edit_world(builder)
        with builder.db.engine.connect() as conn:
            eligible_at = AgentVersion.__table__.c.eligible_at  # type: ignore[attr-defined]
            instants = (
                conn.execute(select(eligible_at).where(eligible_at.is_not(None)).order_by(eligible_at))
                .scalars()
                .all()
            )
    finally:
        builder.close()
    # The newest fifth of the eligible versions is not released yet (their agentVersion is null).
    newest = instants[len(instants) * 4 // 5]
    delay = int((datetime.now(UTC) - newest.replace(tzinfo=UTC)).total_seconds())
    settings = settings_for(url, tmp, code_release_delay_seconds=max(delay, 1), **overrides)
    runtime = Runtime.build(settings)
    try:
        yield Graph(TestClient(create_app(runtime.settings, runtime=runtime, migrate=False)), runtime)
    finally:
        if not runtime.db.is_sqlite:
            _truncate_all(runtime.db)
        runtime.close()


@pytest.fixture(scope="module")
def world(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    with built_world(pg_database, tmp_path_factory.mktemp("compiled")) as graph:
        yield graph


@pytest.fixture
def compiled_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per compiled statement run: whether it answered (else the executor did)."""
    seen: list[bool] = []
    real = executor.answer

    def spy(session: Any, compiled: Any) -> Any:
        data = real(session, compiled)
        seen.append(data is not None)
        return data

    monkeypatch.setattr(executor, "answer", spy)
    return seen


def parsed(body: bytes) -> Any:
    return json.loads(body)


def a_day_ago() -> datetime:
    return datetime.now(UTC) - timedelta(days=1)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The operation name of every statement the compiler builds from here on (an empty plan cache)."""
    built: list[str] = []
    real = executor.compile_operation

    def counting(*args: Any) -> Any:
        built.append(args[1].name.value)
        return real(*args)

    monkeypatch.setattr(executor, "PLANS", executor.Plans())
    monkeypatch.setattr(executor, "compile_operation", counting)
    return built
