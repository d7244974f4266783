"""Artifact storage: HMAC-signed URLs served by the app's /artifacts routes, and S3 presigned URLs
against a moto server on loopback.

moto does not check presigned signatures or their expiry, so for S3 the tests prove the round trip
(our URLs are well-formed for a real S3 API) and our own key rules, not AWS's URL checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from oro_graph.app import create_app
from oro_graph.errors import ArtifactNotFound, ValidationFailed
from oro_graph.settings import Settings
from oro_graph.storage import LocalStorage, S3Storage, check_key
from tests.conftest import StorageClock

KEY = "runs/0f0e/logs-1.txt"
TRAVERSALS = ["../x", "a/../../x", "./x", "/etc/passwd", "a//b", "a/./b", "..", "a\\..\\x", "x\x00y"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'oro.db'}",
        data_dir=tmp_path / "state",
        secret_key="storage-test-secret",
        public_base_url="http://testserver",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, migrate=False)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def storage(client: TestClient) -> LocalStorage:
    store = client.app.state.runtime.storage  # type: ignore[attr-defined]
    assert isinstance(store, LocalStorage)
    return store


def _path(url: str) -> str:
    """The path and query of a signed URL, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _with_query(url: str, **changes: object) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: str(v) for k, v in changes.items()})
    return f"{parts.path}?{urlencode(query)}"


# --- keys --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", TRAVERSALS + ["", "a" * 513, "-leading-dash", "sp ace"])
def test_keys_that_could_leave_the_store_are_refused(key: str) -> None:
    with pytest.raises(ValidationFailed):
        check_key(key)


