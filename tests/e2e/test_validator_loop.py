"""The stock validator's whole loop against this server, through the official client only (oro-sdk 7.0.2
here, 1.0.50 again under ``scripts/test``), on SQLite and PostgreSQL, with a real OAuth token server
on loopback minting the inference tokens.

It plays the public ORO validator as it runs: claim with its service versions and machine metrics (a
run, an inference token, a code URL), download the code and compare it with the submitted file, fetch
the run's problems whole, heartbeat from a background thread, report progress per problem in batches,
upload a log per problem through its presigned URL, complete with score components. Three validators
do so; the version becomes eligible, tops the leaderboard and is the top agent (no race has run).
Then the unhappy paths: no credential, a revoked refresh token, the provider down, two server
processes refreshing one credential, a lease that lapses mid-run, another validator's problems.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oro_graph.models import Role
from oro_graph.services import evaluations, suites
from tests.factories import AGENT_SOURCE, register
from tests.rest.live import LiveServer, wallet
from tests.rest.seed import agent_file
from tests.sdk_compat import SDK_1050, api, claim_body, heartbeat_body, model, wire
from tests.support.oauth import BASE_URL, TokenServer

pytestmark = pytest.mark.sdk1050

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "problem_suite_v3_sample.json"
VALIDATORS = ("Charlie", "Dave", "Eve")
SCORES = {"Charlie": 0.75, "Dave": 0.5, "Eve": 1.0}

claim_work = api("validator", "claim_work")
get_run_problems = api("validator", "get_run_problems")
heartbeat = api("validator", "heartbeat")
update_progress = api("validator", "update_progress")
presign_upload = api("validator", "presign_upload")
complete_run = api("validator", "complete_run")
submit_agent = api("miner", "submit_agent")
store_chutes_token = api("miner", "store_chutes_token")
get_owned_status = api("miner", "get_owned_agent_version_status")
get_leaderboard = api("public", "get_leaderboard")
get_top_agent = api("public", "get_top_agent")


@pytest.fixture
def world(serve: Callable[..., LiveServer], oauth_server: TokenServer) -> Iterator[LiveServer]:
    """A live server pointed at the token server; the operator's suite (a real one) and registry."""
    server = serve(**oauth_server.settings_overrides(required_successes=3))
    rt = server.runtime
    rt.db.call(suites.import_suite, SAMPLE.read_bytes(), activate=True)
    for name in ("Alice", "Bob"):
        register(rt, name)
    for name in VALIDATORS:
        register(rt, name, Role.VALIDATOR)
    yield server


def store_token(server: LiveServer, miner: str, oauth: TokenServer) -> str:
    """The miner stores its Chutes refresh token through its own client."""
    token = oauth.issue_refresh_token()
    body = model("StoreChutesTokenRequest")(refresh_token=token)
    assert store_chutes_token.sync_detailed(client=server.signed(miner), body=body).status_code == 200
    return token


def submit(server: LiveServer, miner: str, name: str) -> Any:
    admission = submit_agent.sync(client=server.signed(miner), body=agent_file(name))
    assert admission.admission_status == "ACCEPTED", admission
    return admission.agent_version_id


def claim(server: LiveServer, validator: str) -> Any:
    response = claim_work.sync_detailed(client=server.signed(validator), body=claim_body())
    return response


def token_of(claimed: Any) -> str:
    """The access token as this client generation reads it (and the other name on the wire)."""
    if SDK_1050:
        return str(claimed.chutes_access_token)
    grant = claimed.inference_token
    assert (grant.provider, grant.base_url) == ("chutes", BASE_URL)
    assert grant.expires_at > claimed.lease_expires_at  # it outlives the lease
    assert wire(claimed, "chutes_access_token") == grant.access_token
    return str(grant.access_token)


class Heartbeats:
    """The validator's heartbeat thread: beats until stopped, remembering every answer."""

    def __init__(self, server: LiveServer, validator: str, run_id: Any) -> None:
        self.client = server.signed(validator)
        self.run_id, self.answers = run_id, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.is_set():
            answer = heartbeat.sync_detailed(self.run_id, client=self.client, body=heartbeat_body())
            self.answers.append(answer.status_code)
            self._stop.wait(0.2)

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)  # its first beat may take long on a loaded machine


