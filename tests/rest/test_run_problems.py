"""GET /v1/validator/evaluation-runs/{id}/problems: the whole problems of a run, for its lease holder only.

A real suite (four problems of ``problem_suite_v3.json``, one per category and two with a voucher,
verbatim) is imported with ``oro-graph suites import``; the validator holding a run gets each problem's
whole JSON, answers included, through the official client (both generations); every other caller gets
the client's typed EVAL_RUN_NOT_FOUND, and no public answer (REST or the graph) shows an answer.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import update
from typer.testing import CliRunner

from oro_graph.cli import app as cli
from oro_graph.models import EvaluationRun, Role, utcnow
from tests.factories import AGENT_SOURCE, register
from tests.rest.live import LiveServer
from tests.rest.seed import agent_file
from tests.sdk_compat import api, claim_body, heartbeat_body, model

pytestmark = pytest.mark.sdk1050

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "problem_suite_v3_sample.json"
ITEMS: list[dict[str, Any]] = json.loads(SAMPLE.read_bytes())

claim_work = api("validator", "claim_work")
get_run_problems = api("validator", "get_run_problems")
complete_run = api("validator", "complete_run")
heartbeat = api("validator", "heartbeat")
submit_agent = api("miner", "submit_agent")


def secrets() -> list[str]:
    """Strings only a problem's answer holds: product ids and titles of rewards, voucher prices."""
    out: list[str] = []
    for item in ITEMS:
        rewards = item["reward"] if isinstance(item["reward"], list) else [item["reward"]]
        for reward in rewards:
            out.append(json.dumps(reward["product_id"]))
            out += [json.dumps(title)[1:-1] for title in reward.get("title", [])]
        if "voucher" in item:
            out.append("price_after_voucher")
    out.append("reward_title_embeddings")
    return out


