"""Rate limits: ORO_RATE_LIMIT_PER_MINUTE points per client (the hotkey of a fresh signature, else the
address) on every path, with the X-RateLimit-* headers on every answer; ORO_SUBMIT_RATE_LIMIT per
hotkey on submissions (where the cooldown answer wins) and ORO_WRITE_RATE_LIMIT per hotkey on every
other signed write; counters shared through Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from oro_sdk.api.miner import submit_agent
from oro_sdk.api.public import get_top_agent
from oro_sdk.models import AdmissionStatus, CooldownActiveError, RateLimitExceededError, SubmitAgentResponse

from oro_graph.auth import SignatureVerifier, sign_headers
from oro_graph.edge import ratelimit
from oro_graph.edge.ratelimit import RateLimits
from oro_graph.edge.ratestore import FailoverStorage
from oro_graph.settings import Settings
from tests.factories import keypair, make_world
from tests.rest.live import LiveServer, wallet
from tests.rest.seed import agent_file, seed


def assert_throttled(response: object, limit_word: str = "per minute") -> None:
    assert response.status_code == 429  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["error_code"] == "RATE_LIMIT_EXCEEDED" and limit_word in body["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60  # type: ignore[attr-defined]


def test_global_limit_covers_every_path_per_address(serve: Callable[..., LiveServer]) -> None:
    server = serve(rate_limit_per_minute=3)
    with server.http() as http:
        answers = [http.get(path) for path in ("/health", "/v1/public/validators", "/openapi.json")]
        assert [a.status_code for a in answers] == [200] * 3
        # every answer says what is left of the budget and when it resets
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
        assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"3"}
        assert all(0 < int(a.headers["X-RateLimit-Reset"]) - time.time() <= 61 for a in answers)
        for path in ("/health", "/v1/public/leaderboard", "/v1/miner/agents"):
            assert_throttled(http.get(path))
        # a forged signature naming Alice is still counted under the address (and refused)
        forged = {"X-Hotkey": wallet("Alice").hotkey.ss58_address, "X-Timestamp": str(int(time.time()))}
        forged |= {"X-Nonce": "n", "X-Signature": "0x" + "00" * 64}
        assert_throttled(http.post("/v1/miner/submit", headers=forged))
        # the graph answers its 429 in the GraphQL shape
        graph = http.post("/graphql", json={"query": "{ __typename }"})
        assert graph.status_code == 429 and graph.json()["data"] is None
        [error] = graph.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED" and "per minute" in error["message"]
        assert 1 <= int(graph.headers["Retry-After"]) <= 60 and graph.headers["X-RateLimit-Remaining"] == "0"
    assert get_top_agent.sync(client=server.public()) is None  # 429 is not a status /top documents
    # a signed request is charged to its hotkey, which has a budget of its own
    alice = server.signed("Alice")
    answers = [submit_agent.sync_detailed(client=alice, body=agent_file()) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    # and the client reads the refusal as its typed model where the path documents it
    assert isinstance(answers[3].parsed, RateLimitExceededError) and "this hotkey" in answers[3].parsed.detail


@pytest.fixture
def redis_prefix(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    prefix = f"oro:test-ratelimit:{uuid.uuid4().hex}"
    monkeypatch.setattr(ratelimit, "KEY_PREFIX", prefix)
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_global_limit_is_shared_by_servers_through_redis(
    serve: Callable[..., LiveServer], redis_url: str, redis_prefix: str
) -> None:
    # two servers (as two worker processes would be) sharing one Redis
    first, second = (
        serve(rate_limit_per_minute=4, redis_url=redis_url),
        serve(rate_limit_per_minute=4, redis_url=redis_url),
    )
    with first.http() as a, second.http() as b:
        assert [http.get("/health").status_code for http in (a, b, a, b)] == [200] * 4
        assert_throttled(a.get("/health"))
        assert_throttled(b.get("/health"))
    assert any(True for _ in redis.Redis.from_url(redis_url).scan_iter(f"{redis_prefix}*"))
    # each server asked Redis from its event loop (the lifespan's client), not from worker threads
    for server in (first, second):
        storage = server.runtime.rate_limits.storage  # type: ignore[union-attr]
        assert isinstance(storage, FailoverStorage) and storage.on_loop is not None
        assert storage.on_loop.answered == 3


def test_in_process_counters_are_per_server(serve: Callable[..., LiveServer]) -> None:
    first, second = serve(rate_limit_per_minute=2), serve(rate_limit_per_minute=2)
    with first.http() as a, second.http() as b:
        assert [a.get("/health").status_code for _ in range(2)] + [
            b.get("/health").status_code for _ in range(2)
        ] == [200] * 4
        assert_throttled(a.get("/health"))


def test_an_unreachable_redis_moves_the_counters_to_the_database(serve: Callable[..., LiveServer]) -> None:
    """Redis refuses: the budget still holds (counted in the database), and /health says Redis is
    degraded while serving."""
    server = serve(rate_limit_per_minute=2, redis_url="redis://127.0.0.1:9/0")
    with server.http() as http:
        first = http.get("/health")
        assert first.status_code == 200 and first.json()["redis"] == "degraded"
        assert http.get("/v1/public/validators").status_code == 200
        assert_throttled(http.get("/v1/public/validators"))


def test_submit_limit_per_hotkey(serve: Callable[..., LiveServer]) -> None:
    server = serve(submit_rate_limit="1/minute", submission_cooldown_seconds=0)
    make_world(server.runtime)
    alice = server.signed("Alice")
    first = submit_agent.sync(client=alice, body=agent_file("alpha"))
    assert isinstance(first, SubmitAgentResponse) and first.admission_status == AdmissionStatus.ACCEPTED
    # no cooldown runs, so the second within the minute is over the hotkey's limit
    second = submit_agent.sync_detailed(client=alice, body=agent_file("alpha"))
    assert second.status_code == 429 and isinstance(second.parsed, RateLimitExceededError)
    assert "this hotkey" in second.parsed.detail and 1 <= int(second.headers["Retry-After"]) <= 60
    # another miner has its own budget
    other = submit_agent.sync(client=server.signed("Bob"), body=agent_file("bravo"))
    assert isinstance(other, SubmitAgentResponse) and other.admission_status == AdmissionStatus.ACCEPTED


def test_cooldown_answer_wins_over_the_submit_limit(serve: Callable[..., LiveServer]) -> None:
    server = serve(submit_rate_limit="1/minute", submission_cooldown_seconds=3600)
    make_world(server.runtime)
    alice = server.signed("Alice")
    assert (
        submit_agent.sync(client=alice, body=agent_file("alpha")).admission_status == AdmissionStatus.ACCEPTED
    )
    response = submit_agent.sync_detailed(client=alice, body=agent_file("alpha"))
    assert response.status_code == 429 and isinstance(response.parsed, CooldownActiveError)
    assert 3500 < response.parsed.remaining_seconds <= 3600
    assert response.headers["Retry-After"] == str(response.parsed.remaining_seconds)


def test_a_bad_submit_limit_fails_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match="submit_rate_limit"):
        RateLimits.from_settings(Settings(**{**settings.model_dump(), "submit_rate_limit": "often"}))


def test_a_busy_event_loop_does_not_let_requests_through_uncounted(
    settings: Settings, redis_url: str, redis_prefix: str
) -> None:
    """A large GraphQL page can hold the event loop for most of a second. Counting must not time
    out because of that (a timeout there lets the request through uncounted)."""
    limits = RateLimits.from_settings(
        Settings(**{**settings.model_dump(), "redis_url": redis_url, "rate_limit_per_minute": 2})
    )

    async def hit_while_the_loop_is_held() -> int | None:
        pending = asyncio.ensure_future(limits.hit_client("203.0.113.9"))
        await asyncio.sleep(0)  # the request is on its way to Redis
        time.sleep(0.8)  # then the loop is held longer than the store's 0.5 s timeout
        return await pending

    answers = [asyncio.run(hit_while_the_loop_is_held()) for _ in range(3)]
    assert answers[:2] == [None, None]
    assert answers[2] is not None and 1 <= answers[2] <= 60


def test_every_signed_write_has_a_per_hotkey_budget(serve: Callable[..., LiveServer]) -> None:
    """ORO_WRITE_RATE_LIMIT holds per hotkey and per write, on REST and in the graph, before the
    write is attempted; another write, or another hotkey, has its own budget."""
    server = serve(write_rate_limit="2/minute")
    make_world(server.runtime)
    run = uuid.uuid4()
    writes = {
        "claim": ("post", "/v1/validator/work/claim", None),
        "heartbeat": ("post", f"/v1/validator/evaluation-runs/{run}/heartbeat", None),
        "progress": ("post", f"/v1/validator/evaluation-runs/{run}/progress", {"problems": []}),
        "complete": ("post", f"/v1/validator/evaluation-runs/{run}/complete", {"terminal_status": "FAILED"}),
        "presign": (
            "post",
            "/v1/validator/uploads/presign",
            {"eval_run_id": str(run), "problem_id": str(uuid.uuid4()), "content_length": 10},
        ),
    }
    with server.http() as http:
        for action, (method, path, body) in writes.items():
            answers = [
                http.request(method, path, json=body, headers=sign_headers(keypair("Charlie")))
                for _ in range(3)
            ]
            assert all(a.status_code != 429 for a in answers[:2]), (action, [a.text for a in answers])
            assert_throttled(answers[2], f"{action} requests from this hotkey")
            # another validator is not held back
            other = http.request(method, path, json=body, headers=sign_headers(keypair("Dave")))
            assert other.status_code != 429, (action, other.text)
        # a miner's credentials too
        token = {"refresh_token": "r" * 20}
        stored = [
            http.post("/v1/miner/chutes-auth", json=token, headers=sign_headers(keypair("Alice")))
            for _ in range(3)
        ]
        assert [a.status_code for a in stored[:2]] == [200, 200]
        assert_throttled(stored[2], "credentials requests from this hotkey")
    # the graph's mutations draw on the same budget, and answer with their typed error
    with server.http() as http:
        claim = "mutation { claimWork { __typename ... on RateLimitExceededError { remainingSeconds } } }"
        mutation = {"query": claim}
        answer = http.post("/graphql", json=mutation, headers=sign_headers(keypair("Charlie"))).json()
        assert answer["data"]["claimWork"]["__typename"] == "RateLimitExceededError"
        assert 1 <= answer["data"]["claimWork"]["remainingSeconds"] <= 60
        fresh = http.post("/graphql", json=mutation, headers=sign_headers(keypair("Eve"))).json()
        assert fresh["data"]["claimWork"]["__typename"] != "RateLimitExceededError"


VIEWER = {"query": "{ viewer { hotkey } }"}


def test_a_signed_request_has_its_signature_checked_once(
    serve: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate limit checks a signature to know whose budget to charge; the route takes that verdict
    rather than checking again (an SR25519 verification is most of a signed call's cost at the edge),
    whether it spends the nonce in its work's transaction (heartbeat), before its work (the run's
    problems, a miner's agents, the graph's ``viewer``), or refuses the signature."""
    server = serve()
    seeded = seed(server.runtime)
    checked: list[str | None] = []
    check = SignatureVerifier.check_signature

    def counted(verifier: SignatureVerifier, headers: Any, *, now: float | None = None) -> tuple[str, str]:
        checked.append(headers.get("X-Nonce"))
        return check(verifier, headers, now=now)

    monkeypatch.setattr(SignatureVerifier, "check_signature", counted)
    run = f"/v1/validator/evaluation-runs/{seeded.beta_run}"
    forged = {**sign_headers(keypair("Alice")), "X-Signature": "0x" + "00" * 64}
    with server.http() as http:
        answers = [
            http.post(f"{run}/heartbeat", headers=sign_headers(keypair("Eve"))),
            http.get(f"{run}/problems", headers=sign_headers(keypair("Eve"))),
            http.get("/v1/miner/agents", headers=sign_headers(keypair("Alice"))),
            http.get("/v1/miner/agents", headers=forged),
            http.post("/graphql", json=VIEWER, headers=sign_headers(keypair("Alice"))),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 401, 200], [a.text for a in answers]
    assert answers[4].json()["data"]["viewer"]["hotkey"] == keypair("Alice").ss58_address
    assert len(checked) == 5 and len(set(checked)) == 5


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_a_replayed_signed_write_is_refused_before_it_is_charged(
    serve: Callable[..., LiveServer], request: pytest.FixtureRequest, shared: bool
) -> None:
    """A replay is 401 before the hotkey's write budget is charged, with either nonce store (the
    database's when state is shared): replaying a validator's heartbeat cannot spend its budget, and
    the one answer about the replay is that it is one (not a 429)."""
    redis = {"redis_url": request.getfixturevalue("redis_url")} if shared else {}
    if shared:
        request.getfixturevalue("redis_prefix")
    server = serve(write_rate_limit="1/minute", **redis)
    seeded = seed(server.runtime)
    heartbeat = f"/v1/validator/evaluation-runs/{seeded.beta_run}/heartbeat"
    signed = sign_headers(keypair("Eve"))
    with server.http() as http:
        first = http.post(heartbeat, headers=signed)
        replays = [http.post(heartbeat, headers=signed) for _ in range(2)]
        fresh = http.post(heartbeat, headers=sign_headers(keypair("Eve")))
    assert first.status_code == 200, first.text
    for replay in replays:
        assert replay.status_code == 401 and "nonce was already used" in replay.json()["detail"], replay.text
    assert_throttled(fresh, "heartbeat requests from this hotkey")  # the budget held its one write