def run_agent(server: LiveServer, validator: str, claimed: Any) -> Any:
    """What the validator does with a claim, up to its completion."""
    client = server.signed(validator)
    assert httpx.get(claimed.code_download_url).content == AGENT_SOURCE  # no hash field: compare bytes
    problems = get_run_problems.sync(claimed.eval_run_id, client=client).problems
    score = SCORES[validator]
    with Heartbeats(server, validator, claimed.eval_run_id) as beats:
        for batch in (problems[:2], problems[2:]):  # progress in batches, a log uploaded per problem
            updates = []
            for problem in batch:
                log = f"{validator} on {problem.problem_id}".encode()
                grant = presign_upload.sync(
                    client=client,
                    body=model("PresignUploadRequest")(
                        content_length=len(log),
                        eval_run_id=claimed.eval_run_id,
                        problem_id=problem.problem_id,
                    ),
                )
                assert httpx.put(grant.upload_url, content=log).status_code == 200
                updates.append(
                    model("ProblemProgressUpdate")(
                        problem_id=problem.problem_id,
                        status=model("ProblemStatus").SUCCESS,
                        score=score,
                        logs_s3_key=grant.results_s3_key,
                        execution_time=1.5,
                    )
                )
            body = model("ProgressUpdateRequest")(problems=updates)
            assert update_progress.sync(claimed.eval_run_id, client=client, body=body).accepted is True
    assert beats.answers and set(beats.answers) == {200}  # stopped before completing, as the validator does
    components = model("CompleteRunRequestScoreComponentsType0").from_dict({"qa": score})
    done = complete_run.sync(
        claimed.eval_run_id,
        client=client,
        body=model("CompleteRunRequest")(
            terminal_status=model("TerminalStatus").SUCCESS,
            validator_score=score,
            score_components=components,
        ),
    )
    return problems, done


def test_the_validators_whole_loop(world: LiveServer, oauth_server: TokenServer) -> None:
    server = world
    store_token(server, "Alice", oauth_server)
    version = submit(server, "Alice", "alpha")
    tokens = []
    for validator in VALIDATORS:
        response = claim(server, validator)
        assert response.status_code == 200, response.content
        claimed = response.parsed
        assert claimed.agent_version_id == version
        tokens.append(token_of(claimed))
        problems, done = run_agent(server, validator, claimed)
        # the problems are whole: the answers the public paths hide are there for the lease holder
        assert len(problems) == 4 and all("reward" in p.metadata.to_dict() for p in problems)
        assert done.status == "SUCCESS"
    # each token was minted by the provider; the first refresh was the only one (cached after)
    assert set(tokens) <= set(oauth_server.issued_access) and oauth_server.calls.refresh == 1
    assert done.agent_version_became_eligible is True
    assert done.final_score == pytest.approx(sum(SCORES.values()) / 3)
    public = server.public()
    board = get_leaderboard.sync(client=public)
    assert [(e.rank, e.agent_version_id) for e in board.entries] == [(1, version)]
    top = get_top_agent.sync(client=public)
    assert (top.top_agent_version_id, top.top_miner_hotkey) == (version, wallet("Alice").hotkey.ss58_address)
    # no token, refresh token or answer reached a public answer
    text = (
        httpx.get(f"{server.base_url}/v1/public/leaderboard").text
        + httpx.get(f"{server.base_url}/v1/public/top").text
    )
    assert not any(token in text for token in tokens)


def test_a_version_without_a_credential_is_not_offered(world: LiveServer, oauth_server: TokenServer) -> None:
    server = world
    version = submit(server, "Bob", "bravo")
    assert claim(server, "Charlie").status_code == 204  # waiting, not a wasted run
    status = get_owned_status.sync(version, client=server.signed("Bob"))
    assert wire(status, "waiting_for_inference_credential") is True
    # once Bob stores a token, his version is offered
    store_token(server, "Bob", oauth_server)
    claimed = claim(server, "Charlie")
    assert claimed.status_code == 200 and claimed.parsed.agent_version_id == version


