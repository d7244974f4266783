"""The signed-path matrix, extending tests/rest/test_auth.py (which checks the statuses through the
real client): here every cell must also change nothing at all (every table compared before and
after), the cells it lacks are added (each header missing on its own, a signature over another
message, timestamps exactly skew+1 s out, a validator acting on another's run, a miner reading
another's rows), a nonce replayed across two server processes sharing Redis is refused, and the
Chutes token is encrypted at rest and never answered or logged.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from oro_graph.auth import HEADER_NONCE, SIGNED_HEADERS, signing_message
from oro_graph.services import credentials, registry
from tests.factories import keypair, make_world
from tests.hardening.support import dump_tables, signed, start_servers
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded

Send = Callable[[httpx.Client, dict[str, str]], httpx.Response]


def signed_paths(s: Seeded) -> dict[str, tuple[str, Send]]:
    """Every signed path, with a request its rightful signer could make: path -> (signer, send)."""
    problem = str(s.problems[0].id)
    run = f"/v1/validator/evaluation-runs/{s.beta_run}"
    agent = {"data": {"agent_name": "matrix"}, "files": {"file": ("a.py", b"x = 1\n")}}
    return {
        "submit": ("Alice", lambda c, h: c.post("/v1/miner/submit", headers=h, **agent)),
        "agents": ("Alice", lambda c, h: c.get("/v1/miner/agents", headers=h)),
        "agent_versions": (
            "Alice",
            lambda c, h: c.get(f"/v1/miner/agents/{s.alpha_agent}/versions", headers=h),
        ),
        "owned_version": ("Alice", lambda c, h: c.get(f"/v1/miner/agent-versions/{s.alpha}", headers=h)),
        "chutes_store": (
            "Alice",
            lambda c, h: c.post("/v1/miner/chutes-auth", headers=h, json={"refresh_token": "t"}),
        ),
        "chutes_status": ("Alice", lambda c, h: c.get("/v1/miner/chutes-auth/status", headers=h)),
        "claim": ("Eve", lambda c, h: c.post("/v1/validator/work/claim", headers=h)),
        "heartbeat": ("Eve", lambda c, h: c.post(f"{run}/heartbeat", headers=h)),
        "progress": (
            "Eve",
            lambda c, h: c.post(
                f"{run}/progress",
                headers=h,
                json={"problems": [{"problem_id": problem, "status": "RUNNING"}]},
            ),
        ),
        "complete": (
            "Eve",
            lambda c, h: c.post(f"{run}/complete", headers=h, json={"terminal_status": "FAILED"}),
        ),
        "presign": (
            "Eve",
            lambda c, h: c.post(
                "/v1/validator/uploads/presign",
                headers=h,
                json={"content_length": 10, "eval_run_id": str(s.beta_run), "problem_id": problem},
            ),
        ),
    }


def _without(name: str) -> Callable[[str, int], dict[str, str]]:
    return lambda signer, skew: {k: v for k, v in signed(signer).items() if k != name}


def _other_message(signer: str, skew: int) -> dict[str, str]:
    """Signed by the right key, but over another nonce than the one sent."""
    headers = signed(signer)
    headers[HEADER_NONCE] = uuid.uuid4().hex
    return headers


def _wrong_key(signer: str, skew: int) -> dict[str, str]:
    """A valid signature of this exact message, by another key than the hotkey's."""
    headers = signed(signer)
    message = signing_message(headers["X-Hotkey"], headers["X-Timestamp"], headers["X-Nonce"])
    headers["X-Signature"] = "0x" + keypair("Mallory").sign(message.encode()).hex()
    return headers


# cell -> (headers for the path's signer, status, words in the answer)
AUTH_CELLS: dict[str, tuple[Callable[[str, int], dict[str, str]], int, str]] = {
    **{f"missing {name}": (_without(name), 401, name) for name in SIGNED_HEADERS},
    "signature over another message": (_other_message, 401, "signature does not match"),
    "wrong key for the hotkey": (_wrong_key, 401, "signature does not match"),
    "timestamp skew+1 s old": (
        lambda s, skew: signed(s, timestamp=math.floor(time.time()) - skew - 1),
        401,
        "allowed skew",
    ),
    "timestamp skew+1 s ahead": (
        lambda s, skew: signed(s, timestamp=math.ceil(time.time()) + skew + 1),
        401,
        "allowed skew",
    ),
}


def assert_unchanged(
    server: LiveServer, send: Callable[[], httpx.Response], status: int, words: str
) -> httpx.Response:
    before = dump_tables(server.runtime.db)
    response = send()
    assert response.status_code == status and words in response.text, (
        status,
        words,
        response.status_code,
        response.text[:300],
    )
    assert dump_tables(server.runtime.db) == before
    return response


