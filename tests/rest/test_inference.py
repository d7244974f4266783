"""Inference credentials and tokens through the unmodified oro-sdk 7.0.2 client, against a live
server and a real OAuth token server on loopback (both databases)."""

from __future__ import annotations

import json

import httpx
import pytest
from oro_sdk.api.miner import (
    delete_inference_credential,
    exchange_chutes_code,
    get_chutes_auth_status,
    get_inference_auth_status_one,
    get_owned_agent_version_status,
    list_inference_auth,
    set_default_inference_provider,
    store_chutes_token,
    store_inference_credential,
)
from oro_sdk.api.validator import claim_work
from oro_sdk.models import (
    AgentVersionStatus,
    ChutesAuthStatusResponse,
    ClaimWorkRequest,
    ClaimWorkResponse,
    ExchangeChutesCodeRequest,
    ExchangeChutesCodeResponse,
    HTTPValidationError,
    InferenceAuthListResponse,
    InferenceAuthStatusResponse,
    InferenceTokenGrant,
    SetDefaultProviderRequest,
    StoreChutesTokenRequest,
    StoreInferenceCredentialRequest,
)
from oro_sdk.models.claim_work_request_service_versions_type_0 import ClaimWorkRequestServiceVersionsType0

from oro_graph.auth import sign_headers
from oro_graph.models import Role
from tests.factories import keypair, make_suite, register, submit
from tests.rest.live import LiveServer
from tests.support.inference import store_chutes
from tests.support.oauth import BASE_URL, CLIENT_SECRET, REDIRECT_URI

VERIFIER = "pkce-verifier-" + "x" * 40
KEY = "sk-or-v1-live-test-key-0123456789abcdef"


@pytest.fixture
def live(serve, oauth_server) -> LiveServer:
    server = serve(**oauth_server.settings_overrides())
    rt = server.runtime
    make_suite(rt)
    register(rt, "Alice")
    register(rt, "Bob")
    for name in ("Charlie", "Dave"):
        register(rt, name, Role.VALIDATOR)
    return server


def claim_body() -> ClaimWorkRequest:
    """What the stock validator sends: its service versions and machine metrics."""
    versions = ClaimWorkRequestServiceVersionsType0.from_dict({"validator": "1.0.0", "sandbox": "2.3.1"})
    return ClaimWorkRequest(
        service_versions=versions, cpu_pct=12.5, ram_pct=40.0, disk_pct=55.0, docker_container_count=2
    )


def hotkey(name: str) -> str:
    return keypair(name).ss58_address


def test_claim_answers_carry_the_token_under_both_names(live, oauth_server):
    rt = live.runtime
    store_chutes(rt, hotkey("Alice"), oauth_server)
    version = submit(rt, hotkey("Alice")).agent_version_id
    with live.signed("Charlie") as client:
        answer = claim_work.sync_detailed(client=client, body=claim_body())
    assert answer.status_code == 200
    parsed = answer.parsed
    assert isinstance(parsed, ClaimWorkResponse) and parsed.agent_version_id == version
    grant = parsed.inference_token
    assert isinstance(grant, InferenceTokenGrant)
    assert grant.provider == "chutes" and grant.base_url == BASE_URL
    assert grant.access_token == oauth_server.issued_access[-1]
    assert grant.expires_at > parsed.lease_expires_at
    raw = json.loads(answer.content)
    assert raw["chutes_access_token"] == grant.access_token  # oro-sdk 1.0.50's name
    assert oauth_server.calls.refresh == 1