def test_a_revoked_refresh_token_releases_the_claim(world: LiveServer, oauth_server: TokenServer) -> None:
    server = world
    store_token(server, "Alice", oauth_server)
    version = submit(server, "Alice", "alpha")
    oauth_server.revoke_all()
    refused = claim(server, "Charlie")
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    # the run was released (no attempt counted) and the version now waits, saying why
    assert claim(server, "Dave").status_code == 204
    status = get_owned_status.sync(version, client=server.signed("Alice"))
    assert wire(status, "waiting_for_inference_credential") is True


def test_a_provider_that_is_down_costs_one_timeout(world: LiveServer, oauth_server: TokenServer) -> None:
    server = world
    store_token(server, "Alice", oauth_server)
    submit(server, "Alice", "alpha")
    oauth_server.hang()
    try:
        first = claim(server, "Charlie")
        calls = oauth_server.calls.total
        second = claim(server, "Dave")
        # both are told to come back; the second never reached the provider (the breaker answered)
        assert first.status_code == second.status_code == 503
        assert oauth_server.calls.total == calls == 1
    finally:
        oauth_server.recover()


def test_two_server_processes_refresh_one_credential_once(
    world: LiveServer,
    serve: Callable[..., LiveServer],
    oauth_server: TokenServer,
) -> None:
    other = serve(**oauth_server.settings_overrides(required_successes=3))  # its own runtime and pool
    store_token(world, "Alice", oauth_server)
    first = submit(world, "Alice", "alpha")
    oauth_server.delay = 0.5  # the refreshes would overlap
    answers: dict[str, Any] = {}

    def go(server: LiveServer, validator: str) -> None:
        answers[validator] = claim(server, validator)

    threads = [threading.Thread(target=go, args=(s, v)) for s, v in ((world, "Charlie"), (other, "Dave"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a.status_code for a in answers.values()} == {200}, answers
    assert {a.parsed.agent_version_id for a in answers.values()} == {first}
    assert oauth_server.calls.refresh == 1  # one provider call; the other got the cached token
    assert token_of(answers["Charlie"].parsed) == token_of(answers["Dave"].parsed)


def test_a_lapsed_lease_is_over_for_progress_and_completion(
    world: LiveServer, oauth_server: TokenServer
) -> None:
    server = world
    store_token(server, "Alice", oauth_server)
    submit(server, "Alice", "alpha")
    claimed = claim(server, "Charlie").parsed
    client = server.signed("Charlie")
    problems = get_run_problems.sync(claimed.eval_run_id, client=client).problems
    # the validator stalls past its lease; the sweeper marks the run STALE
    from datetime import timedelta

    from oro_graph.models import utcnow

    server.runtime.db.call(evaluations.expire_leases, now=utcnow() + timedelta(seconds=301))
    update = model("ProblemProgressUpdate")(
        problem_id=problems[0].problem_id, status=model("ProblemStatus").SUCCESS, score=0.5
    )
    progress = update_progress.sync_detailed(
        claimed.eval_run_id, client=client, body=model("ProgressUpdateRequest")(problems=[update])
    )
    assert progress.status_code == 409 and isinstance(progress.parsed, model("RunAlreadyCompleteError"))
    assert "lease" in progress.parsed.detail
    done = complete_run.sync_detailed(
        claimed.eval_run_id,
        client=client,
        body=model("CompleteRunRequest")(
            terminal_status=model("TerminalStatus").SUCCESS, validator_score=0.5
        ),
    )
    assert done.status_code == 409 and isinstance(done.parsed, model("RunAlreadyCompleteError"))
    # the validator's retry queue drops a 409 (it is final); a new claim gets the version again
    again = claim(server, "Dave")
    assert again.status_code == 200


def test_another_validators_run_problems_are_not_found(world: LiveServer, oauth_server: TokenServer) -> None:
    server = world
    store_token(server, "Alice", oauth_server)
    submit(server, "Alice", "alpha")
    claimed = claim(server, "Charlie").parsed
    theirs = get_run_problems.sync_detailed(claimed.eval_run_id, client=server.signed("Dave"))
    assert theirs.status_code == 404 and isinstance(theirs.parsed, model("EvalRunNotFoundError"))
