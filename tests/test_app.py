"""The assembled app: health, the lease sweeper running in the background with real time."""

import gc
import os
import time

from fastapi.testclient import TestClient
from sqlmodel import select

from oro_graph.app import create_app
from oro_graph.models import EvaluationRun, RunStatus, WorkItem
from oro_graph.runtime import Runtime
from tests.factories import claim, make_world, submit


def test_health_reports_database(runtime):
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_health_is_503_when_database_is_gone(settings, tmp_path):
    broken = settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    app = create_app(runtime=Runtime.build(broken), migrate=False)
    with TestClient(app) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_agent_file_parsers_stop_with_the_app(settings):
    # given an app whose parser pool has started its worker processes
    app = create_app(settings, migrate=False)
    parser = app.state.runtime.parser
    with TestClient(app):
        parser.check("x = 1\n")
        pids = parser.pids()
        assert pids and all(_running(pid) for pid in pids)
    # when the app shut down, then none of them runs on (nor lingers unreaped)
    assert not any(_running(pid) for pid in pids)
    assert parser.pids() == []


def test_vanished_validator_lease_is_swept_in_real_time(runtime):
    # given a one-second lease and a sweeper ticking every 0.2 s
    runtime.settings = runtime.settings.model_copy(update={"lease_seconds": 1, "lease_sweep_seconds": 0.2})
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    # when the validator never heartbeats
    with TestClient(create_app(runtime=runtime, migrate=False)):
        deadline = time.time() + 120  # a loaded machine: the sweep comes late, never wrong
        status = None
        while time.time() < deadline:
            with runtime.db.session() as s:
                status = s.exec(select(EvaluationRun.status).where(EvaluationRun.id == c.run.id)).one()
            if status == RunStatus.STALE:
                break
            time.sleep(0.2)
    # then the sweeper marked it STALE and another validator gets the work
    assert status == RunStatus.STALE
    again = claim(runtime, world.validators[1])
    assert again is not None and again.run.agent_version_id == c.run.agent_version_id
    with runtime.db.session() as s:
        work = s.exec(select(WorkItem).where(WorkItem.id == c.run.work_item_id)).one()
    assert work.active_runs == 1  # the stale lease gave its slot back


def test_the_served_app_keeps_what_it_built_out_of_full_garbage_collections(settings, monkeypatch):
    # given the environment `oro-graph serve` passes to its processes
    from oro_graph.app import main_app

    monkeypatch.setenv("ORO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORO_DATA_DIR", str(settings.data_dir))
    gc.unfreeze()
    try:
        # when
        main_app()

        # then the modules, the schema and the runtime are frozen out of the collector's passes
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