def test_a_version_without_a_credential_is_not_offered_and_its_status_says_why(live, oauth_server):
    rt = live.runtime
    version = submit(rt, hotkey("Alice")).agent_version_id
    with live.signed("Charlie") as client:
        assert claim_work.sync_detailed(client=client, body=claim_body()).status_code == 204
    with live.signed("Alice") as client:
        status = get_owned_agent_version_status.sync(version, client=client)
    assert isinstance(status, AgentVersionStatus)
    assert status["waiting_for_inference_credential"] is True
    assert status["inference_readiness"] == "NO_CREDENTIAL"
    assert "no inference credential" in status["inference_readiness_detail"]

    # The graph says the same to the miner (a signed query).
    query = "{ myInferenceAuth { readiness detail credentials { provider connected usable } } }"
    with live.http() as http:
        data = http.post("/graphql", json={"query": query}, headers=sign_headers(keypair("Alice"))).json()[
            "data"
        ]
    assert data["myInferenceAuth"]["readiness"] == "NO_CREDENTIAL"
    assert {c["provider"]: c["connected"] for c in data["myInferenceAuth"]["credentials"]} == {
        "chutes": False,
        "openrouter": False,
    }

    with live.signed("Alice") as client:
        stored = store_chutes_token.sync(
            client=client, body=StoreChutesTokenRequest(refresh_token=oauth_server.issue_refresh_token())
        )
        assert stored is not None and stored["success"] is True
        status = get_owned_agent_version_status.sync(version, client=client)
    assert status["waiting_for_inference_credential"] is False and status["inference_readiness"] == "READY"
    with live.signed("Charlie") as client:
        claimed = claim_work.sync(client=client, body=claim_body())
    assert isinstance(claimed, ClaimWorkResponse) and claimed.agent_version_id == version


def test_a_revoked_token_releases_the_run_with_a_503(live, oauth_server):
    rt = live.runtime
    store_chutes(rt, hotkey("Alice"), oauth_server)
    version = submit(rt, hotkey("Alice")).agent_version_id
    oauth_server.revoke_all()
    with live.signed("Charlie") as client:
        refused = claim_work.sync_detailed(client=client, body=claim_body())
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        body = json.loads(refused.content)
        assert body["error_code"] == "SERVICE_UNAVAILABLE" and "released" in body["detail"]
        # Released: the version now waits, so the validator is told there is no work (not its failure).
        assert claim_work.sync_detailed(client=client, body=claim_body()).status_code == 204
    with live.signed("Alice") as client:
        status = get_owned_agent_version_status.sync(version, client=client)
        auth = get_chutes_auth_status.sync(client=client)
    assert status["inference_readiness"] == "REFRESH_REFUSED" and status["waiting_for_inference_credential"]
    assert status.active_count == 0
    assert isinstance(auth, ChutesAuthStatusResponse) and auth.connected and auth["usable"] is False
    assert "invalid_grant" in auth["last_refresh_error"]


def test_a_provider_that_is_down_answers_503_then_the_breaker_answers_at_once(live, oauth_server):
    rt = live.runtime
    store_chutes(rt, hotkey("Alice"), oauth_server)
    submit(rt, hotkey("Alice"))
    oauth_server.hang()
    for name in ("Charlie", "Dave"):
        with live.signed(name) as client:
            answer = claim_work.sync_detailed(client=client, body=claim_body())
        assert answer.status_code == 503 and 1 <= int(answer.headers["Retry-After"]) <= 30
    assert oauth_server.calls.total == 1  # one timeout; the breaker answered the second claim
    oauth_server.recover()


