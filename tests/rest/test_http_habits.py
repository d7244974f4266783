"""Compression, ETag/304, never a validator on signed answers, CORS per surface, and the OpenAPI
document's security schemes and statuses."""

from __future__ import annotations

import gzip
from typing import Any

import brotli
import pytest
from fastapi.testclient import TestClient

from oro_graph.app import create_app
from oro_graph.runtime import Runtime
from oro_graph.settings import Settings
from tests.factories import claim, complete
from tests.hardening.support import signed
from tests.rest.seed import seed

BOARD = "/v1/public/leaderboard"
GRAPH_GET = "/graphql?query=%7Bleaderboard(first%3A5)%7Bedges%7Bnode%7BfinalScore%7D%7D%7D%7D"


@pytest.fixture
def client(runtime: Runtime):
    with TestClient(create_app(runtime=runtime, migrate=False)) as c:
        yield c


def raw(client: TestClient, path: str, **headers: str) -> tuple[Any, bytes]:
    """The answer and its body as it travelled (before any decoding)."""
    with client.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def test_gzip_and_brotli_when_asked(runtime, client):
    seeded = seed(runtime)
    path = f"/v1/public/suites/{seeded.world.suite.id}/problems"
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and len(plain.content) > 500
    zipped, zipped_body = raw(client, path, **{"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["vary"]
    assert gzip.decompress(zipped_body) == plain.content and len(zipped_body) < len(plain.content)
    br, br_body = raw(client, path, **{"Accept-Encoding": "gzip;q=0.5, br"})
    assert br.headers["content-encoding"] == "br"
    assert brotli.decompress(br_body) == plain.content
    refused, refused_body = raw(client, path, **{"Accept-Encoding": "br;q=0, gzip;q=0"})
    assert "content-encoding" not in refused.headers and refused_body == plain.content


def test_small_answers_and_event_streams_are_not_compressed(runtime, client):
    seeded = seed(runtime)
    small = client.get("/health", headers={"Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in small.headers
    query = f'subscription {{ runProgress(runId: "{seeded.alpha_runs[0]}") {{ __typename }} }}'
    with client.stream(
        "POST", "/graphql/stream", json={"query": query}, headers={"Accept-Encoding": "gzip, br"}
    ) as stream:
        body = b"".join(stream.iter_raw())
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in stream.headers
    assert b"event: next" in body and b"event: complete" in body


def test_public_reads_carry_an_etag_and_answer_304(runtime, client):
    seeded = seed(runtime)
    first = client.get(BOARD)
    tag = first.headers["etag"]
    assert tag.startswith('W/"') and first.headers["cache-control"] == "public, no-cache"
    again = client.get(BOARD, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert client.get(BOARD, headers={"If-None-Match": '"something-else"'}).status_code == 200
    # and after a write the tag changes, so the stale copy is not confirmed
    complete(runtime, seeded.beta_run, seeded.eve, score=0.9)
    c = claim(runtime, seeded.charlie)
    complete(runtime, c.run.id, seeded.charlie, score=0.8)
    changed = client.get(BOARD, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag


def test_graphql_get_is_tagged_and_post_is_not(runtime, client):
    seed(runtime)
    got = client.get(GRAPH_GET, headers={"Accept": "application/json"})
    assert got.status_code == 200 and got.json()["data"]["leaderboard"]
    assert client.get(GRAPH_GET, headers={"If-None-Match": got.headers["etag"]}).status_code == 304
    assert "X-Signature" in got.headers["vary"]
    posted = client.post(
        "/graphql", json={"query": "{ leaderboard(first: 5) { edges { node { finalScore } } } }"}
    )
    assert posted.status_code == 200 and "etag" not in posted.headers


def test_signed_answers_never_get_a_validator(runtime, client):
    seeded = seed(runtime)
    mine = client.get("/v1/miner/agents", headers=signed("Alice"))
    assert mine.status_code == 200, mine.text
    assert "etag" not in mine.headers and mine.headers["cache-control"] == "private, no-store"
    # a signed request to a public path (or the graph) is treated the same way
    for path in (BOARD, GRAPH_GET):
        answer = client.get(path, headers=signed("Alice"))
        assert answer.status_code == 200 and "etag" not in answer.headers, path
        assert answer.headers["cache-control"] == "private, no-store"
    assert seeded.alice not in client.get(BOARD).headers.get("vary", "")


def _cors_app(runtime: Runtime, **settings: Any) -> TestClient:
    rt = Runtime.build(runtime.settings.model_copy(update=settings), db=runtime.db)
    return TestClient(create_app(runtime=rt, migrate=False))


def _preflight(client: TestClient, path: str, origin: str, method: str = "GET", headers: str = "") -> Any:
    request = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=request)


def test_rest_cors_is_its_own_setting(runtime):
    with _cors_app(runtime, rest_cors_origins=["https://app.example"]) as client:
        ok = _preflight(
            client, "/v1/validator/work/claim", "https://app.example", "POST", "x-hotkey,x-signature"
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-signature" in ok.headers["access-control-allow-headers"].lower()
        assert _preflight(client, BOARD, "https://evil.example").status_code == 400
        simple = client.get("/health", headers={"Origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"
        assert "Retry-After" in simple.headers["access-control-expose-headers"]
        # the graph keeps its own list: the REST origins do not open it
        graph = _preflight(client, "/graphql", "https://app.example", "POST")
        assert "access-control-allow-origin" not in graph.headers
    with _cors_app(runtime) as closed:
        assert (
            "access-control-allow-origin"
            not in closed.get(BOARD, headers={"Origin": "https://app.example"}).headers
        )


def test_cors_headers_also_on_refusals(runtime):
    with _cors_app(runtime, rest_cors_origins=["https://app.example"], rate_limit_per_minute=1) as client:
        client.get("/health")
        refused = client.get(BOARD, headers={"Origin": "https://app.example"})
    assert (
        refused.status_code == 429 and refused.headers["access-control-allow-origin"] == "https://app.example"
    )


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    state = tmp_path_factory.mktemp("openapi-habits")
    app = create_app(
        Settings(database_url=f"sqlite:///{state / 'oro.db'}", data_dir=state, secret_key="k"), migrate=False
    )
    return app.openapi()


def test_openapi_declares_the_signature_headers_as_security_schemes(spec):
    schemes = spec["components"]["securitySchemes"]
    assert {(s["type"], s["in"], s["name"]) for s in schemes.values()} == {
        ("apiKey", "header", "X-Hotkey"),
        ("apiKey", "header", "X-Timestamp"),
        ("apiKey", "header", "X-Nonce"),
        ("apiKey", "header", "X-Signature"),
    }
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            if path.startswith(("/v1/miner/", "/v1/validator/")):
                # one requirement naming all four: they are required together
                assert operation["security"] == [{name: [] for name in schemes}], path
            else:
                assert "security" not in operation, path


def test_openapi_declares_every_status_middleware_can_answer(spec):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert {"429", "503"} <= responses.keys(), (method, path)
            assert (
                "Retry-After" in responses["429"]["headers"] and "Retry-After" in responses["503"]["headers"]
            )
            if path.startswith("/v1/"):
                assert "RATE_LIMIT_EXCEEDED" in responses["429"]["x-error-codes"]
                assert responses["503"]["x-error-codes"][-1] == "SERVICE_UNAVAILABLE"
                assert "431" in responses and ("413" in responses) == (method == "post"), (method, path)
    submit = spec["paths"]["/v1/miner/submit"]["post"]["responses"]
    assert submit["429"]["x-error-codes"] == ["COOLDOWN_ACTIVE", "RATE_LIMIT_EXCEEDED"]  # kept as declared
    assert "x-error-codes" not in spec["paths"]["/health"]["get"]["responses"]["503"]  # its own body
