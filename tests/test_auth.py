import re
import time

import pytest
from sqlmodel import select

from oro_graph.auth import DatabaseNonceStore, MemoryNonceStore, SignatureVerifier, sign_headers
from oro_graph.errors import Unauthenticated
from oro_graph.models import UsedNonce
from tests.factories import keypair


@pytest.fixture
def verifier():
    return SignatureVerifier(skew_seconds=60, nonces=MemoryNonceStore())


def test_valid_signature_returns_hotkey(verifier):
    alice = keypair("Alice")
    assert verifier.verify(sign_headers(alice)) == alice.ss58_address


@pytest.mark.parametrize("missing", ["X-Hotkey", "X-Timestamp", "X-Nonce", "X-Signature"])
def test_missing_header(verifier, missing):
    headers = sign_headers(keypair("Alice"))
    del headers[missing]
    with pytest.raises(Unauthenticated, match=missing):
        verifier.verify(headers)


def test_signature_by_another_key_is_refused(verifier):
    headers = sign_headers(keypair("Bob"))
    headers["X-Hotkey"] = keypair("Alice").ss58_address
    with pytest.raises(Unauthenticated, match="signature does not match"):
        verifier.verify(headers)


def test_signature_over_another_message_is_refused(verifier):
    headers = sign_headers(keypair("Alice"))
    headers["X-Nonce"] = "different-nonce"
    with pytest.raises(Unauthenticated, match="signature does not match"):
        verifier.verify(headers)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("X-Hotkey", "not-an-ss58", "SS58"),
        ("X-Signature", "0xzz", "hex"),
        ("X-Timestamp", "yesterday", "Unix seconds"),
        ("X-Nonce", "n" * 200, "longer"),
    ],
)
def test_malformed_headers(verifier, field, value, needle):
    headers = sign_headers(keypair("Alice"))
    headers[field] = value
    with pytest.raises(Unauthenticated, match=needle):
        verifier.verify(headers)


@pytest.mark.parametrize("offset", [-61, 61])
def test_timestamp_outside_skew(verifier, offset):
    headers = sign_headers(keypair("Alice"), timestamp=int(time.time()) + offset)
    with pytest.raises(Unauthenticated, match="allowed skew is 60"):
        verifier.verify(headers)


@pytest.mark.parametrize(
    ("offset", "words"), [(61, "61 s ahead of server time"), (-61, "61 s behind server time")]
)
def test_a_refused_timestamp_says_how_far_ahead_or_behind_it_is(verifier, offset, words):
    headers = sign_headers(keypair("Alice"), timestamp=int(time.time()) + offset)
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(headers)
    assert words in str(refused.value)
    assert not re.search(r"-\d", str(refused.value))  # no negative distances


def test_timestamp_inside_skew_is_accepted(verifier):
    headers = sign_headers(keypair("Alice"), timestamp=int(time.time()) - 55)
    assert verifier.verify(headers) == keypair("Alice").ss58_address


def test_replayed_nonce_is_refused(verifier):
    headers = sign_headers(keypair("Alice"))
    verifier.verify(headers)
    with pytest.raises(Unauthenticated, match="already used"):
        verifier.verify(headers)


def test_same_nonce_for_two_hotkeys_is_fine(verifier):
    verifier.verify(sign_headers(keypair("Alice"), nonce="shared"))
    verifier.verify(sign_headers(keypair("Bob"), nonce="shared"))


def test_database_nonces_are_shared_between_processes(db):
    first = SignatureVerifier(60, DatabaseNonceStore(db))
    second = SignatureVerifier(60, DatabaseNonceStore(db))  # another server process, same database
    headers = sign_headers(keypair("Alice"))
    first.verify(headers)
    with pytest.raises(Unauthenticated, match="already used"):
        second.verify(headers)
    with db.session() as session:
        (row,) = session.exec(select(UsedNonce)).all()
    assert row.nonce == headers["X-Nonce"] and 120 < row.expires_at - time.time() <= 121


def test_a_replay_the_process_saw_is_refused_without_asking_the_database(db, monkeypatch):
    verifier = SignatureVerifier(60, DatabaseNonceStore(db))
    headers = sign_headers(keypair("Alice"))
    verifier.verify(headers)
    asked = []
    monkeypatch.setattr(db, "call", lambda *args, **kwargs: asked.append(args))
    with pytest.raises(Unauthenticated, match="already used"):
        verifier.verify(headers)
    assert asked == []


def test_a_hotkeys_public_key_is_decoded_once(verifier, monkeypatch):
    from oro_graph import auth

    built = []

    class Counted(auth.Keypair):
        def __init__(self, *args, **kwargs):
            built.append(kwargs["ss58_address"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(auth, "Keypair", Counted)
    auth._public_keypair.cache_clear()
    try:
        for name in ("Alice", "Bob", "Alice", "Alice"):
            assert verifier.verify(sign_headers(keypair(name))) == keypair(name).ss58_address
    finally:
        auth._public_keypair.cache_clear()
    assert built == [keypair("Alice").ss58_address, keypair("Bob").ss58_address]


def test_a_database_nonce_expires_and_expired_rows_are_pruned(db, monkeypatch):
    clock = [time.time()]
    monkeypatch.setattr("oro_graph.auth.time.time", lambda: clock[0])
    store = DatabaseNonceStore(db)
    assert store.claim("hk", "n", ttl_seconds=10) and store.claim("hk", "other", ttl_seconds=10)
    assert not store.claim("hk", "n", ttl_seconds=10)
    clock[0] += 11
    assert store.claim("hk", "n", ttl_seconds=10)  # expired: a new use, not a replay
    clock[0] += DatabaseNonceStore.PRUNE_EVERY
    assert store.claim("hk", "late", ttl_seconds=10)
    with db.session() as session:
        assert sorted(row.nonce for row in session.exec(select(UsedNonce)).all()) == ["late"]


def test_concurrent_claims_of_one_nonce_let_exactly_one_through(db):
    from concurrent.futures import ThreadPoolExecutor

    stores = [DatabaseNonceStore(db) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda store: store.claim("hk", "raced", ttl_seconds=60), stores))
    assert results.count(True) == 1


def test_claiming_a_nonce_does_not_change_the_data_version(runtime):
    before = runtime.data_version.current()
    DatabaseNonceStore(runtime.db).claim("hk", "n", ttl_seconds=60)
    assert runtime.data_version.current() == before


def test_memory_nonce_expires_after_ttl(monkeypatch):
    store = MemoryNonceStore()
    clock = [1000.0]
    monkeypatch.setattr("oro_graph.auth.time.monotonic", lambda: clock[0])
    assert store.claim("hk", "n", ttl_seconds=10)
    assert not store.claim("hk", "n", ttl_seconds=10)
    clock[0] += 11
    assert store.claim("hk", "n", ttl_seconds=10)


def test_nonce_store_down_fails_closed(tmp_path):
    from oro_graph.db import Database
    from oro_graph.errors import ServiceUnavailable
    from oro_graph.settings import Settings

    unreachable = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/none", data_dir=tmp_path, secret_key="k"
    )
    db = Database(unreachable)
    verifier = SignatureVerifier(60, DatabaseNonceStore(db))
    with pytest.raises(ServiceUnavailable, match="replay protection"):
        verifier.verify(sign_headers(keypair("Alice")))
    db.dispose()