def test_the_inference_auth_paths(live, oauth_server):
    with live.signed("Alice") as client:
        listed = list_inference_auth.sync(client=client)
        assert isinstance(listed, InferenceAuthListResponse) and listed.default_provider is None
        assert {p.provider: p.connected for p in listed.providers} == {"chutes": False, "openrouter": False}
        assert listed["readiness"] == "NO_CREDENTIAL"

        missing = get_inference_auth_status_one.sync("openrouter", client=client)
        assert isinstance(missing, InferenceAuthStatusResponse) and missing.connected is False

        unknown = get_inference_auth_status_one.sync_detailed("acme", client=client)
        assert unknown.status_code == 422 and isinstance(unknown.parsed, HTTPValidationError)
        assert "unknown inference provider 'acme'" in unknown.parsed.detail[0].msg

        stored = store_inference_credential.sync(
            "openrouter", client=client, body=StoreInferenceCredentialRequest(credential=KEY)
        )
        assert stored is not None and stored["success"] is True
        one = get_inference_auth_status_one.sync_detailed("openrouter", client=client)
        assert one.parsed.connected and one.parsed["is_default"] and one.parsed["usable"]
        assert KEY.encode() not in one.content

        # Chutes through the old path lands in the same store.
        store_chutes_token.sync(client=client, body=StoreChutesTokenRequest(refresh_token="rt-alice-secret"))
        listed = list_inference_auth.sync_detailed(client=client)
        assert {p.provider: p.connected for p in listed.parsed.providers} == {
            "chutes": True,
            "openrouter": True,
        }
        assert listed.parsed.default_provider == "openrouter"  # the first one stored
        assert KEY.encode() not in listed.content and b"rt-alice-secret" not in listed.content

        unknown_default = set_default_inference_provider.sync_detailed(
            client=client, body=SetDefaultProviderRequest(provider="acme")
        )
        assert unknown_default.status_code == 422 and isinstance(unknown_default.parsed, HTTPValidationError)
        made = set_default_inference_provider.sync(
            client=client, body=SetDefaultProviderRequest(provider="chutes")
        )
        assert made is not None and made["default_provider"] == "chutes"

        deleted = delete_inference_credential.sync("chutes", client=client)
        assert deleted is not None and deleted["status"] == "deleted" and deleted["default_provider"] is None
        again = delete_inference_credential.sync("chutes", client=client)
        assert again is not None and again["status"] == "not connected"
        not_connected = set_default_inference_provider.sync_detailed(
            client=client, body=SetDefaultProviderRequest(provider="chutes")
        )
        assert not_connected.status_code == 422 and "connect it" in not_connected.parsed.detail[0].msg
        assert get_chutes_auth_status.sync(client=client).connected is False

        bad = store_inference_credential.sync_detailed(
            "acme", client=client, body=StoreInferenceCredentialRequest(credential=KEY)
        )
        assert bad.status_code == 422 and KEY.encode() not in bad.content


def test_another_miner_never_sees_a_credential(live):
    with live.signed("Alice") as client:
        store_inference_credential.sync(
            "openrouter", client=client, body=StoreInferenceCredentialRequest(credential=KEY)
        )
    with live.signed("Bob") as client:
        assert get_inference_auth_status_one.sync("openrouter", client=client).connected is False
    with live.signed("Charlie") as client:  # a validator is not a miner
        assert list_inference_auth.sync_detailed(client=client).status_code == 403


def test_exchanging_a_code(live, oauth_server):
    with live.signed("Alice") as client:
        wrong_uri = exchange_chutes_code.sync_detailed(
            client=client,
            body=ExchangeChutesCodeRequest(
                code="c", code_verifier=VERIFIER, redirect_uri="https://evil.example/cb"
            ),
        )
        assert wrong_uri.status_code == 422 and "ORO_CHUTES_REDIRECT_URIS" in wrong_uri.parsed.detail[0].msg
        refused = exchange_chutes_code.sync_detailed(
            client=client,
            body=ExchangeChutesCodeRequest(
                code="never-issued", code_verifier=VERIFIER, redirect_uri=REDIRECT_URI
            ),
        )
        assert refused.status_code == 422 and "refused the authorization code" in refused.parsed.detail[0].msg
        code = oauth_server.issue_code(VERIFIER)
        done = exchange_chutes_code.sync_detailed(
            client=client,
            body=ExchangeChutesCodeRequest(code=code, code_verifier=VERIFIER, redirect_uri=REDIRECT_URI),
        )
        assert isinstance(done.parsed, ExchangeChutesCodeResponse) and done.parsed.ok
        assert done.parsed.default_provider == "chutes"
        for secret in [*oauth_server.current_refresh_tokens(), *oauth_server.issued_access, CLIENT_SECRET]:
            assert secret.encode() not in done.content
        assert get_chutes_auth_status.sync(client=client).connected