def test_every_bad_signature_cell_is_401_and_changes_nothing(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    skew = server.runtime.settings.timestamp_skew_seconds
    paths = signed_paths(world)
    assert len(paths) == 11
    for cell, (make, status, words) in AUTH_CELLS.items():
        for path, (signer, send) in paths.items():
            response = assert_unchanged(
                server,
                lambda send=send, make=make, signer=signer: send(http, make(signer, skew)),
                status,
                words,
            )
            assert response.json()["error_code"] == "UNAUTHENTICATED", (cell, path)


def test_every_unauthorised_cell_is_403_and_changes_nothing(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    paths = signed_paths(world)
    miner_paths = {k: v for k, v in paths.items() if v[0] == "Alice" and k != "submit"}
    validator_paths = {k: v for k, v in paths.items() if v[0] == "Eve"}
    for _, send in {**miner_paths, **validator_paths}.values():
        assert_unchanged(server, lambda send=send: send(http, signed("Ferdie")), 403, "not registered")
    for _, send in miner_paths.values():
        assert_unchanged(server, lambda send=send: send(http, signed("Charlie")), 403, "for miners")
    for _, send in validator_paths.values():
        assert_unchanged(server, lambda send=send: send(http, signed("Bob")), 403, "validator permit")
    for name in ("Alice", "Eve"):
        server.runtime.db.call(registry.set_banned, keypair(name).ss58_address)
    for signer, send in {**miner_paths, **validator_paths}.values():
        assert_unchanged(server, lambda send=send, signer=signer: send(http, signed(signer)), 403, "banned")


def test_a_validator_cannot_act_on_another_validators_run(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    paths = signed_paths(world)
    for path in ("heartbeat", "progress", "complete", "presign"):
        response = assert_unchanged(
            server,
            lambda path=path: paths[path][1](http, signed("Charlie")),
            409,
            "belongs to another validator",
        )
        assert response.json()["error_code"] == "NOT_RUN_OWNER"


def test_a_miner_never_reads_another_miners_rows(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    for path in (f"/v1/miner/agents/{world.alpha_agent}/versions", f"/v1/miner/agent-versions/{world.alpha}"):
        response = assert_unchanged(
            server, lambda path=path: http.get(path, headers=signed("Bob")), 404, "NOT_FOUND"
        )
        assert world.alice not in response.text
    mine = http.get("/v1/miner/agents", headers=signed("Bob")).json()
    assert {a["agent_name"] for a in mine["agents"]} == {"beta"} and world.alice not in str(mine)


def test_a_replayed_nonce_changes_nothing_the_second_time(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    for path, (signer, send) in signed_paths(world).items():
        headers = signed(signer)
        first = send(http, headers)
        assert first.status_code < 500 and first.status_code not in (401, 403), (path, first.text)
        assert_unchanged(
            server, lambda send=send, headers=headers: send(http, headers), 401, "nonce was already used"
        )


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_nonce_replayed_on_another_server_process_is_refused(
    runtime: Any, database_url: str, process_redis: str, tmp_path: Path
) -> None:
    world = make_world(runtime)
    env = {
        "ORO_DATABASE_URL": database_url,
        "ORO_REDIS_URL": process_redis,
        "ORO_SECRET_KEY": "hardening",
        "ORO_DATA_DIR": str(tmp_path / "state"),
        "ORO_RATE_LIMIT_PER_MINUTE": "100000",
    }
    first, second = start_servers(2, env, tmp_path)
    try:
        for _ in range(5):
            headers = signed("Charlie")
            one = httpx.post(first.base_url + "/v1/validator/work/claim", headers=headers, timeout=10)
            assert one.status_code in (200, 204, 409), one.text
            before = dump_tables(runtime.db)
            replay = httpx.post(second.base_url + "/v1/validator/work/claim", headers=headers, timeout=10)
            assert replay.status_code == 401 and "nonce was already used" in replay.text
            assert dump_tables(runtime.db) == before
        assert world.validators and not first.tracebacks() and not second.tracebacks()
    finally:
        first.stop()
        second.stop()


def test_chutes_tokens_are_encrypted_at_rest_and_never_answered_or_logged(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    server, world, http = seeded_server
    token = f"chutes-refresh-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)  # every logger, and SQLAlchemy's statements with their parameters:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # (SQLAlchemy pins its own root at WARN)
    answers = [http.post("/v1/miner/chutes-auth", headers=signed("Alice"), json={"refresh_token": token})]
    answers += [
        http.get(path, headers=signed("Alice"))
        for path in (
            "/v1/miner/chutes-auth/status",
            "/v1/miner/agents",
            f"/v1/miner/agent-versions/{world.alpha}",
        )
    ]
    answers += [
        http.get(path)
        for path in (
            "/v1/public/validators",
            "/v1/public/leaderboard",
            f"/v1/public/agent-versions/{world.alpha}",
        )
    ]
    answers.append(
        http.post("/v1/miner/chutes-auth", headers=signed("Alice"), json={"refresh_token": token})
    )  # replace
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert answers[1].json()["connected"] is True
    for answer in answers:
        assert token not in answer.text and token not in str(answer.headers)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "INSERT INTO inferencecredential" in logged  # the statements were logged, with their parameters
    assert token not in logged
    with server.runtime.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM inferencecredential")).all()
    assert len(rows) == 1 and token.encode() not in repr(rows).encode()
    assert token not in str(dump_tables(server.runtime.db))
    revealed = server.runtime.db.call(
        credentials.reveal_credential, hotkey=world.alice, secret=server.runtime.settings.secret
    )
    assert revealed == token
