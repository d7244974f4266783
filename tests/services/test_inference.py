"""Inference tokens minted at claim time, against a real OAuth token server on loopback (both databases)."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlmodel import select

from oro_graph.errors import ServiceUnavailable, ValidationFailed
from oro_graph.models import EvaluationRun, InferenceCredential, RunStatus, WorkItem
from oro_graph.runtime import Runtime
from oro_graph.services import credentials, inference, invariants
from oro_graph.services.credentials import Readiness
from tests.factories import make_world, submit
from tests.support.inference import runtime_for, store_chutes, store_openrouter
from tests.support.oauth import BASE_URL, CLIENT_SECRET, REDIRECT_URI

VERIFIER = "v" * 50


def claim(rt: Runtime, validator: str) -> inference.ClaimGrant | None:
    assert rt.inference is not None
    return inference.claim_with_grant(
        rt.db, rt.inference, validator_hotkey=validator, settings=rt.settings, storage=rt.storage
    )


def stored_refresh_token(rt: Runtime, hotkey: str) -> str | None:
    return rt.db.call(credentials.reveal_credential, hotkey=hotkey, secret=rt.settings.secret)


def run_row(rt: Runtime, run_id: object) -> EvaluationRun:
    with rt.db.session() as session:
        return session.exec(select(EvaluationRun).where(EvaluationRun.id == run_id)).one()


def work_row(rt: Runtime, version_id: object) -> WorkItem:
    with rt.db.session() as session:
        return session.exec(select(WorkItem).where(WorkItem.agent_version_id == version_id)).one()


def test_claim_mints_rotates_and_caches_the_access_token(token_runtime, oauth_server):
    rt = token_runtime
    world = make_world(rt)
    alice = world.miners[0]
    original = store_chutes(rt, alice, oauth_server)
    version = submit(rt, alice).agent_version_id

    got = claim(rt, world.validators[0])
    assert got is not None and got.claim.run.agent_version_id == version
    grant = got.grant
    assert grant is not None and grant.provider == "chutes" and grant.base_url == BASE_URL
    assert grant.access_token == oauth_server.issued_access[-1]
    assert grant.expires_at is not None and grant.expires_at > got.claim.run.lease_expires_at
    # The refresh token rotated: the old one is spent and the new one is what the server keeps.
    new_refresh = stored_refresh_token(rt, alice)
    assert new_refresh != original and oauth_server.current_refresh_tokens() == {new_refresh}
    with rt.db.session() as session:
        row = session.get(InferenceCredential, (alice, "chutes"))
        assert (
            row is not None
            and row.access_ciphertext
            and grant.access_token.encode() not in row.access_ciphertext
        )
        assert row.last_refreshed_at is not None and row.error_code is None

    # The second validator's claim reuses the cached token: no second provider call.
    again = claim(rt, world.validators[1])
    assert again is not None and again.grant is not None
    assert again.grant.access_token == grant.access_token
    assert oauth_server.calls.refresh == 1


def test_a_token_that_would_not_outlive_the_lease_is_refreshed(runtime, oauth_server):
    oauth_server.expires_in = 200  # shorter than the 300 s lease plus the margin
    rt = runtime_for(runtime, oauth_server)
    try:
        world = make_world(rt)
        store_chutes(rt, world.miners[0], oauth_server)
        submit(rt, world.miners[0])
        first = claim(rt, world.validators[0])
        second = claim(rt, world.validators[1])
        assert first and second and first.grant and second.grant
        assert first.grant.access_token != second.grant.access_token
        assert oauth_server.calls.refresh == 2 and oauth_server.calls.refused == 0
    finally:
        rt.close()


def test_a_version_without_a_credential_waits_and_says_why(token_runtime, oauth_server):
    rt = token_runtime
    world = make_world(rt)
    alice = world.miners[0]
    version = submit(rt, alice).agent_version_id

    assert claim(rt, world.validators[0]) is None  # not offered: no run is wasted
    status = rt.db.call(inference.owned_version_status, version, owner=alice, settings=rt.settings)
    assert status.waiting and status.miner.readiness == Readiness.NO_CREDENTIAL
    assert "no inference credential" in status.miner.detail
    assert work_row(rt, version).active_runs == 0

    store_chutes(rt, alice, oauth_server)
    got = claim(rt, world.validators[0])
    assert got is not None and got.claim.run.agent_version_id == version and got.grant is not None
    status = rt.db.call(inference.owned_version_status, version, owner=alice, settings=rt.settings)
    assert not status.waiting and status.miner.readiness == Readiness.READY


def test_a_miner_with_a_credential_is_offered_before_an_older_one_without(token_runtime, oauth_server):
    rt = token_runtime
    world = make_world(rt)
    alice, bob = world.miners
    submit(rt, alice)  # older, but Alice has no credential
    bob_version = submit(rt, bob).agent_version_id
    store_chutes(rt, bob, oauth_server)
    got = claim(rt, world.validators[0])
    assert got is not None and got.claim.run.agent_version_id == bob_version


def test_a_chutes_credential_waits_when_no_oauth_client_is_configured(runtime, oauth_server):
    rt = runtime_for(runtime, oauth_server, chutes_client_id=None)
    try:
        world = make_world(rt)
        store_chutes(rt, world.miners[0], oauth_server)
        submit(rt, world.miners[0])
        assert claim(rt, world.validators[0]) is None
        view = rt.db.call(credentials.miner_inference, hotkey=world.miners[0], settings=rt.settings)
        assert view.readiness == Readiness.PROVIDER_NOT_CONFIGURED
        assert oauth_server.calls.total == 0
    finally:
        rt.close()


def test_a_revoked_refresh_token_releases_the_run_and_the_version_waits(token_runtime, oauth_server):
    rt = token_runtime
    world = make_world(rt)
    alice, validator = world.miners[0], world.validators[0]
    store_chutes(rt, alice, oauth_server)
    version = submit(rt, alice).agent_version_id
    oauth_server.revoke_all()

    with pytest.raises(ServiceUnavailable) as refused:
        claim(rt, validator)
    assert refused.value.extra["remaining_seconds"] >= 1 and "released" in refused.value.detail
    # The run is released in its own transaction: no attempt counted, the slot given back.
    with rt.db.session() as session:
        runs = session.exec(select(EvaluationRun).where(EvaluationRun.agent_version_id == version)).all()
    assert [r.status for r in runs] == [RunStatus.CANCELLED.value]
    assert "REFRESH_REFUSED" in (runs[0].failure_reason or "")
    assert work_row(rt, version).active_runs == 0
    view = rt.db.call(credentials.miner_inference, hotkey=alice, settings=rt.settings)
    assert view.readiness == Readiness.REFRESH_REFUSED and "invalid_grant" in view.detail
    chutes = next(c for c in view.credentials if c.provider == "chutes")
    assert chutes.connected and not chutes.usable and chutes.error_code == "REFRESH_REFUSED"

    assert claim(rt, validator) is None  # not offered again until a new token is stored
    assert oauth_server.calls.refresh == 1

    store_chutes(rt, alice, oauth_server)
    got = claim(rt, validator)  # the same validator may claim it: the released run was no attempt
    assert got is not None and got.claim.run.agent_version_id == version and got.grant is not None
    assert (
        rt.db.call(credentials.miner_inference, hotkey=alice, settings=rt.settings).readiness
        == Readiness.READY
    )


def test_a_provider_that_is_down_costs_one_timeout_then_the_breaker_answers(runtime, oauth_server):
    rt = runtime_for(runtime, oauth_server, inference_breaker_seconds=2)
    try:
        world = make_world(rt)
        alice = world.miners[0]
        store_chutes(rt, alice, oauth_server)
        version = submit(rt, alice).agent_version_id
        oauth_server.hang()

        with pytest.raises(ServiceUnavailable) as first:
            claim(rt, world.validators[0])
        assert first.value.extra["remaining_seconds"] == 2 and "no answer within 1 s" in first.value.detail
        assert oauth_server.calls.total == 1
        view = rt.db.call(credentials.miner_inference, hotkey=alice, settings=rt.settings)
        assert view.readiness == Readiness.PROVIDER_UNAVAILABLE

        # The breaker is open: the next claims are answered without calling the provider.
        for validator in world.validators[:2]:
            with pytest.raises(ServiceUnavailable) as fast:
                claim(rt, validator)
            assert "circuit open" in fast.value.detail and 1 <= fast.value.extra["remaining_seconds"] <= 2
        assert oauth_server.calls.total == 1
        with rt.db.session() as session:
            statuses = session.exec(
                select(EvaluationRun.status).where(EvaluationRun.agent_version_id == version)
            ).all()
        assert statuses == [RunStatus.CANCELLED.value] * 3 and work_row(rt, version).active_runs == 0
        violations = rt.db.call(invariants.check_invariants, max_active_runs_per_validator=1)
        assert not any(violations.values()), violations

        # It recovers: once the breaker closes, the next claim refreshes and gets a token.
        oauth_server.recover()
        rt.inference.breaker.close("chutes")  # instead of sleeping out the 2 s
        got = claim(rt, world.validators[0])
        assert got is not None and got.grant is not None and got.claim.run.agent_version_id == version
        assert (
            rt.db.call(credentials.miner_inference, hotkey=alice, settings=rt.settings).readiness
            == Readiness.READY
        )
    finally:
        rt.close()


def test_the_breaker_reopens_for_its_whole_time(runtime, oauth_server):
    rt = runtime_for(runtime, oauth_server, inference_breaker_seconds=1)
    try:
        breaker = rt.inference.breaker
        breaker.open("chutes")
        assert breaker.remaining("chutes") == 1
        threading.Event().wait(1.1)
        assert breaker.remaining("chutes") == 0
    finally:
        rt.close()


def test_the_breaker_is_shared_through_redis(runtime, oauth_server, redis_url):
    one = runtime_for(runtime, oauth_server, redis_url=redis_url)
    two = runtime_for(runtime, oauth_server, redis_url=redis_url)
    try:
        one.inference.breaker.close("chutes")
        assert two.inference.breaker.remaining("chutes") == 0
        one.inference.breaker.open("chutes")  # one process saw the provider time out
        assert two.inference.breaker.remaining("chutes") == 30  # the other answers at once too
        two.inference.breaker.close("chutes")
        assert one.inference.breaker.remaining("chutes") == 0
    finally:
        one.close()
        two.close()


def test_two_processes_refreshing_one_credential_make_one_provider_call(runtime, oauth_server):
    """Two runtimes (two engines, two clients, two breakers: two server processes) mint for the same
    miner at the same moment. The row lock makes the second wait and reuse the first one's token;
    without it the second would spend the rotated-away refresh token and get invalid_grant."""
    one, two = runtime_for(runtime, oauth_server), runtime_for(runtime, oauth_server)
    try:
        world = make_world(one)
        alice = world.miners[0]
        store_chutes(one, alice, oauth_server)
        oauth_server.delay = 0.5  # both reach the provider call's lock while the first is inside it
        start = threading.Barrier(2)
        grants: list[inference.Grant | None] = []
        errors: list[BaseException] = []

        def mint(rt: Runtime) -> None:
            start.wait()
            try:
                grants.append(inference.mint(rt.db, rt.inference, miner_hotkey=alice))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=mint, args=(rt,)) for rt in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        assert len(grants) == 2 and grants[0] and grants[1]
        assert grants[0].access_token == grants[1].access_token
        assert oauth_server.calls.refresh == 1 and oauth_server.calls.refused == 0
        assert stored_refresh_token(one, alice) in oauth_server.current_refresh_tokens()
    finally:
        one.close()
        two.close()


def test_an_openrouter_key_is_granted_as_it_is(token_runtime, oauth_server):
    rt = token_runtime
    world = make_world(rt)
    key = store_openrouter(rt, world.miners[0])
    submit(rt, world.miners[0])
    got = claim(rt, world.validators[0])
    assert got is not None and got.grant is not None
    assert (got.grant.provider, got.grant.access_token) == ("openrouter", key)
    assert got.grant.base_url == rt.settings.openrouter_base_url
    assert oauth_server.calls.total == 0


def test_the_default_provider_is_minted_from_first(token_runtime, oauth_server):
    rt = token_runtime
    world = make_world(rt)
    alice = world.miners[0]
    store_chutes(rt, alice, oauth_server)  # the first credential becomes the default
    key = store_openrouter(rt, alice)
    assert inference.mint(rt.db, rt.inference, miner_hotkey=alice).provider == "chutes"
    rt.db.call(credentials.set_default_provider, hotkey=alice, provider="openrouter")
    grant = inference.mint(rt.db, rt.inference, miner_hotkey=alice)
    assert grant is not None and grant.access_token == key
    # A refused default falls back to the other usable credential.
    rt.db.call(credentials.delete_credential, hotkey=alice, provider="openrouter")
    assert inference.mint(rt.db, rt.inference, miner_hotkey=alice).provider == "chutes"
    with pytest.raises(ValidationFailed, match="connect it"):
        rt.db.call(credentials.set_default_provider, hotkey=alice, provider="openrouter")
    with pytest.raises(ValidationFailed, match="unknown inference provider"):
        rt.db.call(credentials.set_default_provider, hotkey=alice, provider="acme")


def test_without_the_requirement_a_miner_without_a_credential_is_offered_without_a_token(
    runtime, oauth_server
):
    rt = runtime_for(runtime, oauth_server, require_inference_credential=False)
    try:
        world = make_world(rt)
        submit(rt, world.miners[0])
        got = claim(rt, world.validators[0])
        assert got is not None and got.grant is None
    finally:
        rt.close()


def test_exchanging_an_authorization_code_stores_the_refresh_token(token_runtime, oauth_server):
    rt = token_runtime
    world = make_world(rt)
    alice = world.miners[0]
    exchange = dict(hotkey=alice, code_verifier=VERIFIER, redirect_uri=REDIRECT_URI)

    with pytest.raises(ValidationFailed, match="ORO_CHUTES_REDIRECT_URIS"):
        inference.exchange_chutes_code(
            rt.db, rt.inference, **{**exchange, "redirect_uri": "https://evil.example/cb"}, code="x"
        )
    with pytest.raises(ValidationFailed, match="RFC 7636"):
        inference.exchange_chutes_code(
            rt.db, rt.inference, **{**exchange, "code_verifier": "short"}, code="x"
        )
    with pytest.raises(ValidationFailed, match="refused the authorization code"):
        inference.exchange_chutes_code(rt.db, rt.inference, **exchange, code="not-issued")
    assert (
        oauth_server.calls.exchange == 1
        and not rt.db.call(credentials.credential_status, hotkey=alice).connected
    )

    code = oauth_server.issue_code(VERIFIER)
    status = inference.exchange_chutes_code(rt.db, rt.inference, **exchange, code=code)
    assert status.connected and status.is_default
    assert stored_refresh_token(rt, alice) in oauth_server.current_refresh_tokens()
    # The access token the exchange brought is cached: the first claim needs no refresh.
    submit(rt, alice)
    got = claim(rt, world.validators[0])
    assert (
        got is not None and got.grant is not None and got.grant.access_token == oauth_server.issued_access[-1]
    )
    assert oauth_server.calls.refresh == 0


def test_secrets_never_reach_a_log_line(token_runtime, oauth_server, caplog):
    rt = token_runtime
    caplog.set_level(logging.DEBUG)
    world = make_world(rt)
    alice = world.miners[0]
    first = store_chutes(rt, alice, oauth_server)
    submit(rt, alice)
    got = claim(rt, world.validators[0])
    assert got is not None and got.grant is not None
    oauth_server.revoke_all()
    store_chutes(rt, world.miners[1], oauth_server)
    oauth_server.revoke_all()
    submit(rt, world.miners[1])
    cached = claim(rt, world.validators[1])  # Alice's version again, from the cache
    assert cached is not None and cached.grant == got.grant
    with pytest.raises(ServiceUnavailable) as refused:  # Bob's: a refusal is logged, without the token
        claim(rt, world.validators[2])
    oauth_server.hang()
    # A new token clears the cached access token, so minting must refresh: the provider is down.
    rt.db.call(credentials.store_credential, hotkey=alice, token="rt-fresh-secret", secret=rt.settings.secret)
    with pytest.raises(inference.MintFailed) as down:
        inference.mint(rt.db, rt.inference, miner_hotkey=alice)
    oauth_server.recover()
    assert "refused" in caplog.text and "failed" in caplog.text  # the failures were logged
    secrets = [first, got.grant.access_token, CLIENT_SECRET, "rt-fresh-secret", *oauth_server.issued_access]
    for text in (caplog.text, refused.value.detail, down.value.detail, repr(got.grant)):
        for secret in secrets:
            assert secret not in text