def test_the_graph_hands_the_token_to_the_lease_holder_only(live, oauth_server):
    rt = live.runtime
    store_chutes(rt, hotkey("Alice"), oauth_server)
    submit(rt, hotkey("Alice"))
    mutation = (
        "mutation { claimWork { __typename ... on ClaimWorkSuccess { inferenceToken { provider accessToken "
        "baseUrl expiresAt } run { id } } } }"
    )
    with live.http() as http:
        answer = http.post(
            "/graphql", json={"query": mutation}, headers=sign_headers(keypair("Charlie"))
        ).json()
        token = answer["data"]["claimWork"]["inferenceToken"]
        assert token["provider"] == "chutes" and token["accessToken"] == oauth_server.issued_access[-1]
        # Public reads of the same run never carry it.
        run_id = answer["data"]["claimWork"]["run"]["id"]
        public = http.post("/graphql", json={"query": f'{{ node(id: "{run_id}") {{ id }} }}'})
        assert token["accessToken"] not in public.text
        for path in ("/v1/public/evaluations/running", "/v1/public/evaluations/pending"):
            assert token["accessToken"] not in http.get(path).text


def test_public_answers_never_carry_a_secret(live, oauth_server):
    rt = live.runtime
    refresh = store_chutes(rt, hotkey("Alice"), oauth_server)
    version = submit(rt, hotkey("Alice")).agent_version_id
    with live.signed("Charlie") as client:
        claimed = claim_work.sync(client=client, body=claim_body())
    access = claimed.inference_token.access_token
    secrets = [refresh, access, CLIENT_SECRET, *oauth_server.current_refresh_tokens()]
    with httpx.Client(base_url=live.base_url) as http:
        pages = [
            http.get(f"/v1/public/agent-versions/{version}/status"),
            http.get(f"/v1/public/agent-versions/{version}/runs"),
            http.get("/v1/public/evaluations/running"),
            http.get("/v1/public/validators"),
        ]
    for page in pages:
        for secret in secrets:
            assert secret not in page.text, page.url


def test_the_graph_answers_service_unavailable_and_keeps_the_miner_view_in_step(live, oauth_server):
    rt = live.runtime
    store = (
        "mutation($t: String!, $p: String!) { storeInferenceCredential(token: $t, provider: $p) { __typename "
        "... on StoreInferenceCredentialSuccess { provider isDefault } ... on ValidationError { message } } }"
    )
    view = (
        "{ myInferenceAuth { readiness defaultProvider "
        "credentials { provider connected usable lastRefreshErrorCode } } }"
    )
    claim = "mutation { claimWork { __typename ... on ServiceUnavailableError { code message } } }"
    with live.http() as http:

        def gql(document: str, name: str, variables: dict[str, str] | None = None) -> dict:
            answer = http.post(
                "/graphql",
                json={"query": document, "variables": variables or {}},
                headers=sign_headers(keypair(name)),
            )
            return answer.json()["data"]

        unknown = gql(store, "Alice", {"t": KEY, "p": "acme"})["storeInferenceCredential"]
        assert (
            unknown["__typename"] == "ValidationError" and "unknown inference provider" in unknown["message"]
        )
        refresh = oauth_server.issue_refresh_token()
        stored = gql(store, "Alice", {"t": refresh, "p": "chutes"})["storeInferenceCredential"]
        assert stored == {
            "__typename": "StoreInferenceCredentialSuccess",
            "provider": "chutes",
            "isDefault": True,
        }
        # The REST view and the graph's agree.
        with live.signed("Alice") as client:
            assert get_chutes_auth_status.sync(client=client).connected

        submit(rt, hotkey("Alice"))
        oauth_server.revoke_all()
        answer = gql(claim, "Charlie")["claimWork"]
        assert answer["__typename"] == "ServiceUnavailableError" and answer["code"] == "SERVICE_UNAVAILABLE"
        assert "released" in answer["message"]
        mine = gql(view, "Alice")["myInferenceAuth"]
        assert mine["readiness"] == "REFRESH_REFUSED" and mine["defaultProvider"] == "chutes"
        chutes = next(c for c in mine["credentials"] if c["provider"] == "chutes")
        assert chutes == {
            "provider": "chutes",
            "connected": True,
            "usable": False,
            "lastRefreshErrorCode": "REFRESH_REFUSED",
        }
        assert refresh not in json.dumps(mine)
