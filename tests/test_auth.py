import re
import time

import pytest

from oro_graph.auth import MemoryNonceStore, RedisNonceStore, SignatureVerifier, sign_headers
from oro_graph.errors import Unauthenticated

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


def test_redis_nonces_are_shared_between_processes(redis_url):
    import redis

    a = redis.Redis.from_url(redis_url)
    b = redis.Redis.from_url(redis_url)
    first = SignatureVerifier(60, RedisNonceStore(a))
    second = SignatureVerifier(60, RedisNonceStore(b))  # another server process, same Redis
    headers = sign_headers(keypair("Alice"))
    first.verify(headers)
    with pytest.raises(Unauthenticated, match="already used"):
        second.verify(headers)
    ttl = a.ttl(f"oro:nonce:{headers['X-Hotkey']}:{headers['X-Nonce']}")
    assert 60 < ttl <= 121


def test_memory_nonce_expires_after_ttl(monkeypatch):
    store = MemoryNonceStore()
    clock = [1000.0]
    monkeypatch.setattr("oro_graph.auth.time.monotonic", lambda: clock[0])
    assert store.claim("hk", "n", ttl_seconds=10)
    assert not store.claim("hk", "n", ttl_seconds=10)
    clock[0] += 11
    assert store.claim("hk", "n", ttl_seconds=10)


def test_nonce_store_down_fails_closed():
    import redis

    from oro_graph.errors import ServiceUnavailable

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    verifier = SignatureVerifier(60, RedisNonceStore(dead))
    with pytest.raises(ServiceUnavailable, match="replay protection"):
        verifier.verify(sign_headers(keypair("Alice")))
