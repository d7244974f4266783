"""Hand-written hostile requests beside the fuzzer: each answers a 4xx whose message says what is
wrong, and leaves every table (and the artifact store) exactly as it was."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from oro_graph.storage import LocalStorage
from tests.factories import AGENT_SOURCE, register
from tests.hardening.conftest import ErrorLog
from tests.hardening.support import dump_tables, signed
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded, seed

MiB = 1024 * 1024


@dataclass
class Target:
    server: LiveServer
    world: Seeded
    http: httpx.Client

    def post(self, path: str, signer: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**(signed(signer) if signer else {}), **kwargs.pop("headers", {})}
        return self.http.post(path, headers=headers, **kwargs)

    def run_path(self, action: str) -> str:
        return f"/v1/validator/evaluation-runs/{self.world.beta_run}/{action}"


@pytest.fixture
def target(serve: Callable[..., LiveServer]) -> Iterator[Target]:
    server = serve()
    world = seed(server.runtime)
    with server.http() as http:
        yield Target(server, world, http)


def artifact_files(server: LiveServer) -> list[str]:
    storage = server.runtime.storage
    assert isinstance(storage, LocalStorage)
    return sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file())


def refused(
    t: Target, send: Callable[[], httpx.Response], status: int | tuple[int, ...], *words: str
) -> dict[str, Any]:
    """Send it; the answer is the expected 4xx, names the problem, and nothing was written."""
    before, files = dump_tables(t.server.runtime.db), artifact_files(t.server)
    response = send()
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    text = response.text
    for word in words:
        assert word in text, (word, text[:500])
    assert dump_tables(t.server.runtime.db) == before
    assert artifact_files(t.server) == files
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else {}


def raw_json(document: str) -> dict[str, Any]:
    return {"content": document.encode(), "headers": {"content-type": "application/json"}}


# ---- sizes -----------------------------------------------------------------------------------


def test_a_10_mb_json_body_is_413_before_it_is_parsed(target: Target) -> None:
    body = {"terminal_status": "FAILED", "failure_reason": "x" * (10 * MiB)}
    refused(
        target,
        lambda: target.post(target.run_path("complete"), "Eve", json=body),
        413,
        "FILE_TOO_LARGE",
        "bytes this path accepts",
    )


def test_a_chunked_body_without_content_length_is_capped_too(target: Target) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"terminal_status": "FAILED", "failure_reason": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    refused(
        target,
        lambda: target.post(
            target.run_path("complete"), "Eve", content=chunks(), headers={"content-type": "application/json"}
        ),
        413,
        "FILE_TOO_LARGE",
    )


def test_an_agent_file_over_the_limit_is_413(target: Target) -> None:
    limit = target.server.runtime.settings.max_agent_bytes
    big = b"x = 1\n" * (limit // 6 + 10)
    register(target.server.runtime, "Ferdie")  # Bob's cooldown would be refused before his file
    refused(
        target,
        lambda: target.post(
            "/v1/miner/submit", "Ferdie", data={"agent_name": "big"}, files={"file": ("a.py", big)}
        ),
        413,
        "FILE_TOO_LARGE",
    )


def test_oversized_headers_are_431(target: Target) -> None:
    refused(
        target,
        lambda: target.http.get("/v1/public/top", headers={"X-Padding": "a" * 100_000}),
        431,
        "request headers total",
    )
    refused(
        target,
        lambda: target.post(target.run_path("heartbeat"), "Eve", headers={"X-Nonce-Pad": "n" * 40_000}),
        431,
        "limit is",
    )


# Files that crash ``ast.parse`` itself: MemoryError (100 KB) and RecursionError (900 KB).
PARSER_BOMBS = {
    "MemoryError": b"-" * 100_000 + b"1",
    "RecursionError": b"x" + b"[0]" * 300_000,
}


def test_parser_bombs_are_400_invalid_file_and_start_no_cooldown(target: Target, error_log: ErrorLog) -> None:
    rt = target.server.runtime
    register(rt, "Ferdie")
    for name, bomb in PARSER_BOMBS.items():
        body = refused(
            target,
            lambda bomb=bomb: target.post(
                "/v1/miner/submit", "Ferdie", data={"agent_name": "bomb"}, files={"file": ("a.py", bomb)}
            ),
            400,
            "INVALID_FILE",
            "parse",
        )
        assert body["detail"].startswith("agent file"), (name, body)
    # The server process parsed neither: its worker processes did, and were replaced.
    assert rt.parser.restarts >= 2
    assert not error_log.messages()
    # No cooldown started: the same hotkey is accepted at once, by a fresh parser worker.
    ok = target.post(
        "/v1/miner/submit", "Ferdie", data={"agent_name": "fine"}, files={"file": ("a.py", AGENT_SOURCE)}
    )
    assert ok.status_code == 200 and ok.json()["admission_status"] == "ACCEPTED", ok.text


def test_a_miner_in_its_cooldown_gets_no_parse(target: Target) -> None:
    rt = target.server.runtime
    checked = rt.parser.checks
    # Bob submitted while seeding: his cooldown runs, so his bomb is refused before anything parses it.
    body = refused(
        target,
        lambda: target.post(
            "/v1/miner/submit",
            "Bob",
            data={"agent_name": "bomb"},
            files={"file": ("a.py", PARSER_BOMBS["RecursionError"])},
        ),
        429,
        "COOLDOWN_ACTIVE",
    )
    assert body["remaining_seconds"] > 0
    assert rt.parser.checks == checked


# ---- encodings and content types -------------------------------------------------------------


def test_wrong_content_types_are_422(target: Target) -> None:
    refused(
        target,
        lambda: target.post(
            target.run_path("complete"),
            "Eve",
            content=b'{"terminal_status": "FAILED"}',
            headers={"content-type": "text/plain"},
        ),
        422,
        "valid dictionary",
    )
    refused(
        target,
        lambda: target.post("/v1/miner/submit", "Bob", json={"agent_name": "x", "file": "print(1)"}),
        422,
        "Field required",
    )


def test_a_body_that_is_not_utf8_is_422_saying_so(target: Target) -> None:
    def send() -> httpx.Response:
        return target.post(
            "/v1/miner/chutes-auth",
            "Alice",
            content=b'{"refresh_token": "\xff\xfe"}',
            headers={"content-type": "application/json"},
        )

    body = refused(target, send, 422, "not valid UTF-8")
    assert body["error_code"] == "VALIDATION_ERROR"


def test_truncated_multipart_is_a_4xx(target: Target) -> None:
    boundary = "oroboundary"
    whole = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="agent_name"\r\n\r\ncut\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.py"\r\n'
        "Content-Type: text/x-python\r\n\r\nprint('hi')\n"
    ).encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    # cut inside the file part, then inside a part header
    for cut in (whole, whole[: whole.index(b"filename")]):
        refused(
            target,
            lambda cut=cut: target.post("/v1/miner/submit", "Bob", content=cut, headers=headers),
            (400, 422),
            "detail",
        )


def test_non_utf8_and_nul_agent_files_are_invalid_file(target: Target) -> None:
    register(target.server.runtime, "Ferdie")  # Bob's cooldown would be refused before his file
    for content, words in ((b"print('\xff\xfe')\n", "UTF-8"), (b"x = 1\x00\n", "NUL")):
        body = refused(
            target,
            lambda content=content: target.post(
                "/v1/miner/submit",
                "Ferdie",
                data={"agent_name": "hostile"},
                files={"file": ("a.py", content)},
            ),
            400,
            words,
        )
        assert body["error_code"] == "INVALID_FILE"


def test_nul_bytes_in_text_are_refused(target: Target) -> None:
    if (
        not target.server.runtime.db.is_sqlite
    ):  # SQLite stores and compares NUL; PostgreSQL text cannot hold it
        refused(
            target, lambda: target.http.get("/v1/public/leaderboard", params={"q": "al\x00pha"}), 422, "NUL"
        )
        complete = {"terminal_status": "FAILED", "failure_reason": "a\x00b"}
        refused(
            target, lambda: target.post(target.run_path("complete"), "Eve", json=complete), (400, 422), "NUL"
        )
    refused(
        target,
        lambda: target.post(
            "/v1/miner/submit", "Bob", data={"agent_name": "a\x00b"}, files={"file": ("a.py", b"x = 1\n")}
        ),
        400,
        "INVALID_AGENT_NAME",
    )
    presign = {
        "content_length": 10,
        "eval_run_id": str(target.world.beta_run),
        "problem_id": str(target.world.problems[0].id),
        "content_type": "text/plain\r\nX-Evil: 1",
    }
    refused(
        target, lambda: target.post("/v1/validator/uploads/presign", "Eve", json=presign), 400, "media type"
    )


# ---- structure and numbers --------------------------------------------------------------------


def test_deeply_nested_json_is_422(target: Target) -> None:
    for depth in (40, 100_000):  # past our cap, and past the JSON parser's recursion limit
        document = (
            '{"terminal_status": "FAILED", "score_components": {"a": ' + "[" * depth + "]" * depth + "}}"
        )
        refused(
            target,
            lambda document=document: target.post(target.run_path("complete"), "Eve", **raw_json(document)),
            422,
            "deep" if depth == 40 else "recursion",
        )


def test_huge_integers_are_refused(target: Target) -> None:
    problem = str(target.world.problems[0].id)
    huge = 10**20
    refused(
        target,
        lambda: target.post(target.run_path("heartbeat"), "Eve", json={"docker_container_count": huge}),
        422,
        "cannot be stored",
    )
    refused(
        target,
        lambda: target.post(
            target.run_path("progress"),
            "Eve",
            json={"problems": [{"problem_id": problem, "status": "SUCCESS", "inference_total": huge}]},
        ),
        422,
        "cannot be stored",
    )
    for path in ("/v1/public/leaderboard", "/v1/public/evaluations/pending"):
        for offset in (huge, 2**63):  # 2^63 is the first integer no database compares
            body = refused(
                target, lambda path=path, offset=offset: target.http.get(path, params={"offset": offset}), 422
            )
            # the query parameter is to blame, not a body this GET does not have
            assert [e["loc"] for e in body["detail"]] == [["query", "offset"]], body
    refused(target, lambda: target.http.get(f"/v1/public/suites/{huge}/problems"), 404, "SUITE_NOT_FOUND")
    refused(
        target,
        lambda: target.post(
            "/v1/validator/uploads/presign",
            "Eve",
            json={"content_length": 10**30, "eval_run_id": str(target.world.beta_run), "problem_id": problem},
        ),
        400,
        "FILE_TOO_LARGE",
    )


@pytest.mark.parametrize("score", ["-0.1", "1.5", "NaN", "Infinity", "-Infinity", "1e400"])
def test_scores_outside_0_1_or_not_finite_are_refused(target: Target, score: str) -> None:
    problem = str(target.world.problems[0].id)
    complete = f'{{"terminal_status": "SUCCESS", "validator_score": {score}}}'
    refused(
        target,
        lambda: target.post(target.run_path("complete"), "Eve", **raw_json(complete)),
        (400, 422),
        "between 0 and 1",
    )
    progress = f'{{"problems": [{{"problem_id": "{problem}", "status": "SUCCESS", "score": {score}}}]}}'
    refused(
        target,
        lambda: target.post(target.run_path("progress"), "Eve", **raw_json(progress)),
        422,
        "between 0 and 1",
    )


def test_unknown_enum_values_are_refused(target: Target) -> None:
    problem = str(target.world.problems[0].id)
    refused(
        target,
        lambda: target.post(target.run_path("complete"), "Eve", json={"terminal_status": "DONE"}),
        422,
        "SUCCESS",
    )
    refused(
        target,
        lambda: target.post(
            target.run_path("progress"),
            "Eve",
            json={"problems": [{"problem_id": problem, "status": "WINNING"}]},
        ),
        422,
        "PENDING",
    )
    body = {"artifact_type": "SECRETS", "agent_version_id": str(target.world.alpha)}
    refused(
        target,
        lambda: target.post("/v1/public/artifacts/download-url", json=body),
        400,
        "INVALID_ARTIFACT_TYPE",
        "AGENT_CODE",
    )


def test_ids_that_are_not_uuids_are_422(target: Target) -> None:
    for path in (
        "/v1/public/agent-versions/not-a-uuid",
        "/v1/public/agent-versions/1/status",
        "/v1/public/evaluation-runs/' OR 1=1 --",
        "/v1/public/agent-versions/%00/runs",
    ):
        refused(target, lambda path=path: target.http.get(path), 422, "UUID")
    refused(target, lambda: target.post("/v1/validator/evaluation-runs/../heartbeat", "Eve"), (404, 405, 422))
    refused(
        target,
        lambda: target.post(
            "/v1/validator/uploads/presign",
            "Eve",
            json={"content_length": 1, "eval_run_id": "x", "problem_id": "y"},
        ),
        422,
        "UUID",
    )


# ---- path traversal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "runs/{run}/../../secret_key",
        "runs/{run}/..",
        "runs/{run}/a\\..\\b",
        "runs/{run}/%2e%2e/x",
    ],
)
def test_traversal_in_artifact_keys_is_refused(target: Target, key: str) -> None:
    key = key.format(run=target.world.beta_run)
    problem = str(target.world.problems[0].id)
    progress = {"problems": [{"problem_id": problem, "status": "SUCCESS", "score": 0.5, "logs_s3_key": key}]}
    refused(
        target, lambda: target.post(target.run_path("progress"), "Eve", json=progress), 422, "artifact key"
    )
    complete = {"terminal_status": "FAILED", "results_s3_key": key}
    refused(
        target, lambda: target.post(target.run_path("complete"), "Eve", json=complete), 400, "results_s3_key"
    )


def test_traversal_in_signed_url_paths_is_refused_even_when_signed(target: Target) -> None:
    storage = target.server.runtime.storage
    assert isinstance(storage, LocalStorage)
    expires = 2_000_000_000
    for key in ("../secret_key", "..%2Fsecret_key", "%2e%2e/%2e%2e/etc/passwd", "runs/../../secret_key"):
        plain = httpx.URL(key).path if "%" in key else key
        signature = storage.signature("GET", plain, expires)
        url = f"/artifacts/{key}?expires={expires}&signature={signature}"
        response = refused(target, lambda url=url: target.http.get(url), (400, 403, 404, 422))
        assert "secret" not in json.dumps(response).lower() or "invalid artifact key" in json.dumps(response)
    put = f"/artifacts/../x?expires={expires}&signature=00&max_bytes=10"
    refused(target, lambda: target.http.put(put, content=b"0123456789"), (400, 403, 404, 422))


def test_a_foreign_run_prefix_is_refused(target: Target) -> None:
    other = uuid.uuid4()
    complete = {"terminal_status": "FAILED", "results_s3_key": f"runs/{other}/logs"}
    refused(
        target,
        lambda: target.post(target.run_path("complete"), "Eve", json=complete),
        400,
        "must be a key under",
    )
