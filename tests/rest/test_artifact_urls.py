"""The URLs the REST paths hand out: an upload URL takes the validator's PUT up to the size it was
signed for, download URLs serve what was stored, and both stop working when they expire."""

from __future__ import annotations

import time
from collections.abc import Callable

from oro_sdk.api.public import get_artifact_download_url
from oro_sdk.api.validator import presign_upload
from oro_sdk.models import ArtifactDownloadRequest, ArtifactType, PresignUploadRequest

from tests.conftest import StorageClock
from tests.factories import AGENT_SOURCE
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded, seed


def five_bytes_of_logs(seeded: Seeded) -> PresignUploadRequest:
    """Eve's logs for the first problem of her run on beta."""
    problem = seeded.problems[0].id
    return PresignUploadRequest(content_length=5, eval_run_id=seeded.beta_run, problem_id=problem)


def test_upload_url_takes_the_signed_size_only(server: LiveServer) -> None:
    seeded = seed(server.runtime)
    grant = presign_upload.sync(client=server.signed("Eve"), body=five_bytes_of_logs(seeded))
    with server.http() as http:
        too_big = http.put(grant.upload_url, content=b"123456")
        forged = http.put(grant.upload_url.replace("signature=", "signature=0"), content=b"12345")
        stored = http.put(grant.upload_url, content=b"12345")
    assert too_big.status_code == 413 and too_big.json()["error_code"] == "FILE_TOO_LARGE"
    assert forged.status_code == 403 and forged.json()["error_code"] == "FORBIDDEN"
    assert stored.status_code == 200 and stored.json() == {"key": grant.results_s3_key, "size": 5}
    assert server.runtime.storage.get(grant.results_s3_key) == b"12345"


def test_upload_and_download_urls_expire(
    serve: Callable[..., LiveServer], storage_clock: StorageClock
) -> None:
    server = serve(signed_url_seconds=60)  # the clock is moved past it: no wait, however busy
    seeded = seed(server.runtime)
    upload = presign_upload.sync(client=server.signed("Eve"), body=five_bytes_of_logs(seeded))
    code = ArtifactDownloadRequest(artifact_type=ArtifactType.AGENT_CODE, agent_version_id=seeded.alpha)
    download = get_artifact_download_url.sync(client=server.public(), body=code)
    with server.http() as http:
        assert http.get(download.download_url).content == AGENT_SOURCE
        # past both expiries, as the server's storage reads the clock (no waiting for it)
        storage_clock.advance(max(0.0, download.expires_at.timestamp() - time.time()) + 1.1)
        late_get, late_put = http.get(download.download_url), http.put(upload.upload_url, content=b"12345")
    for late in (late_get, late_put):
        assert late.status_code == 403 and "expired" in late.json()["detail"]