@pytest.fixture
def imported(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """The operator imports the suite file with the CLI, into the database the server uses."""
    settings = server.runtime.settings
    monkeypatch.setenv("ORO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORO_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(cli, ["suites", "import", str(SAMPLE), "--activate"])
    assert result.exit_code == 0 and "4 problems" in result.output, result.output
    register(server.runtime, "Alice")
    for name in ("Charlie", "Dave", "Eve"):
        register(server.runtime, name, Role.VALIDATOR)
    admission = submit_agent.sync(client=server.signed("Alice"), body=agent_file("alpha"))
    assert admission.admission_status == "ACCEPTED"
    return server


def claim(server: LiveServer, validator: str) -> Any:
    claimed = claim_work.sync(client=server.signed(validator), body=claim_body())
    assert isinstance(claimed, model("ClaimWorkResponse")), claimed
    # neither client has a field for the code's hash: the downloaded bytes are the submitted file
    assert httpx.get(claimed.code_download_url).content == AGENT_SOURCE
    return claimed


def refused(response: Any) -> str:
    """The answer is the client's typed EVAL_RUN_NOT_FOUND; its detail."""
    assert response.status_code == 404, response.content
    assert isinstance(response.parsed, model("EvalRunNotFoundError")), response.parsed
    assert response.parsed.error_code == "EVAL_RUN_NOT_FOUND"
    return str(response.parsed.detail)


def test_the_lease_holder_gets_every_problem_whole(imported: LiveServer) -> None:
    server = imported
    claimed = claim(server, "Charlie")
    answer = get_run_problems.sync_detailed(claimed.eval_run_id, client=server.signed("Charlie"))
    assert answer.status_code == 200, answer.content
    problems = answer.parsed.problems
    assert [type(p.problem_id) for p in problems] == [uuid.UUID] * len(ITEMS)
    assert len({p.problem_id for p in problems}) == len(ITEMS)
    suite_id = json.loads(answer.content)["problems"][0]["suite_id"]
    assert all(p.suite_id == suite_id for p in problems)
    # metadata is each problem of the file exactly, in file order: rewards, vouchers, embeddings included
    assert [p.metadata.to_dict() for p in problems] == ITEMS
    assert [p for p in json.loads(answer.content)["problems"] if "voucher" in p["metadata"]]
    # an answer to a signed request is never cacheable
    assert "etag" not in answer.headers and "public" not in answer.headers.get("cache-control", "")
    # and the ids are those the run's progress is reported under
    update = api("validator", "update_progress")
    entry = model("ProblemProgressUpdate")(
        problem_id=problems[3].problem_id, status=model("ProblemStatus").SUCCESS, score=0.5
    )
    body = model("ProgressUpdateRequest")(problems=[entry])
    assert update.sync(claimed.eval_run_id, client=server.signed("Charlie"), body=body).accepted is True


def test_every_other_caller_is_told_the_run_is_not_found(imported: LiveServer) -> None:
    server = imported
    mine, theirs = claim(server, "Charlie"), claim(server, "Dave")
    charlie = server.signed("Charlie")
    # another validator's run, and a run that does not exist
    assert "another validator" in refused(get_run_problems.sync_detailed(theirs.eval_run_id, client=charlie))
    assert "does not exist" in refused(get_run_problems.sync_detailed(uuid.uuid4(), client=charlie))
    # a lease past its end (not swept yet), then swept to STALE
    stmt = (
        update(EvaluationRun)
        .where(EvaluationRun.id == mine.eval_run_id)
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    server.runtime.db.call(lambda s: s.exec(stmt))
    assert "lapsed" in refused(get_run_problems.sync_detailed(mine.eval_run_id, client=charlie))
    beat = heartbeat.sync_detailed(mine.eval_run_id, client=charlie, body=heartbeat_body())
    assert beat.status_code == 409 and isinstance(beat.parsed, model("LeaseExpiredError"))
    # a finished run
    done = complete_run.sync(
        theirs.eval_run_id,
        client=server.signed("Dave"),
        body=model("CompleteRunRequest")(
            terminal_status=model("TerminalStatus").FAILED, failure_reason="sandbox crashed"
        ),
    )
    assert done.status == "FAILED"
    assert "complete" in refused(
        get_run_problems.sync_detailed(theirs.eval_run_id, client=server.signed("Dave"))
    )
    # signature and role failures keep 401 and 403
    with server.http() as http:
        unsigned = http.get(f"/v1/validator/evaluation-runs/{theirs.eval_run_id}/problems")
    assert unsigned.status_code == 401 and unsigned.json()["error_code"] == "UNAUTHENTICATED"
    miner = get_run_problems.sync_detailed(theirs.eval_run_id, client=server.signed("Alice"))
    assert miner.status_code == 403 and json.loads(miner.content)["error_code"] == "FORBIDDEN"


def test_public_answers_never_show_a_problems_answer(imported: LiveServer) -> None:
    server = imported
    claimed = claim(server, "Charlie")
    suite_id = (
        get_run_problems.sync(claimed.eval_run_id, client=server.signed("Charlie")).problems[0].suite_id
    )
    problems = (
        "problems(first: 100) { edges { node { id problemId title category difficulty query metadata } } }"
    )
    graph = {"query": f'{{ suite(id: "{suite_id}") {{ {problems} }} currentSuite {{ {problems} }} }}'}
    with server.http() as http:
        answers = [
            http.get(f"/v1/public/suites/{suite_id}/problems", params={"include_embeddings": "true"}),
            http.get("/v1/public/suites/current"),
            http.get(f"/v1/public/agent-versions/{claimed.agent_version_id}/problems"),
            http.post("/graphql", json=graph),
        ]
    assert all(a.status_code == 200 for a in answers), [a.text[:300] for a in answers]
    assert "errors" not in answers[-1].json(), answers[-1].text
    public = "".join(a.text for a in answers)
    assert ITEMS[0]["query"] in public  # the question is public, its answer is not
    leaked = [s for s in secrets() if s in public]
    assert not leaked, leaked
