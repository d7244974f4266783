"""The benchmark's lean loop (``benchmarks.signedfloor.add_lean_routes``): the validator loop's four paths
answered by one raw SQL statement each, behind the same edge, signature and nonce. It is a bound on the
real loop only if it does the lifecycle's work and still spends each request's nonce: checked here."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from benchmarks.signedfloor import add_lean_routes
from oro_graph.app import create_app
from oro_graph.auth import sign_headers
from oro_graph.runtime import Runtime
from oro_graph.services import suites
from tests.factories import keypair, world_with_a_version


@pytest.mark.postgres  # the lean loop's statements are PostgreSQL's (the harness' raw lifecycle)
def test_the_lean_loop_does_a_validators_cycle_and_spends_each_nonce(pg_runtime: Runtime) -> None:
    rt = pg_runtime
    # given a version waiting for runs and a registered validator
    world = world_with_a_version(rt)
    problems = [str(p.id) for p in rt.db.call(suites.problems_for_suite, world.suite.id)[:3]]
    validator = keypair("Charlie")
    assert validator.ss58_address == world.validators[0]
    app = add_lean_routes(create_app(runtime=rt, migrate=False))

    with TestClient(app) as client:
        # when it goes through the loop's four calls on the real paths
        claimed = client.post("/v1/validator/work/claim", json={}, headers=sign_headers(validator))
        assert claimed.status_code == 200, claimed.text
        run = claimed.json()["eval_run_id"]
        base = f"/v1/validator/evaluation-runs/{run}"
        beat = sign_headers(validator)
        steps = [
            ("heartbeat", {"cpu_pct": 20.0}, beat),
            ("progress", {"problems": [{"problem_id": p, "status": "SUCCESS"} for p in problems]}, None),
            ("complete", {"terminal_status": "SUCCESS", "validator_score": 0.25}, None),
        ]
        for step, body, headers in steps:
            answer = client.post(f"{base}/{step}", json=body, headers=headers or sign_headers(validator))
            assert answer.status_code == 200, (step, answer.text)
        replayed = client.post(f"{base}/heartbeat", json={}, headers=beat)
        again = client.post("/v1/validator/work/claim", json={}, headers=sign_headers(validator))

    # then the run went the lifecycle's way, and a replayed signature was refused
    assert replayed.status_code == 401, replayed.text
    assert again.status_code == 204, again.text  # this validator has run the only version already
    with rt.db.engine.connect() as conn:
        status, score, results = conn.execute(
            text(
                "SELECT r.status, r.validator_score,"
                " (SELECT count(*) FROM problemresult p WHERE p.run_id = r.id)"
                " FROM evaluationrun r WHERE r.id = :run"
            ),
            {"run": run},
        ).one()
        work = conn.execute(text("SELECT included_successes, active_runs FROM workitem")).one()
    assert (status, score, results) == ("SUCCESS", 0.25, 3)
    assert tuple(work) == (1, 0)
    assert "/v1/validator/work/claim" in app.openapi()["paths"]  # the real route stays documented