@pytest.mark.parametrize("key", ["agents/abc.py", "runs/1/2/logs-20261001T000000-ab12.txt", "a.b_c-d"])
def test_plain_keys_are_accepted(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", TRAVERSALS)
def test_local_storage_never_touches_paths_outside_its_root(storage: LocalStorage, key: str) -> None:
    for call in (lambda: storage.put(key, b"x"), lambda: storage.get(key), lambda: storage.exists(key)):
        with pytest.raises(ValidationFailed):
            call()
    with pytest.raises(ValidationFailed):
        storage.download_url(key, seconds=60)


# --- local signed URLs through the app ---------------------------------------------------------------


def test_signed_get_serves_the_artifact(client: TestClient, storage: LocalStorage) -> None:
    storage.put(KEY, b"hello logs")

    response = client.get(_path(storage.download_url(KEY, seconds=60).url))

    assert response.status_code == 200
    assert response.content == b"hello logs"


def test_signed_get_of_a_missing_artifact_is_404(client: TestClient, storage: LocalStorage) -> None:
    response = client.get(_path(storage.download_url("agents/missing.py", seconds=60).url))

    assert response.status_code == 404
    assert response.json()["error_code"] == "ARTIFACT_NOT_FOUND"


def test_signed_put_stores_up_to_its_size(client: TestClient, storage: LocalStorage) -> None:
    grant = storage.upload_url(KEY, seconds=60, max_bytes=10, content_type="text/plain")
    assert grant.method == "PUT"

    response = client.put(_path(grant.url), content=b"0123456789")

    assert response.status_code == 200
    assert response.json() == {"key": KEY, "size": 10}
    assert storage.get(KEY) == b"0123456789"


def test_put_over_the_signed_size_is_refused_and_stores_nothing(
    client: TestClient, storage: LocalStorage
) -> None:
    grant = storage.upload_url(KEY, seconds=60, max_bytes=10, content_type="text/plain")

    response = client.put(_path(grant.url), content=b"01234567890")

    assert response.status_code == 413
    assert response.json()["error_code"] == "FILE_TOO_LARGE"
    assert not storage.exists(KEY)


def test_raising_the_size_in_the_url_breaks_the_signature(client: TestClient, storage: LocalStorage) -> None:
    grant = storage.upload_url(KEY, seconds=60, max_bytes=10, content_type="text/plain")

    response = client.put(_with_query(grant.url, max_bytes=10_000), content=b"0" * 100)

    assert response.status_code == 403
    assert not storage.exists(KEY)


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_expired_urls_are_refused(client: TestClient, storage: LocalStorage, method: str) -> None:
    storage.put(KEY, b"old")
    if method == "GET":
        url = storage.download_url(KEY, seconds=-1).url
        response = client.get(_path(url))
    else:
        url = storage.upload_url(KEY, seconds=-1, max_bytes=10, content_type="text/plain").url
        response = client.put(_path(url), content=b"new")

    assert response.status_code == 403
    assert "expired" in response.json()["detail"]
    assert storage.get(KEY) == b"old"


def test_urls_work_until_they_expire(
    client: TestClient, storage: LocalStorage, storage_clock: StorageClock
) -> None:
    storage.put(KEY, b"soon gone")
    url = _path(storage.download_url(KEY, seconds=1).url)

    assert client.get(url).status_code == 200
    storage_clock.advance(2.1)  # past the expiry, as the storage's clock reads it
    assert client.get(url).status_code == 403


@pytest.mark.parametrize(
    "tamper",
    [
        {"signature": "0" * 64},
        {"signature": ""},
        {"signature": "not-hex"},
        {"expires": 4_102_444_800},  # pushed out to 2100 with the old signature
    ],
)
def test_tampered_urls_are_refused(
    client: TestClient, storage: LocalStorage, tamper: dict[str, object]
) -> None:
    storage.put(KEY, b"secret")
    url = storage.download_url(KEY, seconds=60).url

    response = client.get(_with_query(url, **tamper))

    assert response.status_code in (403, 422)
    assert b"secret" not in response.content


def test_a_signature_is_bound_to_its_key(client: TestClient, storage: LocalStorage) -> None:
    storage.put(KEY, b"mine")
    storage.put("runs/other/logs.txt", b"theirs")
    url = urlsplit(storage.download_url(KEY, seconds=60).url)

    response = client.get(f"/artifacts/runs/other/logs.txt?{url.query}")

    assert response.status_code == 403
    assert b"theirs" not in response.content


def test_wrong_method_is_refused(client: TestClient, storage: LocalStorage) -> None:
    storage.put(KEY, b"original")
    download = storage.download_url(KEY, seconds=60).url
    upload = storage.upload_url(KEY, seconds=60, max_bytes=100, content_type="text/plain").url

    # a GET URL used to upload (with a size added, so the request is well-formed)
    put_with_get_url = client.put(_with_query(download, max_bytes=100), content=b"overwrite")
    # a PUT URL used to download
    get_with_put_url = client.get(_path(upload))

    assert put_with_get_url.status_code == 403
    assert get_with_put_url.status_code == 403
    assert storage.get(KEY) == b"original"


@pytest.mark.parametrize(
    "raw_key", ["%2e%2e/secret.txt", "..%2fsecret.txt", "%2e%2e%2fsecret.txt", "%2Fetc%2Fpasswd"]
)
def test_encoded_traversal_is_refused_even_when_signed(
    client: TestClient, storage: LocalStorage, settings: Settings, raw_key: str
) -> None:
    """Even an attacker holding the secret cannot sign their way out of the artifact root."""
    secret_file = settings.state_dir / "secret.txt"  # beside the artifact root, one '..' away
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    secret_file.write_bytes(b"outside the store")
    decoded = raw_key.replace("%2e", ".").replace("%2f", "/").replace("%2F", "/")
    expires = int(time.time()) + 60
    get_query = urlencode({"expires": expires, "signature": storage.signature("GET", decoded, expires)})
    put_query = urlencode(
        {"expires": expires, "signature": storage.signature("PUT", decoded, expires, 100), "max_bytes": 100}
    )

    got = client.get(f"/artifacts/{raw_key}?{get_query}")
    put = client.put(f"/artifacts/{raw_key}?{put_query}", content=b"overwritten")

    assert got.status_code in (400, 404) and b"outside the store" not in got.content
    assert put.status_code in (400, 404)
    assert secret_file.read_bytes() == b"outside the store"
    assert not (settings.state_dir / "evil").exists()


def test_missing_query_parameters_are_rejected(client: TestClient, storage: LocalStorage) -> None:
    storage.put(KEY, b"x")

    assert client.get(f"/artifacts/{KEY}").status_code == 422
    assert client.put(f"/artifacts/{KEY}", content=b"x").status_code == 422


# --- S3 through a moto server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"oro-{time.monotonic_ns()}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return S3Storage(bucket=bucket, endpoint_url=moto_endpoint, region="us-east-1")


def test_s3_presigned_put_then_presigned_get(s3: S3Storage) -> None:
    upload = s3.upload_url(KEY, seconds=60, max_bytes=100, content_type="text/plain")
    assert upload.method == "PUT"

    put = httpx.put(upload.url, content=b"validator logs", headers={"Content-Type": "text/plain"})
    assert put.status_code == 200, put.text
    assert s3.exists(KEY) and s3.get(KEY) == b"validator logs"

    download = s3.download_url(KEY, seconds=60)
    got = httpx.get(download.url)
    assert got.status_code == 200
    assert got.content == b"validator logs"


def test_s3_put_get_and_missing_keys(s3: S3Storage) -> None:
    s3.put("agents/abc.py", b"print('hi')\n", "text/x-python")

    assert s3.get("agents/abc.py") == b"print('hi')\n"
    assert not s3.exists("agents/nope.py")
    with pytest.raises(ArtifactNotFound):
        s3.get("agents/nope.py")


@pytest.mark.parametrize("key", TRAVERSALS)
def test_s3_refuses_the_same_keys(s3: S3Storage, key: str) -> None:
    with pytest.raises(ValidationFailed):
        s3.upload_url(key, seconds=60, max_bytes=10, content_type="text/plain")
    with pytest.raises(ValidationFailed):
        s3.put(key, b"x")


def test_s3_upload_url_is_size_capped(s3: S3Storage) -> None:
    # moto does not verify presigned signatures, so check what S3 itself enforces: the length is
    # part of the signature, and a body of another size no longer matches it.
    from urllib.parse import parse_qs, urlparse

    upload = s3.upload_url(KEY, seconds=60, max_bytes=10, content_type="text/plain")
    query = parse_qs(urlparse(upload.url).query)
    signed = (query.get("X-Amz-SignedHeaders") or [""])[0].split(";")
    assert "content-length" in signed, upload.url
