"""Group 4: every signed path refuses bad signatures, stale timestamps, replayed nonces (401) and
hotkeys that are unregistered, banned or of the wrong role (403), through the real client.

The one exception, because the client expects it: a correctly signed submission from an
unregistered or banned hotkey is a 200 REJECTED admission.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from bittensor_auth import generate_auth_headers
from oro_sdk.api.miner import (
    get_chutes_auth_status,
    get_owned_agent_version_status,
    list_agent_versions,
    list_miner_agents,
    store_chutes_token,
    submit_agent,
)
from oro_sdk.api.validator import (
    claim_work,
    complete_run,
    get_run_problems,
    heartbeat,
    presign_upload,
    update_progress,
)
from oro_sdk.models import (
    AdmissionReason,
    AdmissionStatus,
    CompleteRunRequest,
    PresignUploadRequest,
    ProblemProgressUpdate,
    ProblemStatus,
    ProgressUpdateRequest,
    StoreChutesTokenRequest,
    SubmitAgentResponse,
    TerminalStatus,
)
from oro_sdk.types import Response

from oro_graph.services import registry
from tests.rest.live import LiveServer, wallet
from tests.rest.seed import Seeded, agent_file, seed

Call = Callable[[Any], Response[Any]]


@pytest.fixture
def seeded(server: LiveServer) -> Seeded:
    return seed(server.runtime)


def miner_calls(s: Seeded) -> dict[str, Call]:
    return {
        "list_miner_agents": lambda c: list_miner_agents.sync_detailed(client=c),
        "list_agent_versions": lambda c: list_agent_versions.sync_detailed(s.alpha_agent, client=c),
        "get_owned_agent_version_status": lambda c: get_owned_agent_version_status.sync_detailed(
            s.alpha, client=c
        ),
        "store_chutes_token": lambda c: store_chutes_token.sync_detailed(
            client=c, body=StoreChutesTokenRequest(refresh_token="token")
        ),
        "get_chutes_auth_status": lambda c: get_chutes_auth_status.sync_detailed(client=c),
    }


def submit_call(c: Any) -> Response[Any]:
    return submit_agent.sync_detailed(client=c, body=agent_file("alpha"))


def validator_calls(s: Seeded) -> dict[str, Call]:
    problem = s.problems[0].id
    progress = ProgressUpdateRequest(
        problems=[ProblemProgressUpdate(problem_id=problem, status=ProblemStatus.RUNNING)]
    )
    return {
        "claim_work": lambda c: claim_work.sync_detailed(client=c),
        "get_run_problems": lambda c: get_run_problems.sync_detailed(s.beta_run, client=c),
        "heartbeat": lambda c: heartbeat.sync_detailed(s.beta_run, client=c),
        "update_progress": lambda c: update_progress.sync_detailed(s.beta_run, client=c, body=progress),
        "complete_run": lambda c: complete_run.sync_detailed(
            s.beta_run, client=c, body=CompleteRunRequest(terminal_status=TerminalStatus.FAILED)
        ),
        "presign_upload": lambda c: presign_upload.sync_detailed(
            client=c, body=PresignUploadRequest(content_length=10, eval_run_id=s.beta_run, problem_id=problem)
        ),
    }


def all_calls(s: Seeded) -> dict[str, Call]:
    return {"submit_agent": submit_call, **miner_calls(s), **validator_calls(s)}


def signer_for(path: str, s: Seeded) -> str:
    return "Eve" if path in validator_calls(s) else "Alice"


def assert_refused(response: Response[Any], status: int, code: str, path: str, words: str = "") -> None:
    assert response.status_code == status, (path, response.content)
    body = response.content.decode()
    assert f'"error_code":"{code}"' in body, (path, body)
    assert words in body, (path, body)


def test_unsigned_requests_are_401_on_every_signed_path(server: LiveServer, seeded: Seeded) -> None:
    calls = all_calls(seeded)
    assert len(calls) == 12
    for path, call in calls.items():
        assert_refused(call(server.public()), 401, "UNAUTHENTICATED", path, "missing authentication headers")


def test_bad_signatures_are_401(server: LiveServer, seeded: Seeded) -> None:
    for path, call in all_calls(seeded).items():
        name = signer_for(path, seeded)
        headers = generate_auth_headers(wallet("Bob" if name == "Alice" else "Dave").hotkey)
        headers["X-Hotkey"] = wallet(name).hotkey.ss58_address  # someone else's signature over this message
        assert_refused(call(server.public(headers)), 401, "UNAUTHENTICATED", path, "signature does not match")
        garbled = {**generate_auth_headers(wallet(name).hotkey), "X-Signature": "0xnot-hex"}
        assert_refused(call(server.public(garbled)), 401, "UNAUTHENTICATED", path, "hex")
        junk_key = {**generate_auth_headers(wallet(name).hotkey), "X-Hotkey": "not-an-ss58-address"}
        assert_refused(call(server.public(junk_key)), 401, "UNAUTHENTICATED", path, "SS58")


def test_stale_timestamps_are_401(server: LiveServer, seeded: Seeded) -> None:
    skew = server.runtime.settings.timestamp_skew_seconds
    for path, call in all_calls(seeded).items():
        keypair = wallet(signer_for(path, seeded)).hotkey
        for timestamp in (int(time.time()) - skew - 5, int(time.time()) + skew + 5):
            headers = generate_auth_headers(keypair, timestamp=timestamp)
            assert_refused(call(server.public(headers)), 401, "UNAUTHENTICATED", path, "allowed skew")


def test_replayed_nonces_are_401(server: LiveServer, seeded: Seeded) -> None:
    for path, call in all_calls(seeded).items():
        headers = generate_auth_headers(wallet(signer_for(path, seeded)).hotkey, nonce=uuid.uuid4().hex)
        first = call(server.public(headers))
        assert first.status_code not in (401, 403), (path, first.content)
        assert_refused(call(server.public(headers)), 401, "UNAUTHENTICATED", path, "nonce was already used")


def test_unregistered_hotkeys_are_403_and_their_submissions_rejected(
    server: LiveServer, seeded: Seeded
) -> None:
    stranger = server.signed("Ferdie")
    for path, call in {**miner_calls(seeded), **validator_calls(seeded)}.items():
        assert_refused(call(stranger), 403, "FORBIDDEN", path, "not registered")
    response = submit_call(stranger)
    assert response.status_code == 200 and isinstance(response.parsed, SubmitAgentResponse)
    assert response.parsed.admission_status == AdmissionStatus.REJECTED
    assert response.parsed.admission_reason == AdmissionReason.NOT_REGISTERED_ONCHAIN
    assert response.parsed.agent_version_id is None


def test_wrong_roles_are_403(server: LiveServer, seeded: Seeded) -> None:
    miner, validator = server.signed("Alice"), server.signed("Charlie")
    for path, call in {"submit_agent": submit_call, **miner_calls(seeded)}.items():
        assert_refused(call(validator), 403, "FORBIDDEN", path, "for miners")
    for path, call in validator_calls(seeded).items():
        assert_refused(call(miner), 403, "FORBIDDEN", path, "validator permit")


def test_banned_hotkeys_are_403_and_their_submissions_rejected(server: LiveServer, seeded: Seeded) -> None:
    for name in ("Alice", "Eve"):
        server.runtime.db.call(registry.set_banned, wallet(name).hotkey.ss58_address)
    for path, call in {**miner_calls(seeded), **validator_calls(seeded)}.items():
        assert_refused(call(server.signed(signer_for(path, seeded))), 403, "FORBIDDEN", path, "banned")
    response = submit_call(server.signed("Alice"))
    assert response.status_code == 200 and isinstance(response.parsed, SubmitAgentResponse)
    assert response.parsed.admission_reason == AdmissionReason.BANNED
